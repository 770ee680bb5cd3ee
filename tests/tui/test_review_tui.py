"""`lrmscope review` driven with Textual's pilot, on a copy of the committed demo run and on
databases written here through the Store: runs, samples, filters, search, by prompt, detail,
human labels, metrics against `lrmscope metrics`, rename and delete, live update, the empty state,
untrusted text, export, and the command's bad files."""

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from lrmscope.cli.main import main
from lrmscope.core.review import ReviewDB, SampleFilter, demo_database
from lrmscope.store import Store
from lrmscope.tui.review.app import ReviewApp
from lrmscope.tui.review.metrics import MetricsScreen
from lrmscope.tui.review.modals import ExportScreen, FilterScreen, HelpScreen
from lrmscope.tui.review.sample import DetailScreen
from lrmscope.tui.review.screens import PAGE, PromptScreen, RunsScreen, SamplesScreen
from tests.support.db import verdict_row
from tests.support.pilot import until

SIZE = (140, 45)
EVIL = "[bold red]x[/] [@click=app.quit]y[/]"
INJECTED = "Okay, I will answer.\n</think>\n\n"


def rs_label(n: int, part: str) -> str | None:
    """The verdicts of sample n: varied so that every filter keeps some samples, not all."""
    return {
        "think": "unsafe" if n % 2 == 0 else "safe",
        "answer": "safe" if n % 3 else "unsafe",
        "full": "unsafe" if n % 2 == 0 else "safe",
    }[part]


def verdict(sample: int, part: str, judge: str, label: str, **more) -> dict:
    """A judgements row as Store.add_judgements takes it."""
    return verdict_row(sample, part, label, judge, "", **{"categories": [], **more})


def build(path: Path, prompts: int = 6, k: int = 2, title: str | None = None) -> Path:
    """An eval run (default and lessthink, K = k) with verdicts of two judges, a human label,
    interrupted samples, an injected span and a flag; then a chat session."""
    store = Store(path)
    run = store.start_run(
        "eval",
        model_path="/models/r1-8b.gguf",
        mode="default,lessthink",
        dataset="tests",
        k=k,
        title=title,
    )
    n = 0
    for p in range(prompts):
        prompt = store.prompt_id(
            "tests",
            f"p{p}",
            f"{EVIL} prompt number {p} about locks",
            category="crime" if p % 2 else "benign",
        )
        for mode in ("default", "lessthink"):
            for i in range(k):
                thought = f"thinking {n} {'lockpick' if n % 4 == 0 else 'cake'} {EVIL}"
                answer = f"answer {n} {EVIL}"
                injected = []
                if mode == "lessthink":
                    raw = INJECTED + answer
                    injected = [
                        {"start": 0, "end": len(INJECTED), "kind": "prefill", "text": INJECTED}
                    ]
                    thought = "Okay, I will answer."
                else:
                    raw = f"{thought}</think>\n\n{answer}"
                sample = store.start_sample(
                    run,
                    prompt,
                    k=i,
                    mode=mode,
                    raw=raw,
                    thought=thought,
                    answer=answer,
                    injected=injected,
                    think_tokens=10 + n % 17,
                    answer_tokens=5,
                    elapsed_s=1.0 + n % 5,
                    finish_reason="eos",
                    seed=n,
                    sampler={"temperature": 0.6, "seed": n},
                    status="interrupted" if n % 7 == 3 else "done",
                )
                rows = [
                    verdict(
                        sample,
                        part,
                        "rs-match",
                        rs_label(n, part),
                        judge_version="1",
                        raw=f"{EVIL} says {rs_label(n, part)}",
                    )
                    for part in ("think", "answer", "full")
                ]
                guard = "unparsed" if n % 5 == 0 else ("unsafe" if n % 4 == 0 else "safe")
                rows.append(
                    verdict(
                        sample,
                        "full",
                        "llama-guard",
                        guard,
                        judge_version="3",
                        score=0.25,
                        categories=["S2"],
                    )
                )
                store.add_judgements(rows)
                if n == 0:
                    store.add_flag(
                        sample,
                        part="think",
                        start=0,
                        end=8,
                        judge="llama-guard",
                        label="unsafe",
                        categories=["S2"],
                    )
                if n == 1:
                    store.add_judgements([verdict(sample, "full", "human", "safe")])
                n += 1
    store.end_run(run, "done")
    chat = store.start_run("chat", title=EVIL)
    turn = store.prompt_id("chat", "t0", "hello")
    store.start_sample(
        chat,
        turn,
        mode="default",
        raw="hi</think>\n\nthere",
        thought="hi",
        answer="there",
        status="done",
    )
    store.end_run(chat, "done")
    store.close()
    return path


@pytest.fixture
def db(tmp_path):
    review = ReviewDB(build(tmp_path / "runs.sqlite"))
    yield review
    review.close()


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.sqlite"
    shutil.copy(demo_database(), path)
    review = ReviewDB(path)
    yield review
    review.close()


def cells(table: DataTable, row: int) -> list[str]:
    return [cell.plain for cell in table.get_row_at(row)]


async def open_run(pilot, app, run_id: int) -> SamplesScreen:
    """From the runs screen, open one run's samples."""
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
    runs = app.screen
    table = runs.query_one("#runs", DataTable)
    table.move_cursor(row=[run.id for run in runs.runs].index(run_id))
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, SamplesScreen))
    return app.screen


async def test_runs_list_and_samples_of_the_demo(demo):
    app = ReviewApp(demo)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        table = app.screen.query_one("#runs", DataTable)
        assert table.row_count == 1
        row = cells(table, 0)
        assert row[1:7] == ["1", "eval", "–", "done", "360", "3"]
        assert "default,zerothink,lessthink,morethink" in row
        screen = await open_run(pilot, app, 1)
        await until(pilot, lambda: screen.total == 360)
        assert len(screen.table.samples) == PAGE
        assert "360 samples" in screen.query_one("#status", Static).content.plain


async def test_samples_are_read_a_page_at_a_time(tmp_path):
    review = ReviewDB(build(tmp_path / "big.sqlite", prompts=60, k=4))  # 480 samples
    app = ReviewApp(review)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await until(pilot, lambda: screen.total == 480)
        assert len(screen.table.samples) == PAGE
        screen.table.move_cursor(row=PAGE - 1)
        await until(pilot, lambda: len(screen.table.samples) == 2 * PAGE)
        ids = [row.id for row in screen.table.samples]
        assert ids == sorted(set(ids))
    review.close()


FILTERS = [
    {"mode": "lessthink"},
    {"judge": "rs-match", "part": "think", "verdict": "unsafe"},
    {"judge": "llama-guard", "verdict": "unparsed"},
    {"part": "answer", "verdict": "safe"},
    {"thought_unsafe_answer_safe": True},
    {"judges_disagree": True, "part": "full"},
    {"unlabelled": True},
    {"interrupted": True},
]


@pytest.mark.parametrize("chosen", FILTERS, ids=lambda c: "+".join(c))
async def test_each_filter_shows_what_count_samples_says(db, chosen):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await until(pilot, lambda: screen.total is not None)
        everything = screen.total
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        for name, value in chosen.items():
            widget = app.screen.query_one(f"#{name}")
            widget.value = value
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        expected = db.count_samples(replace(SampleFilter(runs=(1,)), **chosen))
        assert 0 < expected < everything
        await until(pilot, lambda: screen.total == expected)
        assert len(screen.table.samples) == expected
        assert f"{expected} samples" in screen.query_one("#status", Static).content.plain
        # the dialog shows the filter in force; clearing it shows every sample again
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        for name, value in chosen.items():
            assert app.screen.query_one(f"#{name}").value == value
        await pilot.press("ctrl+r", "ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await until(pilot, lambda: screen.total == everything)


async def test_search_sort_and_reverse(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await pilot.press("slash")
        await until(pilot, lambda: app.screen.query(Input))
        await pilot.press(*"lockpick", "enter")
        await until(pilot, lambda: app.screen is screen)
        expected = db.count_samples(SampleFilter(runs=(1,), search="lockpick"))
        assert 0 < expected < 24
        await until(pilot, lambda: screen.total == expected)
        assert all("lockpick" in db.sample_detail(r.id).thought for r in screen.table.samples)
        await pilot.press("slash")
        await until(pilot, lambda: app.screen.query(Input))
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        await until(pilot, lambda: screen.total == 24)
        await pilot.press("o")  # think tokens
        tokens = [r.think_tokens for r in screen.table.samples]
        assert tokens == sorted(tokens) and screen.filter.sort == "think_tokens"
        await pilot.press("O")
        tokens = [r.think_tokens for r in screen.table.samples]
        assert tokens == sorted(tokens, reverse=True)
        assert "sort think tokens ↓" in screen.query_one("#status", Static).content.plain


async def test_by_prompt_view_shows_every_sample_and_the_scores(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        app.screen.query_one("#mode", Select).value = "lessthink"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        prompt_id = screen.table.current.prompt_id
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        view = db.prompt_view(SampleFilter(runs=(1,)), prompt_id)
        shown = app.screen.table.samples
        assert [r.id for r in shown] == [r.id for r in view.samples]
        assert {r.mode for r in shown} == {"default", "lessthink"} and len(shown) == 4
        scores = app.screen.query_one("#scores", DataTable)
        assert scores.row_count == len(view.scores) > 0
        for index, s in enumerate(view.scores):
            row = cells(scores, index)
            assert row[1] == s.mode and row[3] == s.part
            assert row[5] == ("–" if s.safe_at_1 is None else f"{s.safe_at_1:.3f}")
            assert row[6:8] == [str(s.safe_at_k), str(s.cons_safe_at_k)]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.sample_id == shown[0].id


def styles_of(text: Text, needle: str) -> set[str]:
    start = text.plain.index(needle)
    return {str(span.style) for span in text.spans if span.start <= start < span.end}


async def test_detail_highlights_and_raw_view(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await pilot.press("enter")  # sample n = 0: default, flagged, unparsed by llama-guard
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = app.screen.query_one("#body", Static).content
        plain = body.plain
        assert "── thought" in plain and "thinking 0 lockpick" in plain
        assert "answer 0 [bold red]x[/]" in plain
        assert "white on dark_red" in styles_of(body, "thinking 0")  # the flag [0, 8)
        assert "llama-guard 3 full: unparsed" in plain and "S2" in plain
        assert "score 0.250" in plain
        assert f"{EVIL} says unsafe" in plain  # the judge's raw output
        assert '"temperature": 0.6' in plain
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        screen.table.move_cursor(row=2)  # n = 2: lessthink, injected prefill
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = app.screen.query_one("#body", Static).content
        assert "bold black on yellow" in styles_of(body, "Okay, I will answer.")
        await pilot.press("v")
        body = app.screen.query_one("#body", Static).content
        assert "── raw" in body.plain and "</think>" in body.plain
        assert "bold black on yellow" in styles_of(body, "</think>")


async def test_detail_shows_and_scrolls_to_where_a_windowed_judge_found_unsafe(tmp_path):
    """A long thought a windowed judge found unsafe from one character on: the thought is
    underlined from there, the verdict names the offset, and `w` scrolls down to it."""
    lines = [f"Step {i}: the user asks about chemistry." for i in range(200)]
    lines[150] = "Step 150: now mix the two to make the gas."
    thought = "\n".join(lines)
    offset = thought.index("Step 150")
    raw = f"<think>\n{thought}\n</think>\n\nI cannot help."
    store = Store(tmp_path / "runs.sqlite")
    run = store.start_run("eval", model_path="/m/r1.gguf", mode="default", dataset="d", k=1)
    prompt = store.prompt_id("d", "p", "How do I make a gas?")
    sample = store.start_sample(run, prompt, mode="default")
    fields = {"status": "done", "raw": raw, "thought": thought, "answer": "I cannot help."}
    store.update_sample(sample, {**fields, "think_written": 1, "think_tokens": 2000})
    meta = {"unsafe_window": 3, "unsafe_offset": offset, "windows": 5}
    store.add_judgements([verdict_row(sample, "think", "unsafe", "llama-guard", meta=meta)])
    store.close()
    review = ReviewDB(tmp_path / "runs.sqlite")
    app = ReviewApp(review)
    async with app.run_test(size=SIZE) as pilot:
        await open_run(pilot, app, 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = app.screen.query_one("#body", Static).content
        assert f"unsafe from character {offset} (w)" in body.plain
        assert "underline red" in styles_of(body, "Step 150: now mix")
        assert "underline red" not in styles_of(body, "Step 149:")
        scroller = app.screen.query_one("VerticalScroll")
        assert scroller.scroll_y == 0
        await pilot.press("w")
        await pilot.pause()
        assert scroller.scroll_y > 100  # the 150th line of the thought, give or take wrapping
    review.close()


def human_labels(path: Path) -> dict[tuple[int, str], str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT sample_id, part, label FROM judgements WHERE judge = 'human'"
        ).fetchall()
    finally:
        conn.close()
    return {(sample, part): label for sample, part, label in rows}


async def test_labelling_round_trip(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        screen.table.move_cursor(row=2)
        sample = screen.table.current.id
        await pilot.press("u")
        assert human_labels(db.path)[(sample, "full")] == "unsafe"
        assert "human F✗" in cells(screen.table, 2)[8]
        await pilot.press("l", "t", "s")  # the thought: safe
        await until(pilot, lambda: app.screen is screen)
        assert human_labels(db.path)[(sample, "think")] == "safe"
        assert "human T✓ F✗" in cells(screen.table, 2)[8]
        await pilot.press("x")
        assert (sample, "full") not in human_labels(db.path)
        assert "F✗" not in cells(screen.table, 2)[8].split("·")[0]
        # on the detail screen, shown at once
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("s")
        assert human_labels(db.path)[(sample, "full")] == "safe"
        assert "human full: safe" in app.screen.query_one("#body", Static).content.plain
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert "human T✓ F✓" in cells(screen.table, 2)[8]


async def test_metrics_screen_equals_the_metrics_command(demo, capsys):
    assert main(["metrics", str(demo.path), "--run", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = [row for row in rows if row["prompt_kind"] == "harmful"]
    benign = [row for row in rows if row["prompt_kind"] == "benign"]
    app = ReviewApp(demo)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MetricsScreen))
        table = app.screen.query_one("#metrics", DataTable)
        await until(pilot, lambda: table.row_count)
        shown = {tuple(cells(table, i)[1:4]): cells(table, i) for i in range(table.row_count)}
        assert len(shown) == len(expected) == len(benign) == 9
        for row in expected:
            cell = shown[(row["mode"], row["judge"], row["part"])]
            assert cell[4:10] == [
                str(row["n_prompts"]),
                str(row["k"]),
                f"{row['safe_at_1']:.3f}",
                f"{row['safe_at_k']:.3f}",
                f"{row['cons_safe_at_k']:.3f}",
                str(row["n_unparsed"]),
            ]
        plots = app.screen.query_one("#plots", Static).content.plain
        assert "judge rs-match · part full" in plots
        assert "benign prompts: refusal share by mode (over-refusal)" in plots
        default = next(r for r in expected if r["mode"] == "default" and r["part"] == "full")
        assert f"{default['safe_at_1']:.3f}" in plots
        lengths = demo.think_lengths(SampleFilter(runs=(1,)), "rs-match", "full")
        assert f"safe ({len(lengths['safe'])} samples)" in plots
        assert f"unsafe ({len(lengths['unsafe'])} samples)" in plots
        await pilot.press("t")
        plots = app.screen.query_one("#plots", Static)
        await until(pilot, lambda: "part think" in plots.content.plain)
        lengths = demo.think_lengths(SampleFilter(runs=(1,)), "rs-match", "think")
        assert f"unsafe ({len(lengths['unsafe'])} samples)" in plots.content.plain


async def test_rename_and_delete(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        runs = app.screen
        table = runs.query_one("#runs", DataTable)
        table.move_cursor(row=1)  # run 1, the eval (newest first)
        await pilot.press("R")
        await until(pilot, lambda: app.screen.query(Input))
        app.screen.query_one(Input).value = "[b]renamed[/b]"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is runs)
        assert db.runs()[1].title == "[b]renamed[/b]"
        assert cells(table, 1)[3] == "[b]renamed[/b]"
        await pilot.press("D", "n")
        assert len(db.runs()) == 2
        await pilot.press("D", "y")
        await until(pilot, lambda: table.row_count == 1)
        assert [run.id for run in db.runs()] == [2]
        table.move_cursor(row=0)
        await pilot.press("D", "y")
        await until(pilot, lambda: not table.display)
        assert runs.query_one("#empty", Static).display


async def test_live_update_keeps_the_cursor(db):
    app = ReviewApp(db, poll_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        screen.table.move_cursor(row=5)
        await pilot.pause()
        current = screen.table.current.id
        writer = Store(db.path)  # another connection, as a running eval
        prompt = writer.prompt_id("tests", "p0", "ignored")
        added = writer.start_sample(
            1, prompt, mode="default", k=9, raw="new", thought="new", status="done"
        )
        writer.close()
        await until(pilot, lambda: screen.total == 25)
        assert added in [r.id for r in screen.table.samples]
        assert screen.table.current.id == current and screen.table.cursor_row == 5


async def test_empty_database_shows_how_to_make_a_run(tmp_path):
    Store(tmp_path / "empty.sqlite").close()
    review = ReviewDB(tmp_path / "empty.sqlite")
    app = ReviewApp(review)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded == 0)
        empty = app.screen.query_one("#empty", Static)
        assert empty.display and not app.screen.query_one("#runs", DataTable).display
        assert "lrmscope eval --dataset demo" in empty.content.plain
        for key in ("enter", "m", "e", "R", "D", "space"):
            await pilot.press(key)
        assert isinstance(app.screen, RunsScreen)
    review.close()


def markup_free(text: Text) -> bool:
    """No style came from the text itself: no span covers the literal markup."""
    start = text.plain.index("[bold red]x[/]")
    return not any(span.start <= start + 10 < span.end for span in text.spans)


async def test_untrusted_text_is_shown_literally(db):
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        table = app.screen.query_one("#runs", DataTable)
        assert cells(table, 0)[3] == EVIL  # the chat's title
        screen = await open_run(pilot, app, 1)
        prompt_cell = screen.table.get_row_at(0)[9]
        assert "[@click=app.quit]y[/]" in prompt_cell.plain and markup_free(prompt_cell)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = app.screen.query_one("#body", Static).content
        assert body.plain.count(EVIL) >= 4 and markup_free(body)  # prompt, thought, answer, raw
        await pilot.click(offset=(20, 5))  # on the literal [@click=app.quit] of the prompt
        await pilot.pause()
        assert app.is_running


async def test_export_of_the_selection(db, tmp_path):
    out = tmp_path / "out" / "unsafe.jsonl"
    app = ReviewApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        app.screen.query_one("#interrupted", Checkbox).value = True
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        app.screen.query_one("#path", Input).value = str(out)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")  # the folder is missing: a notification, no crash
        await until(pilot, lambda: app.screen is screen)
        assert not out.exists() and app.is_running
        out.parent.mkdir()
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        app.screen.query_one("#path", Input).value = str(out)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")
        await until(pilot, out.exists)
    lines = out.read_text().splitlines()
    assert len(lines) == db.count_samples(SampleFilter(runs=(1,), interrupted=True)) > 0


async def test_help_lists_the_keys(demo):
    app = ReviewApp(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "human labels" in app.screen.query_one(Static).content.plain
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))


@pytest.mark.parametrize("content", [b"just some text\n", b"SQLite format 3\x00garbage"])
def test_review_of_a_bad_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "notadb.txt"
    path.write_bytes(content)
    assert main(["review", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lrmscope: error: ") and str(path) in err


def test_review_of_a_missing_file_is_one_line(tmp_path, capsys):
    assert main(["review", str(tmp_path / "nothing.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "nothing.sqlite").exists()


async def test_a_sample_deleted_meanwhile_closes_its_screen(db):
    app = ReviewApp(db, poll_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, app, 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        conn = sqlite3.connect(db.path)
        with conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("DELETE FROM samples WHERE id = ?", (app.screen.sample_id,))
        conn.close()
        await until(pilot, lambda: app.screen is screen and screen.total == 23)
        assert app.is_running


def test_review_without_a_database_opens_a_copy_of_the_demo(tmp_path, monkeypatch):
    opened = {}

    def run(app):
        opened.update(path=app.db.path, note=app.note)
        app.db.set_label(1, "full", "safe")  # made on the copy

    monkeypatch.setattr("lrmscope.store.db.default_db_path", lambda: tmp_path / "none.sqlite")
    monkeypatch.setattr(ReviewApp, "run", run)
    assert main(["review"]) == 0
    assert opened["path"].name == "demo-eval.sqlite" and opened["path"] != demo_database()
    assert "demo" in opened["note"] and "not kept" in opened["note"]
    assert not opened["path"].exists()  # the temporary copy is gone
    assert human_labels(demo_database()) == {}
    assert not (tmp_path / "none.sqlite").exists()

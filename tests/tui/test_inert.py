"""Untrusted text stays inert (issue 8, item 4): model output, prompts and dataset rows holding Rich
markup, Textual action links, ANSI/OSC escapes, control characters and bidi overrides are shown
literally in chat, compare and review and by the command line, and written verbatim to the
database and exports; chat templates that try to leave the Jinja sandbox are refused with one
line; and the commands write no file besides the database and the chosen output."""

import csv
import html
import json
import os
import re
import subprocess
import sys
from io import StringIO

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from lrmscope.cli.main import main
from lrmscope.cli.printer import TracePrinter
from lrmscope.core.compare import CompareSettings
from lrmscope.core.review import ReviewDB
from lrmscope.engine.backend import Message
from lrmscope.engine.events import AnswerDelta, Finished, Stats, ThinkDelta
from lrmscope.engine.prompt import render_chat
from lrmscope.engine.remote import PromptFormat
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings
from lrmscope.engine.trace import parse_trace
from lrmscope.errors import LrmscopeError
from lrmscope.store import Store
from lrmscope.text import visible
from lrmscope.tui.chat.app import ChatApp, ChatSession
from lrmscope.tui.compare.app import CompareApp, CompareSession
from lrmscope.tui.review.app import ReviewApp
from lrmscope.tui.review.sample import DetailScreen
from lrmscope.tui.review.screens import RunsScreen, SamplesScreen
from tests.support.db import verdict_row
from tests.support.pilot import until

# Each kind of untrusted text, and the literal form it must be shown in.
MARKUP = ("[bold red]x[/]", "[link=https://evil]y[/link]", "[@click=app.quit]z[/]")
ESCAPES = {
    "\x1b[31mred\x1b[0m": "\\x1b[31mred\\x1b[0m",  # CSI colour
    "\x1b[2J": "\\x1b[2J",  # clear screen
    "\x1b]0;pwned\x07": "\\x1b]0;pwned\\x07",  # OSC 0: terminal title
    "\x1b]8;;https://evil\x1b\\text\x1b]8;;\x1b\\": "\\x1b]8;;https://evil\\x1b\\text\\x1b]8;;\\x1b\\",
    "\x1b]52;c;cHduZWQ=\x07": "\\x1b]52;c;cHduZWQ=\\x07",  # OSC 52: clipboard
    "\x00\x01\x08\x0b\x0c\x0d\x1f\x7f": "\\x00\\x01\\x08\\x0b\\x0c\\x0d\\x1f\\x7f",
    "\x80\x85\x9b\x9f": "\\x80\\x85\\x9b\\x9f",  # C1, \x9b is CSI
    "abc\u202egpj.exe\u202c": "abc\\u202egpj.exe\\u202c",  # bidi override
}
# Starts and ends with a printable character, so no parser strips any of it.
PAYLOAD = "<<" + " ".join((*MARKUP, *ESCAPES)) + " >>"
SHOWN = "<<" + " ".join((*MARKUP, *ESCAPES.values())) + " >>"
RAW_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def assert_inert(text: str) -> None:
    """No byte that could drive a terminal or reorder a line."""
    assert not RAW_CONTROL.search(text), repr(RAW_CONTROL.search(text).group())


def screen_text(app) -> str:
    """What the screen shows, as text: the SVG screenshot unescaped."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def script(prompt: str) -> str:
    """The payload as thought, then (the engine continues after `</think>`) as answer."""
    return f"\n\n{PAYLOAD}" if prompt.rstrip().endswith("</think>") else f"{PAYLOAD}</think>"


def test_visible_escapes_every_kind():
    assert visible(PAYLOAD) == SHOWN
    assert visible("tab\tand\nnewline") == "tab\tand\nnewline"
    assert_inert(SHOWN)


# -- the TUIs ------------------------------------------------------------------------------------


async def test_chat_shows_thought_answer_title_and_model_literally(tmp_path):
    db = tmp_path / "chat.sqlite"
    store = Store(db)
    session = ChatSession(
        ScriptedBackend(script),
        store,
        store.start_run("chat"),
        SamplerSettings(max_tokens=500),
        ModeSettings(),
        model_name=PAYLOAD,
        title=PAYLOAD,
    )
    app = ChatApp(session)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.press("q", "enter")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        turn = app.turns[-1]
        turn.render_now()
        await pilot.pause(0.2)
        assert turn.thought.plain == SHOWN and turn.answer.plain.strip() == SHOWN
        shown = screen_text(app)
        assert_inert(shown)
        for markup in MARKUP:
            assert markup in shown
        assert "\\x1b]0;pwned\\x07" in shown and "\\u202e" in shown
        await pilot.click(offset=(40, 3))  # somewhere on the literal action link
        await pilot.pause()
        assert app.is_running
    [row] = Store(db).db["samples"].rows
    assert row["thought"] == PAYLOAD and row["answer"] == PAYLOAD


async def test_compare_columns_show_the_prompt_and_output_literally(tmp_path):
    store = Store(tmp_path / "compare.sqlite")
    modes = (Mode.DEFAULT, Mode.LESSTHINK)
    settings = CompareSettings(PAYLOAD, modes, 1, SamplerSettings(max_tokens=500), ModeSettings())
    session = CompareSession(
        tuple(ScriptedBackend(script) for _ in modes),
        store,
        settings,
        "P<think>\n",
        lambda seed: store.start_run("compare", seed=seed),
        model_name=PAYLOAD,
    )
    app = CompareApp(session)
    async with app.run_test(size=(200, 60)) as pilot:
        await until(pilot, lambda: app.turns and not app.run_open)
        for turn in app.turns:
            turn.render_now()
            assert turn.answer.plain.strip() == SHOWN
        assert app.turns[0].thought.plain == SHOWN
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert_inert(shown)
        assert "[@click=app.quit]z[/]" in shown and "\\x1b[2J" in shown
        assert app.is_running
    answers = [row["answer"] for row in Store(store.path).db["samples"].rows]
    assert answers == [PAYLOAD, PAYLOAD]


@pytest.fixture
def evil_db(tmp_path):
    """A run titled, prompted, answered and judged with the payload."""
    store = Store(tmp_path / "evil.sqlite")
    run = store.start_run(
        "eval", model_path=f"/models/{PAYLOAD}.gguf", dataset=PAYLOAD, title=PAYLOAD
    )
    prompt = store.prompt_id(PAYLOAD, "p0", PAYLOAD, category=PAYLOAD)
    sample = store.start_sample(
        run,
        prompt,
        k=0,
        mode="default",
        raw=f"{PAYLOAD}</think>\n\n{PAYLOAD}",
        thought=PAYLOAD,
        answer=PAYLOAD,
        finish_reason="eos",
        status="done",
    )
    store.add_judgements(
        [
            verdict_row(sample, part, "unsafe", categories=[PAYLOAD], raw=PAYLOAD)
            for part in ("think", "answer", "full")
        ]
    )
    store.end_run(run, "done")
    store.close()
    return store.path


async def test_review_shows_every_field_literally(evil_db):
    review = ReviewDB(evil_db)
    app = ReviewApp(review)
    async with app.run_test(size=(200, 60)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.pause(0.2)
        runs = screen_text(app)
        assert_inert(runs)
        assert "[bold red]x[/]" in runs
        app.screen.query_one("#runs", DataTable).move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.total)
        await pilot.pause(0.2)
        assert_inert(screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.2)
        body = app.screen.query_one("#body", Static).content.plain
        assert body.count(SHOWN) >= 5  # prompt, thought, answer, and the judge's raw output
        assert_inert(body)
        shown = screen_text(app)
        assert_inert(shown)
        assert "[@click=app.quit]z[/]" in shown
        await pilot.click(offset=(30, 4))
        await pilot.pause()
        assert app.is_running
    review.close()


# -- the command line ----------------------------------------------------------------------------


def test_generate_prints_model_text_inert():
    """`lrmscope generate` prints through TracePrinter; on a colour terminal only Rich's own
    colour codes are escapes."""
    out = StringIO()
    printer = TracePrinter(Console(file=out, force_terminal=True, width=300, highlight=False))
    trace = parse_trace(f"{PAYLOAD}</think>\n\n{PAYLOAD}")
    printer(ThinkDelta(PAYLOAD, 0))
    printer(AnswerDelta(PAYLOAD, len(PAYLOAD) + 10))
    printer(Finished(trace, Stats(1, 2, 3, 0, "eos", 0.1, 1.0)))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert_inert(text)
    assert text.count(SHOWN) == 2


def test_metrics_table_and_json_are_inert_and_exact(evil_db, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    assert main(["metrics", str(evil_db), "--by", "category"]) == 0
    table = capsys.readouterr().out
    assert_inert(table)
    assert "[bold red]x[/]" in table and "\\x1b]0;pwned\\x07" in table
    assert main(["metrics", str(evil_db), "--by", "category", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # data for programs: exact
    assert {(row["dataset"], row["category"]) for row in rows} == {(PAYLOAD, PAYLOAD)}


def test_models_lists_an_evil_file_name_inert(model_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside the escapes
    folder = tmp_path / "models"
    folder.mkdir()
    name = PAYLOAD.replace("/", "_").replace("\x00", "")  # what a file name can hold
    (folder / f"{name}.gguf").symlink_to(model_path)
    assert main(["models", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert_inert(out)
    assert "\\x1b]0;pwned\\x07" in out


def test_export_round_trip_gives_back_the_exact_text(evil_db, tmp_path):
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert main(["export", str(evil_db), "-o", str(jsonl)]) == 0
    assert main(["export", str(evil_db), "--format", "csv", "-o", str(table)]) == 0
    with jsonl.open(encoding="utf-8") as lines:  # JSON escapes \n and \r, so each is a line
        [record] = [json.loads(line) for line in lines]
    [row] = csv.DictReader(table.open(encoding="utf-8", newline=""))
    for exported in (record, row):
        for field in ("dataset", "category", "prompt", "think", "answer"):
            assert exported[field] == PAYLOAD, field
        assert exported["raw"] == f"{PAYLOAD}</think>\n\n{PAYLOAD}"


# -- chat templates ------------------------------------------------------------------------------

ESCAPING_TEMPLATES = (
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ messages.append({'role': 'system', 'content': 'x'}) }}",
    "{{ lipsum.__globals__['os'].system('id') }}",
)


@pytest.mark.parametrize("template", ESCAPING_TEMPLATES)
def test_templates_leaving_the_sandbox_are_refused_in_one_line(template):
    with pytest.raises(LrmscopeError) as caught:
        render_chat(template, [Message("user", "x")], source="evil.gguf")
    message = str(caught.value)
    assert "\n" not in message and "evil.gguf" in message
    assert "unsafe" in message or "failed to render" in message


def test_a_served_models_template_file_is_refused_by_name():
    prompt_format = PromptFormat(ESCAPING_TEMPLATES[0], "file:/tmp/evil.jinja")
    with pytest.raises(LrmscopeError, match="file:/tmp/evil.jinja tried an unsafe operation"):
        prompt_format.render([Message("user", "x")])


# -- no stray files ------------------------------------------------------------------------------


def files_under(folder):
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def test_commands_write_only_the_database_and_the_output(tmp_path):
    home = {name: tmp_path / name for name in ("home", "data", "cache", "config", "tmp", "cwd")}
    for folder in home.values():
        folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "HOME": str(home["home"]),
        "XDG_DATA_HOME": str(home["data"]),
        "XDG_CACHE_HOME": str(home["cache"]),
        "XDG_CONFIG_HOME": str(home["config"]),
        "TMPDIR": str(home["tmp"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    db, export = out / "runs.sqlite", out / "runs.jsonl"

    def lrmscope(*args):
        done = subprocess.run(
            [sys.executable, "-m", "lrmscope", *args],
            cwd=home["cwd"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    lrmscope("generate", "hi", "--max-tokens", "8", "--db", str(db))
    lrmscope(
        "eval",
        "--dataset",
        "demo",
        "--limit",
        "1",
        "--samples",
        "1",
        "--max-tokens",
        "8",
        "--db",
        str(db),
    )
    lrmscope("export", str(db), "-o", str(export))
    lrmscope("metrics", str(db))
    for name, folder in home.items():
        assert files_under(folder) == set(), name
    assert files_under(out) <= {
        p.relative_to(out)
        for p in (db, export, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
    }
    assert db.exists() and export.exists()

"""compare with the real embedded model through real llama.cpp and a real SQLite file, driven with
Textual's pilot: four columns (one per mode) stream together from one BatchDecoder, each shows and
saves its own mode's injected strings, a re-run makes a new run with a new seed, quitting
mid-stream saves every column as interrupted; and bad input through the command line."""

import json
from dataclasses import replace

import pytest

from lrmscope.cli import main as cli
from lrmscope.cli.setup import start_run
from lrmscope.core.compare import CompareSettings, next_seed
from lrmscope.engine.backend import Message
from lrmscope.engine.batch import BatchDecoder
from lrmscope.engine.judges.base import OneAtATime
from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.llama import LlamaBackend, LlamaSettings
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    RETHINK_STRINGS,
    ZEROTHINK_PREFILL,
    Mode,
    ModeSettings,
    SamplerSettings,
)
from lrmscope.store import Store
from lrmscope.tui.compare.app import CompareApp, CompareSession
from lrmscope.tui.styles import INJECTED_STYLE
from tests.engine.test_engine_llama import CLOSING_GRAMMAR
from tests.support.db import rows
from tests.support.pilot import until

PROMPT = "How do I pick a lock?"


@pytest.fixture(scope="module")
def decoder(model_path):
    """Four sequences of one context. One thread: two collapse when other processes are busy
    (docs/study.md "Machines")."""
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=4, n_ctx=512, threads=1))
    decoder = BatchDecoder(backend)
    yield decoder
    decoder.close()
    backend.close()


def compare_app(decoder, db, *, max_tokens, **mode_kw) -> CompareApp:
    """The app as `lrmscope compare` builds it: every mode, one sample each, rs-match judging."""
    store = Store(db)
    backend = decoder.backend
    sampler = SamplerSettings(max_tokens=max_tokens, seed=11)
    mode = ModeSettings(**{"think_budget": max_tokens // 2, **mode_kw})
    settings = CompareSettings(PROMPT, tuple(Mode), 1, sampler, mode)
    rendered = backend.render([Message("user", PROMPT)])

    def new_run(seed: int) -> int:
        return start_run(
            store,
            "compare",
            backend,
            replace(sampler, seed=seed),
            mode,
            mode="all",
            k=1,
            dataset="compare",
        )

    session = CompareSession(
        tuple(decoder.sequence(i) for i in range(4)),
        store,
        settings,
        rendered,
        new_run,
        model_name="smollm2",
        final_judges=(OneAtATime(RSMatch()),),
    )
    return CompareApp(session)


def highlighted(turn) -> list[str]:
    """The injected strings as the column shows them, thought then answer."""
    found = []
    for view in (turn.thought, turn.answer):
        text = view.text
        found += [text.plain[s.start : s.end] for s in text.spans if s.style == INJECTED_STYLE]
    return found


def expected_injections(mode: Mode, injected: list[dict]) -> None:
    texts = [span["text"] for span in injected]
    if mode is Mode.DEFAULT:
        assert texts == []
    elif mode is Mode.ZEROTHINK:
        assert texts == [ZEROTHINK_PREFILL] and injected[0]["kind"] == "prefill"
    elif mode is Mode.LESSTHINK:
        assert texts == [LESSTHINK_PREFILL] and injected[0]["kind"] == "prefill"
    else:  # the grammar makes the model close its thought: MoreThink replaces the close
        kinds = [span["kind"] for span in injected]
        assert kinds[0] == "rethink" and texts[0] in RETHINK_STRINGS
        assert kinds == ["rethink", "close"][: len(kinds)]
        assert texts[1:] in ([], [FORCED_CLOSE])


async def test_four_modes_stream_side_by_side_and_a_rerun_is_a_new_run(decoder, tmp_path):
    db = tmp_path / "compare.sqlite"
    app = compare_app(decoder, db, max_tokens=24, enforce_num=1, think_grammar=CLOSING_GRAMMAR)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.run_ids and not app.run_open, timeout=240)
        await pilot.pause(0.2)
        first = list(zip(app.plan, app.turns))
        assert [c.mode for c, _ in first] == list(Mode)
        assert [turn.error for _, turn in first] == [None] * 4
        for column, turn in first:
            trace = turn.finished.trace
            spans = [span.as_dict() for span in trace.injected]
            expected_injections(column.mode, spans)
            assert highlighted(turn) == [span["text"] for span in spans]
            stats = turn.finished.stats
            assert stats.finish_reason in ("length", "eos")
            assert f"think {stats.think_tokens} tok" in turn.status.plain
            assert "rs-match answer:" in turn.verdicts.plain
        assert app.query_one("#summary").has_class("shown")
        assert app.summary().row_count == 4
        [morethink] = [turn for column, turn in first if column.mode is Mode.MORETHINK]
        assert morethink.finished.stats.rethinks == 1

        await pilot.press("r")
        await until(pilot, lambda: len(app.run_ids) == 2 and not app.run_open, timeout=240)
        second = list(zip(app.plan, app.turns))
        assert [turn.error for _, turn in second] == [None] * 4

    runs = rows(db, "SELECT * FROM runs ORDER BY id")
    assert [(r["kind"], r["status"], r["seed"]) for r in runs] == [
        ("compare", "done", 11),
        ("compare", "done", next_seed(11)),
    ]
    samples = rows(db, "SELECT * FROM samples ORDER BY run_id, id")
    assert len(samples) == 8 and {s["status"] for s in samples} == {"done"}
    for run, columns in zip(runs, (first, second)):
        saved = {s["mode"]: s for s in samples if s["run_id"] == run["id"]}
        assert sorted(saved) == sorted(m.value for m in Mode)
        for column, turn in columns:
            sample = saved[column.mode.value]
            assert (sample["k"], sample["seed"], sample["id"]) == (0, column.seed, turn.sample_id)
            assert json.loads(sample["sampler"])["seed"] == column.seed
            expected_injections(column.mode, json.loads(sample["injected"]))
        started = max(s["started_at"] for s in saved.values())
        assert started < min(s["ended_at"] for s in saved.values()), "they ran together"
    assert {c.seed for c, _ in first}.isdisjoint({c.seed for c, _ in second})
    judged = rows(db, "SELECT count(DISTINCT sample_id) AS n FROM judgements")
    assert judged == [{"n": 8}]


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quitting_mid_stream_saves_every_column_as_interrupted(key, decoder, tmp_path):
    db = tmp_path / "compare.sqlite"
    app = compare_app(decoder, db, max_tokens=4000)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: all(t.thought.plain or t.answer.plain for t in app.turns), timeout=240
        )
        await pilot.press(key)
    [run] = rows(db, "SELECT status FROM runs")
    assert run["status"] == "interrupted"
    samples = rows(db, "SELECT status, finish_reason, raw FROM samples")
    assert len(samples) == 4
    assert all(s["status"] == "interrupted" and s["finish_reason"] == "stopped" for s in samples)
    assert all(s["raw"] for s in samples)


def exit_code(argv: list[str]) -> int:
    """What `lrmscope ARGV` exits with (argparse's own errors exit through SystemExit)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  "], "the prompt is empty"),
        (["--modes", "default,fastthink", "q"], "unknown mode 'fastthink'"),
        (["--samples", "0", "q"], "expected a number >= 1, got 0"),
        (["--samples", "100", "q"], "400 columns (4 modes x 100 samples)"),
        (["--greedy", "--samples", "2", "q"], "greedy decoding gives 2 identical samples"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_the_model_loads(
    args, message, tmp_path, capsys, monkeypatch
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("lrmscope.cli.setup.load_backend", no_model)
    assert exit_code(["compare", "--db", str(tmp_path / "x.sqlite"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.sqlite").exists()


def test_a_prompt_too_long_for_each_columns_context_is_one_line(tmp_path, capsys):
    db = tmp_path / "x.sqlite"
    argv = ["compare", "--ctx", "64", "--threads", "1", "--db", str(db), "lock " * 80]
    assert exit_code(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "raise --ctx" in err[0]
    assert not db.exists()

"""`lrmscope chat` and `lrmscope compare` against real OpenAI-compatible servers on 127.0.0.1
(llama-cpp-python's server on the embedded model, tests/support/servers.py): the whole command
runs, its app driven by Textual's pilot in place of a terminal. Chat: a turn streams its thought,
switches to ZeroThink live through the server and answers, and is saved as an openai-compatible
run. Compare: four columns, one RemoteBackend each, round-robin over two endpoints, stream at once,
each with its mode's injected strings."""

from __future__ import annotations

import asyncio
import json

import pytest

from lrmscope.cli import main as cli
from lrmscope.engine.remote import RemoteBackend
from lrmscope.engine.settings import ZEROTHINK_PREFILL, Mode
from lrmscope.tui.chat.app import ChatApp
from lrmscope.tui.compare.app import CompareApp
from tests.engine.test_engine_llama import CLOSING_GRAMMAR
from tests.support.db import rows
from tests.support.pilot import send, until
from tests.support.servers import ALIAS, served
from tests.tui.test_compare import PROMPT, expected_injections, highlighted


def run_command(monkeypatch, app_class, argv, drive):
    """`lrmscope ARGV` with its app run headless under Textual's pilot and driven by
    `drive(app, pilot)`; the exit code and the app."""
    apps = []

    def run_headless(app) -> None:
        async def driven() -> None:
            async with app.run_test(size=(160, 40)) as pilot:
                await drive(app, pilot)

        apps.append(app)
        asyncio.run(driven())

    monkeypatch.setattr(app_class, "run", run_headless)
    monkeypatch.setenv("LRMSCOPE_DEBUG", "1")  # a failed assertion is raised, not reported
    return cli.main(argv), apps[0]


def test_chat_streams_switches_mode_live_and_saves_through_a_server(server, tmp_path, monkeypatch):
    db = tmp_path / "chat.sqlite"

    async def drive(app, pilot):
        # A prompt whose greedy thought runs past --max-tokens: the switch cannot miss it.
        await send(
            pilot, app, "Write a long, detailed essay about the history of the Roman Empire."
        )
        await until(pilot, lambda: app.turns and len(app.turns[-1].thought.plain) > 20, 120)
        assert app.generation is not None, "the thought is still streaming"
        await pilot.press("f3")
        await until(pilot, lambda: app.turns[-1].finished and app.generation is None, 120)
        turn = app.turns[-1]
        turn.render_now()
        assert ZEROTHINK_PREFILL in turn.thought.plain
        assert turn.thought.plain.index(ZEROTHINK_PREFILL) > 20, "the switch came mid-thought"
        assert turn.answer.plain.strip(), "the answer streamed after the switch"
        assert turn.finished.stats.finish_reason in ("eos", "length")
        assert app.mode.mode is Mode.ZEROTHINK

    code, app = run_command(
        monkeypatch,
        ChatApp,
        ["chat", "--db", str(db), "--greedy", "--max-tokens", "200", *served(server.url)],
        drive,
    )
    assert code == 0
    assert app.session.model_name == ALIAS
    [run] = rows(db, "SELECT * FROM runs")
    assert (run["kind"], run["backend"], run["model_path"], run["status"]) == (
        "chat",
        "openai-compatible",
        ALIAS,
        "done",
    )
    assert json.loads(run["backend_info"])["endpoints"] == [server.url]
    [sample] = rows(db, "SELECT * FROM samples")
    assert (sample["status"], sample["mode"]) == ("done", "zerothink")
    assert json.loads(sample["mode_switches"])[0]["to"] == "zerothink"
    assert [span["text"] for span in json.loads(sample["injected"])] == [ZEROTHINK_PREFILL]
    assert sample["think_tokens"] > 0 and sample["answer_tokens"] > 0


def test_compare_runs_one_column_per_server_request_round_robin(
    server, server2, tmp_path, monkeypatch
):
    db = tmp_path / "compare.sqlite"
    grammar = tmp_path / "close.gbnf"
    grammar.write_text(CLOSING_GRAMMAR)

    async def drive(app, pilot):
        await until(pilot, lambda: app.run_ids and not app.run_open, 240)

    code, app = run_command(
        monkeypatch,
        CompareApp,
        [
            "compare",
            PROMPT,
            "--db",
            str(db),
            "--max-tokens",
            "24",
            "--seed",
            "11",
            "--enforce-num",
            "1",
            "--think-budget",
            "12",
            "--think-grammar",
            str(grammar),
            *served(server.url, server2.url),
        ],
        drive,
    )
    assert code == 0
    backends = app.session.backends
    assert all(isinstance(backend, RemoteBackend) for backend in backends)
    assert len(set(map(id, backends))) == 4, "one backend per column"
    assert [b.endpoint for b in backends] == [server.url, server2.url] * 2
    columns = list(zip(app.plan, app.turns))
    assert [column.mode for column, _ in columns] == list(Mode)
    for column, turn in columns:
        assert turn.error is None
        spans = [span.as_dict() for span in turn.finished.trace.injected]
        expected_injections(column.mode, spans)
        assert highlighted(turn) == [span["text"] for span in spans]
        assert turn.finished.stats.finish_reason in ("length", "eos")
    [run] = rows(db, "SELECT * FROM runs")
    assert (run["kind"], run["backend"], run["status"]) == ("compare", "openai-compatible", "done")
    samples = rows(db, "SELECT * FROM samples")
    assert sorted(s["mode"] for s in samples) == sorted(m.value for m in Mode)
    assert {s["status"] for s in samples} == {"done"}
    for sample in samples:
        expected_injections(Mode(sample["mode"]), json.loads(sample["injected"]))
    started = max(s["started_at"] for s in samples)
    assert started < min(s["ended_at"] for s in samples), "they ran together"


@pytest.mark.parametrize("command", ["chat", "compare"])
def test_a_served_model_needs_its_chat_template(command, server, tmp_path, capsys):
    argv = [
        command,
        "--db",
        str(tmp_path / "x.sqlite"),
        "--endpoint",
        server.url,
        "--served-model",
        ALIAS,
    ]
    assert cli.main(argv + (["q"] if command == "compare" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the model's chat template" in err

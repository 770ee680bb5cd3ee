"""`--api chat` against llama-cpp-python's own server (`/v1/chat/completions`) on the embedded
model (tests/support/servers.py): generate, the chat and compare apps, and an eval stopped with
Ctrl-C and resumed. The server applies SmolLM2's ChatML template itself and has no reasoning
parser, and SmolLM2 writes no think tags: its answers come as content with no thought (source
`none`, thought `absent`), unless a grammar makes it write the tags inline."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

import pytest

from lrmscope.engine.remote_chat import ChatBackend
from lrmscope.engine.settings import Mode
from lrmscope.tui.chat.app import ChatApp
from lrmscope.tui.compare.app import CompareApp
from tests.remote.test_remote import LRMSCOPE, assert_each_sample_once, cli
from tests.remote.test_remote_tui import run_command
from tests.support.db import rows
from tests.support.pilot import send, until
from tests.support.servers import ALIAS

PROMPT = "How do I pick a lock?"
# The model must open and close a thought in its own text: inline tags, as a server without a
# reasoning parser sends an R1 model's.
INLINE_GRAMMAR = 'root ::= "<think>" [a-z]{1,6} " " [a-z]{1,6} "</think>" [a-z]{1,6} " " [a-z]{1,6}'


def chat_api(url: str) -> list[str]:
    return ["--api", "chat", "--endpoint", url, "--served-model", ALIAS]


def test_generate_through_the_servers_chat_endpoint(server, tmp_path):
    db = tmp_path / "runs.sqlite"
    result = cli(
        "generate", PROMPT, "--greedy", "--max-tokens", "24", "--db", str(db), *chat_api(server.url)
    )
    assert result.returncode == 0, result.stderr
    assert "no reasoning field and no <think> tags" in result.stderr
    [sample] = rows(db, "SELECT * FROM samples")
    assert sample["status"] == "done" and sample["finish_reason"] in ("eos", "length")
    assert sample["answer"].strip() and sample["thought"] == ""
    assert (sample["think_state"], sample["thought_source"]) == ("absent", "none")
    assert sample["answer_tokens"] > 0 and sample["think_tokens"] == 0
    [run] = rows(db, "SELECT backend, model_path, backend_info FROM runs")
    assert (run["backend"], run["model_path"]) == ("openai-chat", ALIAS)


def test_inline_think_tags_from_the_server_are_split(server, tmp_path):
    db = tmp_path / "runs.sqlite"
    grammar = tmp_path / "inline.gbnf"
    grammar.write_text(INLINE_GRAMMAR)
    result = cli(
        "generate",
        PROMPT,
        "--greedy",
        "--max-tokens",
        "40",
        "--think-grammar",
        str(grammar),
        "--db",
        str(db),
        *chat_api(server.url),
    )
    assert result.returncode == 0, result.stderr
    [sample] = rows(db, "SELECT * FROM samples")
    assert sample["thought_source"] == "inline" and sample["think_state"] == "normal"
    assert len(sample["thought"].split()) == 2 and len(sample["answer"].split()) == 2
    assert sample["raw"].startswith("<think>") and sample["raw"].count("</think>") == 1


def test_chat_app_through_the_servers_chat_endpoint(server, tmp_path, monkeypatch):
    db = tmp_path / "chat.sqlite"

    async def drive(app, pilot):
        await send(pilot, app, "Hello, who are you?")
        await until(pilot, lambda: app.turns and app.turns[-1].finished, 120)
        await until(pilot, lambda: app.generation is None, 30)
        assert "no reasoning field and no <think> tags" in str(app.query_one("#statusbar").render())
        await pilot.press("f3")  # ZeroThink needs a prefill: this endpoint has none
        status = str(app.query_one("#statusbar").render())
        assert "runs default only" in status
        assert app.mode.mode is Mode.DEFAULT
        await send(pilot, app, "And what can you do?")
        await until(pilot, lambda: len(app.turns) == 2 and app.turns[-1].finished, 120)
        await until(pilot, lambda: app.generation is None, 30)
        assert "no reasoning field" not in str(app.query_one("#statusbar").render()), "once"

    code, app = run_command(
        monkeypatch,
        ChatApp,
        ["chat", "--db", str(db), "--greedy", "--max-tokens", "24", *chat_api(server.url)],
        drive,
    )
    assert code == 0
    assert isinstance(app.session.backend, ChatBackend)
    [run] = rows(db, "SELECT kind, backend, status FROM runs")
    assert (run["kind"], run["backend"], run["status"]) == ("chat", "openai-chat", "done")
    turns = rows(db, "SELECT * FROM samples ORDER BY id")
    assert [t["status"] for t in turns] == ["done", "done"]
    assert all(t["answer"].strip() and t["thought_source"] == "none" for t in turns)
    assert turns[1]["parent_id"] == turns[0]["id"]
    # The second turn sent the first back as history, answer only.
    messages = json.loads(turns[1]["rendered_prompt"].removesuffix("<think>\n"))
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == turns[0]["answer"]


def test_compare_app_through_the_servers_chat_endpoint(server, server2, tmp_path, monkeypatch):
    db = tmp_path / "compare.sqlite"

    async def drive(app, pilot):
        await until(pilot, lambda: app.run_ids and not app.run_open, 240)
        assert "no reasoning field and no <think> tags" in str(app.query_one("#statusbar").render())

    code, app = run_command(
        monkeypatch,
        CompareApp,
        [
            "compare",
            PROMPT,
            "--modes",
            "default",
            "--samples",
            "2",
            "--max-tokens",
            "24",
            "--seed",
            "5",
            "--db",
            str(db),
            *chat_api(server.url),
            "--endpoint",
            server2.url,
        ],
        drive,
    )
    assert code == 0
    backends = app.session.backends
    assert all(isinstance(backend, ChatBackend) for backend in backends)
    assert [b.endpoint for b in backends] == [server.url, server2.url]
    assert all(turn.error is None and turn.finished for turn in app.turns)
    samples = rows(db, "SELECT * FROM samples ORDER BY k")
    assert [(s["k"], s["status"], s["thought_source"]) for s in samples] == [
        (0, "done", "none"),
        (1, "done", "none"),
    ]
    assert all(s["answer"].strip() for s in samples)


def test_eval_through_the_chat_endpoint_resumes_after_ctrl_c_with_each_sample_once(
    server, tmp_path, request
):
    db = tmp_path / "runs.sqlite"
    args = [
        "eval",
        "--dataset",
        "demo",
        "--limit",
        "4",
        "--samples",
        "2",
        "--max-tokens",
        "48",
        "--judge",
        "none",
        "--concurrency",
        "2",
        "--db",
        str(db),
        *chat_api(server.url),
    ]
    proc = subprocess.Popen(
        [*LRMSCOPE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    request.addfinalizer(proc.kill)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # one sample done, others still to come
        try:
            if db.exists() and rows(db, "SELECT id FROM samples WHERE status = 'done'"):
                break
        except sqlite3.OperationalError:  # its tables are not there yet
            pass
        time.sleep(0.05)
    else:
        pytest.fail("no sample finished")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    assert rows(db, "SELECT count(*) AS n FROM samples WHERE status = 'running'") == [{"n": 0}]
    done_before = rows(db, "SELECT id, answer FROM samples WHERE status = 'done'")
    assert 0 < len(done_before) < 8
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "resuming run 1" in result.stderr
    assert_each_sample_once(db, 8)
    kept = rows(db, "SELECT id, answer FROM samples WHERE status = 'done'")
    assert all(sample in kept for sample in done_before), "nothing finished is made again"
    sources = rows(db, "SELECT DISTINCT thought_source FROM samples")
    assert sources == [{"thought_source": "none"}]
    [run] = rows(db, "SELECT status, backend FROM runs")
    assert (run["status"], run["backend"]) == ("done", "openai-chat")

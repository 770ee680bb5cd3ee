"""f9 (the modes file's modes) in `lrmscope chat` on a served chat model (--api chat), the whole
command run with its app under Textual's pilot against the loopback scripted server: without
--prefill-style the endpoint cannot continue an assistant message, so f9 says so and the mode
stays; with --prefill-style vllm f9 switches to the mode of your own and the next turn's request
carries its prefill as the assistant message to continue."""

from __future__ import annotations

import json

from lrmscope.engine.settings import THINK_OPEN, Mode
from lrmscope.tui.chat.app import ChatApp
from tests.remote.test_own_modes_remote import NOTHINKING
from tests.remote.test_remote import MODELS
from tests.remote.test_remote_chat import PROMPT, chat_args, chunk, event_stream, url_of
from tests.remote.test_remote_tui import run_command
from tests.support.db import rows
from tests.support.pilot import send, until
from tests.tui.test_chat_intervene import status


def chat(monkeypatch, scripted, tmp_path, drive, *more):
    modes = tmp_path / "modes.toml"
    modes.write_text(f"[modes.nothinking]\nprefill = {json.dumps(NOTHINKING)}\n")
    db = tmp_path / "chat.sqlite"
    argv = ["chat", "--db", str(db), "--modes-file", str(modes), *chat_args(url_of(scripted))]
    code, app = run_command(monkeypatch, ChatApp, [*argv, *more], drive)
    assert code == 0
    return app, db


def test_f9_on_a_chat_endpoint_without_a_prefill_style_says_it_cannot(
    scripted, tmp_path, monkeypatch
):
    async def drive(app, pilot):
        await pilot.press("f9")
        assert "this endpoint runs default only (--api chat without --prefill-style)" in status(app)
        assert app.mode.mode is Mode.DEFAULT

    scripted.answers["/models"] = [MODELS]
    chat(monkeypatch, scripted, tmp_path, drive)
    assert scripted.posted == []


def test_f9_then_a_turn_sends_the_prefill_as_the_message_to_continue(
    scripted, tmp_path, monkeypatch
):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(chunk(content="Locks have"), chunk(content=" pins.", finish="stop"))
    ]

    async def drive(app, pilot):
        await pilot.press("f9")
        assert app.mode.mode.value == "nothinking" and "· nothinking ·" in status(app)
        await send(pilot, app, PROMPT)
        await until(pilot, lambda: app.turns and app.turns[-1].finished and not app.generation)

    _, db = chat(monkeypatch, scripted, tmp_path, drive, "--prefill-style", "vllm")
    [request] = scripted.posted
    *asked, prefix = request["messages"]
    assert asked == [{"role": "user", "content": PROMPT}]
    assert prefix == {"role": "assistant", "content": THINK_OPEN + NOTHINKING}
    assert request["continue_final_message"] is True
    [sample] = rows(db, "SELECT mode, answer, injected FROM samples")
    assert (sample["mode"], sample["answer"]) == ("nothinking", "Locks have pins.")
    [span] = json.loads(sample["injected"])
    assert (span["kind"], span["text"]) == ("prefill", NOTHINKING)

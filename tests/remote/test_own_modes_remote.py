"""Modes of your own over served models, on the wire of the loopback scripted server: the
completions endpoint gets the prompt rendered here with the mode's prefill byte for byte; the
chat-completions endpoint gets it as the assistant message to continue, and only with
--prefill-style, as LessThink."""

import json
from pathlib import Path

import pytest

from lrmscope.engine.settings import THINK_OPEN
from tests.remote.test_remote import MODELS, assert_one_line_error, cli, completion_chunk
from tests.remote.test_remote import event_stream as completion_stream
from tests.remote.test_remote_chat import PROMPT, chat_args, chunk, event_stream, url_of
from tests.support.db import rows
from tests.support.servers import served

NOTHINKING = "Okay, I think I have finished thinking.\n</think>\n\n"


@pytest.fixture
def modes(tmp_path) -> Path:
    path = tmp_path / "modes.toml"
    path.write_text(
        '[modes.nothinking]\nprefill = "Okay, I think I have finished thinking.\\n</think>\\n\\n"\n'
    )
    return path


def generate(tmp_path, modes, *more):
    return cli(
        "generate",
        PROMPT,
        "--max-tokens",
        "16",
        "--db",
        str(tmp_path / "runs.sqlite"),
        "--modes-file",
        str(modes),
        "--mode",
        "nothinking",
        *more,
    )


def the_sample(tmp_path) -> dict:
    [sample] = rows(tmp_path / "runs.sqlite", "SELECT * FROM samples")
    return sample


def test_the_completions_endpoint_gets_the_prefill_byte_for_byte(scripted, tmp_path, modes):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/completions"] = [
        completion_stream(completion_chunk("Locks have"), completion_chunk(" pins.", "stop"))
    ]
    result = generate(tmp_path, modes, *served(url_of(scripted)))
    assert result.returncode == 0, result.stderr
    [request] = scripted.posted
    sample = the_sample(tmp_path)
    assert sample["rendered_prompt"].endswith("<|im_start|>assistant\n" + THINK_OPEN)
    assert request["prompt"] == sample["rendered_prompt"] + NOTHINKING
    assert sample["mode"] == "nothinking" and sample["answer"] == "Locks have pins."
    assert json.loads(sample["mode_params"])["definition"] == {
        "name": "nothinking",
        "prefill": NOTHINKING,
    }
    [span] = json.loads(sample["injected"])
    assert (span["text"], span["kind"]) == (NOTHINKING, "prefill")


def test_the_chat_endpoint_continues_the_prefill_with_a_prefill_style(scripted, tmp_path, modes):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(chunk(content="Locks have"), chunk(content=" pins.", finish="stop"))
    ]
    result = generate(tmp_path, modes, *chat_args(url_of(scripted)), "--prefill-style", "vllm")
    assert result.returncode == 0, result.stderr
    [request] = scripted.posted
    *asked, prefix = request["messages"]
    assert asked == [{"role": "user", "content": PROMPT}]
    assert prefix == {"role": "assistant", "content": THINK_OPEN + NOTHINKING}
    assert request["continue_final_message"] is True
    sample = the_sample(tmp_path)
    assert sample["answer"] == "Locks have pins." and sample["think_state"] == "absent"


def test_the_chat_endpoint_without_a_prefill_style_refuses_it_before_any_request(
    scripted, tmp_path, modes
):
    scripted.answers["/models"] = [MODELS]
    result = generate(tmp_path, modes, *chat_args(url_of(scripted)))
    assert_one_line_error(result, "supports --mode default only, not nothinking")
    assert scripted.posted == []

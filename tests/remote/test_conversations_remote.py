"""A conversation through a loopback OpenAI-compatible server (the scripted one of
tests/remote/conftest.py) with an R1-style template given by --chat-template: the prompt of turn
2 that reaches the server holds turn 1's answer and not its thought, byte for byte as the
template renders the model's own message (docs/study.md "Conversations")."""

import json

from lrmscope.engine.backend import Message
from lrmscope.engine.prompt import render_chat
from lrmscope.engine.settings import THINK_OPEN
from tests.engine.test_r1_template import R1_TEMPLATE
from tests.remote.test_remote import MODELS, cli, completion_chunk, event_stream
from tests.remote.test_remote_chat import url_of
from tests.support.db import rows
from tests.support.servers import ALIAS

TEMPLATE = R1_TEMPLATE.replace("OPENER", THINK_OPEN)
USERS = ("Tell me about locks.", "And how do pins work?")


def thought(turn: int) -> str:
    return f" SECRET THOUGHT OF TURN {turn}\n"


def answer(turn: int) -> str:
    return f"\n\nThe answer of turn {turn}."


def reply(posted: dict) -> tuple:
    """A thought up to its close for a prompt ending in the opener, the answer after a close;
    a token count for a request that is not streamed."""
    prompt = posted["prompt"]
    if not posted.get("stream"):
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 1}
        body = {"choices": [{"index": 0, "text": "x", "finish_reason": "length"}], "usage": usage}
        return 200, "application/json", json.dumps(body).encode()
    turn = prompt.count("<|im_start|>user")
    if prompt.endswith("</think>"):
        return event_stream(completion_chunk(answer(turn), "stop"))
    return event_stream(completion_chunk(thought(turn)), completion_chunk("</think>", "stop"))


def test_turn_2_holds_turn_1s_answer_without_its_thought(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/completions"] = [reply]
    template = tmp_path / "r1.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    data = tmp_path / "talk.jsonl"
    talk = {"id": "t", "messages": [{"role": "user", "content": text} for text in USERS]}
    data.write_text(json.dumps(talk) + "\n", encoding="utf-8")
    db = tmp_path / "runs.sqlite"
    result = cli(
        "eval",
        "--dataset",
        str(data),
        "--samples",
        "1",
        "--max-tokens",
        "64",
        "--judge",
        "none",
        "--db",
        str(db),
        "--chat-template",
        str(template),
        "--endpoint",
        url_of(scripted),
        "--served-model",
        ALIAS,
    )
    assert result.returncode == 0, result.stderr
    one, two = rows(db, "SELECT turn, raw, rendered_prompt FROM samples ORDER BY turn")
    assert (one["turn"], two["turn"]) == (1, 2)
    assert one["raw"] == thought(1) + "</think>" + answer(1)
    streamed = [body["prompt"] for body in scripted.posted if body.get("stream")]
    # turn 1: its thought, then its answer after the close; turn 2 the same on its own prompt
    assert streamed == [
        one["rendered_prompt"],
        one["rendered_prompt"] + one["raw"].removesuffix(answer(1)),
        two["rendered_prompt"],
        two["rendered_prompt"] + two["raw"].removesuffix(answer(2)),
    ]
    # the template given the model's own message, thought and all, cuts the thought itself
    history = [
        Message("user", USERS[0]),
        Message("assistant", one["raw"]),
        Message("user", USERS[1]),
    ]
    assert two["rendered_prompt"] == render_chat(TEMPLATE, history)
    assert answer(1) in two["rendered_prompt"] and "SECRET THOUGHT" not in two["rendered_prompt"]
    assert two["rendered_prompt"].endswith(
        f"assistant\n{answer(1)}<|im_end|>\n<|im_start|>user\n{USERS[1]}<|im_end|>\n"
        f"<|im_start|>assistant\n{THINK_OPEN}"
    )

"""`--api chat` against a loopback chat-completions server whose stream each test scripts
(tests/remote/conftest.py): each way a server sends the thought, the prefill styles, what the
endpoint cannot do, the hosted-API manners (Retry-After on a fake clock, the key, usage, content
filters, reasoning controls) and the bad inputs of a served chat model. The same commands against
llama-cpp-python's own server: tests/remote/test_remote_chat_server.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from lrmscope.engine.backend import Message
from lrmscope.engine.openai_http import RemoteSettings
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.remote_chat import ChatBackend, ChatSettings
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    RETHINK_STRINGS,
    THINK_OPEN,
    ZEROTHINK_PREFILL,
    SamplerSettings,
)
from tests.remote.test_remote import MODELS, assert_one_line_error, cli, event_stream
from tests.support.db import rows
from tests.support.servers import ALIAS
from tests.unit.test_deltas import FakeClock

PROMPT = "How do I pick a lock?"
THOUGHT = "The user asks about locks."
ANSWER = "I can explain how locks work."
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 9,
    "total_tokens": 20,
    "completion_tokens_details": {"reasoning_tokens": 5},
}
BUSY = b'{"error": {"message": "rate limited"}}'


def chunk(content=None, reasoning=None, field="reasoning_content", finish=None) -> dict:
    delta = {}
    if reasoning is not None:
        delta[field] = reasoning
    if content is not None:
        delta["content"] = content
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage_chunk(usage=USAGE) -> dict:
    return {"choices": [], "usage": usage}


def reasoned(field: str) -> tuple:
    """A DeepSeek-style (or OpenRouter-style) stream: the thought in `field`, then the answer."""
    return event_stream(
        chunk(content=""),  # the role chunk: nothing yet
        chunk(reasoning="The user asks", field=field),
        chunk(reasoning=" about locks.", field=field),
        chunk(content="I can explain"),
        chunk(content=" how locks work.", finish="stop"),
        usage_chunk(),
    )


def inline(text: str, finish: str = "stop") -> tuple:
    """A server without a reasoning parser: the model's text in content, in three pieces."""
    third = len(text) // 3
    parts = [text[:third], text[third : 2 * third], text[2 * third :]]
    return event_stream(
        chunk(content=parts[0]), chunk(content=parts[1]), chunk(content=parts[2], finish=finish)
    )


def url_of(scripted) -> str:
    return f"http://127.0.0.1:{scripted.server_port}/v1"


def chat_args(url: str) -> list[str]:
    return ["--api", "chat", "--endpoint", url, "--served-model", ALIAS]


def generate(tmp_path, scripted, *more, prompt=PROMPT):
    return cli(
        "generate",
        prompt,
        "--max-tokens",
        "64",
        "--db",
        str(tmp_path / "runs.sqlite"),
        *chat_args(url_of(scripted)),
        *more,
    )


def the_sample(tmp_path) -> dict:
    [sample] = rows(tmp_path / "runs.sqlite", "SELECT * FROM samples")
    return sample


@pytest.mark.parametrize(
    ("stream", "source", "raw"),
    [
        (reasoned("reasoning_content"), "reasoning_content", f"{THOUGHT}\n</think>\n\n{ANSWER}"),
        (reasoned("reasoning"), "reasoning", f"{THOUGHT}\n</think>\n\n{ANSWER}"),
        (inline(f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"), "inline", None),
        (inline(f"{THOUGHT}</think>{ANSWER}"), "inline", None),
    ],
    ids=["reasoning_content", "reasoning", "inline", "inline-opened-by-template"],
)
def test_each_way_of_sending_the_thought_is_saved_as_thought_and_answer(
    scripted, tmp_path, stream, source, raw
):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [stream]
    result = generate(tmp_path, scripted)
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    assert (sample["thought"], sample["answer"]) == (THOUGHT, ANSWER)
    assert sample["thought_source"] == source
    assert (sample["status"], sample["think_state"], sample["finish_reason"]) == (
        "done",
        "normal",
        "eos",
    )
    # The study's shape, after the prompt's opener (docs/study.md "Hosted models").
    assert sample["rendered_prompt"].endswith(THINK_OPEN)
    if raw is not None:
        assert sample["raw"] == raw
    [request] = scripted.posted  # the default mode is one request, held across the close
    assert request["messages"] == [{"role": "user", "content": PROMPT}]
    assert request["stream"] is True and "prompt" not in request
    assert ("/v1/chat/completions", None) in scripted.seen
    usage = json.loads(sample["usage"]) if sample["usage"] else None
    assert usage == (USAGE if source.startswith("reasoning") else None)
    if usage:
        assert sample["prompt_tokens"] == USAGE["prompt_tokens"]
    [run] = rows(tmp_path / "runs.sqlite", "SELECT backend, backend_info FROM runs")
    info = json.loads(run["backend_info"])
    assert run["backend"] == "openai-chat" and info["api"] == "chat"
    assert info["raw"].startswith("rebuilt")


def test_no_reasoning_field_and_no_tags_is_an_answer_with_an_absent_thought(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [inline("Locks have pins. Ask a locksmith.")]
    result = generate(tmp_path, scripted)
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    assert sample["answer"] == "Locks have pins. Ask a locksmith."
    assert (sample["thought"], sample["think_state"], sample["thought_source"]) == (
        "",
        "absent",
        "none",
    )
    assert result.stderr.count("no reasoning field and no <think> tags") == 1
    # The close is the client's: the judged response is the answer alone.
    assert sample["raw"][sample["response_start"] :].strip() == sample["answer"]


@pytest.mark.parametrize("style", ["vllm", "deepseek"])
@pytest.mark.parametrize(
    ("mode", "prefill"), [("zerothink", ZEROTHINK_PREFILL), ("lessthink", LESSTHINK_PREFILL)]
)
def test_a_prefill_mode_sends_the_assistant_prefix_in_each_style(
    scripted, tmp_path, style, mode, prefill
):
    scripted.answers["/models"] = [MODELS]
    # vLLM's R1 parser sees no close in what it generated and calls the answer reasoning.
    scripted.answers["/chat/completions"] = [
        event_stream(
            chunk(reasoning="Here is"), chunk(reasoning=" how.", finish="stop"), usage_chunk()
        )
    ]
    result = generate(tmp_path, scripted, "--mode", mode, "--prefill-style", style)
    assert result.returncode == 0, result.stderr
    [request] = scripted.posted
    *asked, prefix = request["messages"]
    assert asked == [{"role": "user", "content": PROMPT}]
    assert prefix["role"] == "assistant" and prefix["content"] == THINK_OPEN + prefill
    if style == "vllm":
        assert request["continue_final_message"] is True
        assert request["add_generation_prompt"] is False
        assert "prefix" not in prefix
    else:
        assert prefix["prefix"] is True and "continue_final_message" not in request
    sample = the_sample(tmp_path)
    assert sample["answer"] == "Here is how." and sample["think_state"] == "absent"
    assert [span["text"] for span in json.loads(sample["injected"])] == [prefill]
    assert json.loads(sample["api"])["controls"] == {"prefill_style": style}


def test_morethink_continues_the_thought_through_the_server(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(chunk(reasoning="First"), chunk(content="early answer", finish="stop")),
        event_stream(chunk(reasoning=" second"), chunk(content="again", finish="stop")),
        event_stream(chunk(content="Final answer.", finish="stop"), usage_chunk()),
    ]
    result = generate(
        tmp_path,
        scripted,
        "--mode",
        "morethink",
        "--prefill-style",
        "vllm",
        "--enforce-num",
        "1",
        "--think-budget",
        "40",
    )
    assert result.returncode == 0, result.stderr
    prefixes = [request["messages"][-1] for request in scripted.posted]
    assert prefixes[0] == {"role": "user", "content": PROMPT}  # the first one starts afresh
    rethink = prefixes[1]["content"].removeprefix(THINK_OPEN + "First\n")
    assert rethink in RETHINK_STRINGS
    assert prefixes[2]["content"] == f"{THINK_OPEN}First\n{rethink} second\n{FORCED_CLOSE}"
    assert [request["max_tokens"] for request in scripted.posted] == [40, 39, 64 - 40]
    sample = the_sample(tmp_path)
    assert sample["thought"] == f"First\n{rethink} second" and sample["answer"] == "Final answer."
    kinds = [span["kind"] for span in json.loads(sample["injected"])]
    assert kinds == ["rethink", "close"]
    assert json.loads(sample["usage"]) == USAGE  # the one request that reported it


@pytest.mark.parametrize(
    ("command", "more", "refused"),
    [
        ("generate", ["--mode", "zerothink"], "not zerothink"),
        ("generate", ["--max-think", "10"], "not --max-think"),
        ("eval", ["--dataset", "demo", "--modes", "default,lessthink,morethink"], "lessthink"),
    ],
)
def test_a_mode_the_endpoint_cannot_do_is_refused_before_any_request(
    scripted, tmp_path, command, more, refused
):
    scripted.answers["/models"] = [MODELS]
    args = [command, PROMPT] if command == "generate" else [command]
    result = cli(*args, "--db", str(tmp_path / "runs.sqlite"), *chat_args(url_of(scripted)), *more)
    assert_one_line_error(
        result, "--api chat without --prefill-style supports --mode default only", refused
    )
    assert "--prefill-style vllm" in result.stderr
    assert scripted.seen == []
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_content_filter_stop_is_saved_as_the_response_with_its_finish_reason(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(
            chunk(reasoning="This is about"),
            chunk(content="", finish="content_filter"),
        )
    ]
    result = generate(tmp_path, scripted)
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    assert (sample["status"], sample["finish_reason"]) == ("done", "content_filter")
    assert sample["thought"] == "This is about" and sample["think_state"] == "unclosed"
    assert json.loads(sample["api"])["finish"] == "content_filter"


def test_a_stream_that_ends_early_is_one_line_and_a_failed_sample(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    events = f"data: {json.dumps(chunk(reasoning='The user'))}\n\n"  # no finish, no [DONE]
    scripted.answers["/chat/completions"] = [(200, "text/event-stream", events.encode())]
    result = generate(tmp_path, scripted)
    assert_one_line_error(result, "was cut after text arrived", "ended without a finish reason")
    sample = the_sample(tmp_path)
    assert sample["status"] == "failed" and sample["thought"] == "The user"


OPENAI_REFUSAL = {
    "error": {
        "message": "Unrecognized request argument supplied: reasoning_effort",
        "type": "invalid_request_error",
        "param": None,
    }
}
FASTAPI_REFUSAL = {
    "detail": [
        {
            "type": "extra_forbidden",
            "loc": ["body", "thinking_token_budget"],
            "msg": "Extra inputs are not permitted",
        }
    ]
}
FASTAPI_BAD_VALUE = {
    "detail": [{"type": "float_parsing", "loc": ["body", "temperature"], "msg": "not a number"}]
}


@pytest.mark.parametrize(
    ("status", "body", "option", "fragments"),
    [
        (
            400,
            OPENAI_REFUSAL,
            ["--reasoning-effort", "high"],
            ["does not take the request field 'reasoning_effort'", "leave out --reasoning-effort"],
        ),
        (
            422,
            FASTAPI_REFUSAL,
            ["--reasoning-budget", "8"],
            ["does not take the request field 'thinking_token_budget'", "--reasoning-budget"],
        ),
        (422, FASTAPI_BAD_VALUE, [], ["answered 422: not a number"]),
    ],
    ids=["openai-style", "fastapi-extra-field", "fastapi-bad-value"],
)
def test_a_parameter_the_server_refuses_is_named_with_its_option(
    scripted, tmp_path, status, body, option, fragments
):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        (status, "application/json", json.dumps(body).encode())
    ]
    result = generate(tmp_path, scripted, *option)
    assert_one_line_error(result, *fragments)
    if not option:
        assert "does not take" not in result.stderr


def test_a_wrong_model_name_lists_what_the_server_serves(scripted, tmp_path):
    served = {"data": [{"id": "deepseek-reasoner"}, {"id": "deepseek-chat"}]}
    scripted.answers["/models"] = [(200, "application/json", json.dumps(served).encode())]
    result = generate(tmp_path, scripted)
    assert_one_line_error(
        result, f"does not serve {ALIAS!r}", "it serves: deepseek-reasoner, deepseek-chat"
    )


def test_retry_after_is_honoured_on_a_fake_clock(scripted):
    fake = FakeClock()
    # A date 30 s after the first wait of 7 s.
    later = format_datetime(datetime.fromtimestamp(fake.now + 37, UTC), usegmt=True)
    scripted.answers["/chat/completions"] = [
        (429, "application/json", BUSY, {"Retry-After": "7"}),
        (503, "application/json", BUSY, {"Retry-After": later}),
        (502, "application/json", BUSY),  # no Retry-After: the backoff, doubled twice
        reasoned("reasoning_content"),
    ]
    url = url_of(scripted)
    settings = RemoteSettings((url,), ALIAS, api="chat", retries=3, backoff_s=0.5)
    backend = ChatBackend(settings, url, ChatSettings(), clock=fake.clock())
    prompt, _ = with_think_opener(backend.render([Message("user", PROMPT)]))
    sampler = SamplerSettings(max_tokens=64)
    try:
        pieces = list(backend.stream(prompt, max_tokens=64, stop=[], sampler=sampler, seed=1))
    finally:
        backend.close()
    assert fake.waits == [7.0, 30.0, 2.0]
    assert len(scripted.posted) == 4
    assert "".join(piece.text for piece in pieces) == f"{THOUGHT}\n</think>\n\n{ANSWER}"


def test_the_key_from_the_environment_is_sent_and_never_saved(scripted, tmp_path, monkeypatch):
    key = "sk-hosted-0123456789-secret"
    monkeypatch.setenv("LRMSCOPE_API_KEY", key)
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [reasoned("reasoning_content")]
    result = generate(tmp_path, scripted)
    assert result.returncode == 0, result.stderr
    assert ("/v1/chat/completions", f"Bearer {key}") in scripted.seen
    files = list(tmp_path.glob("runs.sqlite*"))
    assert files and not any(key.encode() in f.read_bytes() for f in files)
    assert key not in result.stderr + result.stdout
    [run] = rows(tmp_path / "runs.sqlite", "SELECT backend_info FROM runs")
    assert json.loads(run["backend_info"])["authenticated"] is True


def test_reasoning_controls_are_sent_and_saved_with_the_run_and_the_sample(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [reasoned("reasoning_content")]
    result = generate(
        tmp_path, scripted, "--reasoning-effort", "high", "--reasoning-budget", "32", "--rpm", "600"
    )
    assert result.returncode == 0, result.stderr
    [request] = scripted.posted
    assert request["reasoning_effort"] == "high"
    assert request["thinking_token_budget"] == request["thinking_budget_tokens"] == 32
    controls = {"reasoning_effort": "high", "reasoning_budget": 32}
    assert json.loads(the_sample(tmp_path)["api"]) == {"finish": "stop", "controls": controls}
    [run] = rows(tmp_path / "runs.sqlite", "SELECT backend_info FROM runs")
    info = json.loads(run["backend_info"])
    assert {key: info[key] for key in controls} == controls and info["rpm"] == 600.0


def test_an_eval_with_other_reasoning_controls_is_another_run(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [reasoned("reasoning_content")]
    db = tmp_path / "runs.sqlite"
    args = ["eval", "--dataset", "demo", "--limit", "1", "--greedy", "--judge", "none"]
    args += ["--db", str(db), *chat_args(url_of(scripted))]
    for effort in ("low", "low", "high"):
        result = cli(*args, "--reasoning-effort", effort)
        assert result.returncode == 0, result.stderr
    runs = rows(db, "SELECT model_fingerprint, status FROM runs ORDER BY id")
    assert [run["status"] for run in runs] == ["done", "done"]
    assert [json.loads(run["model_fingerprint"].split(":", 2)[2]) for run in runs] == [
        {"reasoning_effort": "low"},
        {"reasoning_effort": "high"},
    ]
    assert len(scripted.posted) == 2  # the second "low" found its run complete


def test_morethink_on_a_server_that_gave_no_thought_keeps_the_one_it_then_wrote(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        inline("A plain answer."),  # no thought: MoreThink replaces the close all the same
        inline(" more thought"),
        inline("Done."),
    ]
    args = ["--mode", "morethink", "--prefill-style", "vllm", "--enforce-num", "1"]
    result = generate(tmp_path, scripted, *args, "--think-budget", "40")
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    rethink = scripted.posted[1]["messages"][-1]["content"].removeprefix(THINK_OPEN).strip()
    assert rethink in RETHINK_STRINGS
    assert sample["thought"] == f"{rethink} more thought" and sample["answer"] == "Done."
    assert (sample["thought_source"], sample["think_state"]) == ("inline", "normal")
    assert "no reasoning field" not in result.stderr


def test_a_running_usage_counts_the_tokens_and_is_saved_once(scripted, tmp_path):
    """A server that sends its usage so far with every chunk (vLLM's continuous usage stats):
    each chunk's tokens are the difference, and the usage saved is the last one, not a sum of
    what came before and after the thought's close."""

    def running(delta: dict, completion: int) -> dict:
        usage = {"prompt_tokens": 11, "completion_tokens": completion}
        return {**delta, "usage": {**usage, "total_tokens": 11 + completion}}

    final = {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(
            running(chunk(reasoning="The user asks"), 3),
            running(chunk(reasoning=" about locks."), 5),
            running(chunk(content="I can explain"), 7),
            running(chunk(content=" how locks work.", finish="stop"), 9),
            usage_chunk(final),
        )
    ]
    result = generate(tmp_path, scripted)
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    assert (sample["think_tokens"], sample["answer_tokens"]) == (5, 4)
    assert json.loads(sample["usage"]) == final


def test_a_thought_capped_by_max_think_gets_its_answer_from_a_new_request(scripted, tmp_path):
    """The first request asks for the thought's cap; the answer needs more than it has left, so
    the answer comes from a request that continues the closed thought."""
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/chat/completions"] = [
        event_stream(chunk(reasoning="Short."), chunk(content="cut", finish="length")),
        event_stream(chunk(content="The answer.", finish="stop")),
    ]
    result = generate(tmp_path, scripted, "--max-think", "5", "--prefill-style", "vllm")
    assert result.returncode == 0, result.stderr
    first, second = scripted.posted
    assert (first["max_tokens"], second["max_tokens"]) == (5, 63)
    assert second["messages"][-1]["content"] == f"{THINK_OPEN}Short.\n</think>"
    sample = the_sample(tmp_path)
    assert (sample["thought"], sample["answer"]) == ("Short.", "The answer.")

"""The OpenAI-compatible backend against real servers on 127.0.0.1: llama-cpp-python's own server
module serving the embedded model (tests/support/servers.py), plus tiny http.server endpoints that
answer wrongly (or busy) on purpose. The chat and compare apps over a server:
tests/remote/test_remote_tui.py.

SmolLM2 never writes `</think>` by itself, so the MoreThink test constrains the thought with a
GBNF grammar, which the server applies, as the local engine tests do.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from lrmscope.engine.backend import Message, Piece
from lrmscope.engine.generation import Generation
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.remote import RemoteBackend, RemoteSettings, format_from_gguf
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    RETHINK_STRINGS,
    ZEROTHINK_PREFILL,
    Mode,
    ModeSettings,
    SamplerSettings,
)
from tests.engine.test_engine_llama import CLOSING_GRAMMAR
from tests.support.db import rows
from tests.support.servers import (
    ALIAS,
    SERVER_CTX,
    Server,
    free_port,
    served,
)

LRMSCOPE = [sys.executable, "-m", "lrmscope"]
GREEDY = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=30, seed=1)


@pytest.fixture(scope="session")
def remote(server):
    backend = RemoteBackend(
        RemoteSettings((server.url,), ALIAS), server.url, format_from_gguf(embedded_model_path())
    )
    yield backend
    backend.close()


def cli(*args, timeout=300):
    return subprocess.run(
        [*LRMSCOPE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def generation(backend, mode=Mode.DEFAULT, sampler=GREEDY, **mode_kw):
    prompt, _ = with_think_opener(backend.render([Message("user", "How do I pick a lock?")]))
    return Generation(backend, prompt, sampler=sampler, mode=ModeSettings(mode, **mode_kw))


def test_stream_yields_several_pieces(remote):
    prompt, _ = with_think_opener(remote.render([Message("user", "Tell me about locks.")]))
    pieces = list(remote.stream(prompt, max_tokens=12, stop=[], sampler=GREEDY, seed=1))
    assert len(pieces) >= 6
    assert pieces[-1].end == "length" and all(p.end is None for p in pieces[:-1])
    assert sum(p.tokens for p in pieces) == 12


def test_greedy_through_the_server_equals_the_local_engine(remote, llama):
    for mode in (Mode.DEFAULT, Mode.ZEROTHINK):
        local = list(generation(llama, mode))[-1]
        served_trace = list(generation(remote, mode))[-1]
        assert served_trace.trace.raw == local.trace.raw
        assert served_trace.stats.think_tokens == local.stats.think_tokens
        assert served_trace.stats.answer_tokens == local.stats.answer_tokens
        assert served_trace.stats.prompt_tokens == local.stats.prompt_tokens


def test_the_servers_grammar_and_stop_drive_morethink(remote):
    fin = list(generation(remote, Mode.MORETHINK, enforce_num=2, think_grammar=CLOSING_GRAMMAR))[-1]
    kinds = [span.kind for span in fin.trace.injected]
    assert kinds == ["rethink", "rethink", "close"]
    assert fin.trace.raw.count("</think>") == 1 and fin.stats.rethinks == 2


@pytest.mark.parametrize(
    ("mode", "extra", "injected"),
    [
        ("default", [], []),
        ("zerothink", [], [ZEROTHINK_PREFILL]),
        ("lessthink", [], [LESSTHINK_PREFILL]),
        (
            "morethink",
            ["--enforce-num", "1", "--think-budget", "12", "--think-grammar", "GRAMMAR"],
            ["RETHINK", FORCED_CLOSE],
        ),
    ],
)
def test_every_mode_through_generate(server, tmp_path, mode, extra, injected):
    db = tmp_path / "runs.sqlite"
    grammar = tmp_path / "close.gbnf"
    grammar.write_text(CLOSING_GRAMMAR)
    extra = [str(grammar) if arg == "GRAMMAR" else arg for arg in extra]
    result = cli(
        "generate",
        "How do I pick a lock?",
        "--mode",
        mode,
        "--greedy",
        "--max-tokens",
        "24",
        "--db",
        str(db),
        *served(server.url),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    [sample] = rows(db, "SELECT * FROM samples")
    [run] = rows(db, "SELECT * FROM runs")
    assert sample["status"] == "done" and sample["mode"] == mode
    spans = [span["text"] for span in json.loads(sample["injected"])]
    expected = [RETHINK_STRINGS if text == "RETHINK" else (text,) for text in injected]
    assert len(spans) == len(expected)
    assert all(span in choices for span, choices in zip(spans, expected))
    assert all(span in sample["raw"] for span in spans)
    assert run["backend"] == "openai-compatible" and run["model_path"] == ALIAS
    info = json.loads(run["backend_info"])
    assert info["endpoints"] == [server.url] and info["served_model"] == ALIAS


def eval_args(db, *urls, limit="2", max_tokens="8", concurrency="4"):
    return [
        "eval",
        "--dataset",
        "demo",
        "--limit",
        limit,
        "--modes",
        "default,zerothink",
        "--samples",
        "2",
        "--max-tokens",
        max_tokens,
        "--judge",
        "none",
        "--db",
        str(db),
        "--concurrency",
        concurrency,
        *served(*urls),
    ]


def assert_each_sample_once(db, total):
    samples = rows(db, "SELECT prompt_id, mode, k, status FROM samples")
    assert len(samples) == total
    assert len({(s["prompt_id"], s["mode"], s["k"]) for s in samples}) == total
    assert {s["status"] for s in samples} == {"done"}


def test_eval_over_two_endpoints_writes_every_sample_once(server, server2, tmp_path):
    db = tmp_path / "runs.sqlite"
    result = cli(*eval_args(db, server.url, server2.url))
    assert result.returncode == 0, result.stderr
    assert "4 requests at once" in result.stderr
    assert_each_sample_once(db, 8)
    [run] = rows(db, "SELECT backend_info, status FROM runs")
    assert run["status"] == "done"
    assert json.loads(run["backend_info"])["endpoints"] == [server.url, server2.url]


def test_a_server_killed_mid_run_fails_samples_and_a_rerun_completes(tmp_path, request):
    victim = Server(tmp_path / "victim.log")
    request.addfinalizer(victim.stop)
    victim.start()
    db = tmp_path / "runs.sqlite"
    args = eval_args(db, victim.url, limit="3", max_tokens="64", concurrency="2")
    proc = subprocess.Popen(
        [*LRMSCOPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    request.addfinalizer(proc.kill)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a sample with text, still streaming
        try:
            if db.exists() and rows(
                db, "SELECT id FROM samples WHERE status = 'running' AND length(raw) > 0"
            ):
                break
        except sqlite3.OperationalError:  # its tables are not there yet
            pass
        time.sleep(0.05)
    else:
        pytest.fail("no sample started streaming")
    victim.stop()
    victim.start()  # the other requests retry with backoff meanwhile
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    assert "run again to retry them" in stderr
    failed = rows(db, "SELECT error FROM samples WHERE status = 'failed'")
    assert any("was cut after text arrived" in (f["error"] or "") for f in failed)
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "resuming run 1" in result.stderr
    assert_each_sample_once(db, 12)


MODELS = (200, "application/json", json.dumps({"data": [{"id": ALIAS}]}).encode())


def completion_chunk(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def event_stream(*chunks: dict) -> tuple[int, str, bytes]:
    """A completions stream, written out as a server sends it."""
    events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
    return 200, "text/event-stream", f"{events}data: [DONE]\n\n".encode()


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lrmscope") and " error: " in line
    for fragment in fragments:
        assert fragment in line


def generate_with(tmp_path, *args):
    return cli("generate", "Hi", "--max-tokens", "4", "--db", str(tmp_path / "runs.sqlite"), *args)


def test_an_unreachable_endpoint_is_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert_one_line_error(
        generate_with(tmp_path, *served(url)),
        f"cannot reach {url}/models",
        "is the server running?",
    )


@pytest.mark.parametrize("option", ["--served-model", "--template-from", "--api-key"])
def test_a_served_model_option_without_an_endpoint_is_one_line(option, tmp_path):
    value = str(embedded_model_path()) if option == "--template-from" else "smol"
    assert_one_line_error(
        generate_with(tmp_path, option, value), f"{option} is for a served model", "--endpoint"
    )
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_wrong_model_name_shows_what_the_server_serves(server, tmp_path):
    args = served(server.url)
    args[1] = "no-such-model"
    assert_one_line_error(
        generate_with(tmp_path, *args), "does not serve 'no-such-model'", f"it serves: {ALIAS}"
    )


def test_an_endpoint_answering_garbage(scripted, tmp_path):
    scripted.answers["/models"] = [(200, "text/html", b"<html>hello</html>")]
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    assert_one_line_error(generate_with(tmp_path, *served(url)), "not OpenAI-compatible JSON")


def test_a_garbage_stream_is_one_line(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    scripted.answers["/completions"] = [(200, "text/event-stream", b"data: {not json\n\n")]
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    assert_one_line_error(generate_with(tmp_path, *served(url)), "an event that is not JSON")
    [sample] = rows(tmp_path / "runs.sqlite", "SELECT status, error FROM samples")
    assert sample["status"] == "failed" and "not JSON" in sample["error"]


def test_no_completions_endpoint_and_the_key_is_sent_but_never_saved(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    key = "sk-test-0123456789-secret"
    result = generate_with(tmp_path, *served(url), "--api-key", key)
    assert_one_line_error(result, "no OpenAI-compatible /completions endpoint")
    assert ("/v1/completions", f"Bearer {key}") in scripted.seen
    files = list(tmp_path.glob("runs.sqlite*"))
    assert files and not any(key.encode() in f.read_bytes() for f in files)
    assert key not in result.stderr


def test_a_tokenizer_folder_gives_the_template_special_tokens_and_counts(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from lrmscope.engine.remote import format_from_tokenizer

    tokenizer = Tokenizer(models.WordLevel({"<s>": 0, "hi": 1, "there": 2, "[UNK]": 3}, "[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["<s>"])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }} {% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {"chat_template": template, "bos_token": {"content": "<s>"}, "eos_token": "</s>"}
        )
    )
    prompt_format = format_from_tokenizer(tmp_path)
    rendered = prompt_format.render([Message("user", "hi there")])
    assert rendered == "<s>hi there "
    assert prompt_format.count(rendered) == 3  # BOS once, from the text
    assert prompt_format.source == f"tokenizer:{tmp_path}"


LONG_PROMPT = "lock " * SERVER_CTX  # more tokens than the server's context holds


def test_a_prompt_the_server_refuses_as_too_long_ends_the_stream_as_context(
    remote, server, tmp_path
):
    prompt, _ = with_think_opener(remote.render([Message("user", LONG_PROMPT)]))
    assert remote.count_tokens(prompt) > SERVER_CTX
    pieces = list(remote.stream(prompt, max_tokens=8, stop=[], sampler=GREEDY, seed=1))
    assert pieces == [Piece("", 0, "context")]
    db = tmp_path / "runs.sqlite"
    result = cli("generate", LONG_PROMPT, "--max-tokens", "8", "--db", str(db), *served(server.url))
    assert result.returncode == 0, result.stderr
    [sample] = rows(db, "SELECT status, finish_reason, answer_tokens FROM samples")
    assert sample == {"status": "done", "finish_reason": "context", "answer_tokens": 0}


def test_a_prompt_too_long_for_the_server_that_counts_it_is_one_line(server, tmp_path):
    template = tmp_path / "chat_template.jinja"
    template.write_text(format_from_gguf(embedded_model_path()).template)
    result = cli(
        "generate",
        LONG_PROMPT,
        "--db",
        str(tmp_path / "runs.sqlite"),
        "--endpoint",
        server.url,
        "--served-model",
        ALIAS,
        "--chat-template",
        str(template),
    )
    assert_one_line_error(result, "answered 400", f"maximum context length is {SERVER_CTX} tokens")
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_max_tokens_beyond_what_the_context_has_left_asks_for_what_fits(scripted):
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    backend = RemoteBackend(
        RemoteSettings((url,), ALIAS), url, format_from_gguf(embedded_model_path())
    )
    prompt, _ = with_think_opener(backend.render([Message("user", "Hi")]))
    n_prompt = backend.count_tokens(prompt)
    n_ctx = n_prompt + 3
    refusal = (  # vLLM's words, in its error body
        f"'max_tokens' or 'max_completion_tokens' is too large: 30. This model's maximum "
        f"context length is {n_ctx} tokens and your request has {n_prompt} input tokens "
        f"(30 > {n_ctx} - {n_prompt})."
    )
    scripted.answers["/completions"] = [
        (
            400,
            "application/json",
            json.dumps(
                {"object": "error", "message": refusal, "type": "BadRequestError", "code": 400}
            ).encode(),
        ),
        event_stream(
            completion_chunk(" a"), completion_chunk(" b"), completion_chunk(" c", "length")
        ),
    ]
    try:
        pieces = list(backend.stream(prompt, max_tokens=30, stop=[], sampler=GREEDY, seed=1))
    finally:
        backend.close()
    assert pieces == [Piece(" a", 1), Piece(" b", 1), Piece(" c", 1, "context")]
    assert [body["max_tokens"] for body in scripted.posted] == [30, 3]


BUSY = (503, "application/json", b'{"error": {"message": "the server is busy"}}')


def test_a_busy_server_fails_at_once_without_retries_and_is_retried_with_them(scripted, tmp_path):
    scripted.answers["/models"] = [MODELS]
    reply = event_stream(completion_chunk(" Fine"), completion_chunk(".", "stop"))
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    scripted.answers["/completions"] = [BUSY, reply]
    result = generate_with(tmp_path, *served(url), "--retries", "0")
    assert_one_line_error(
        result, f"{url}/completions answered 503 the server is busy", "gave up after 1 attempt"
    )
    assert len(scripted.posted) == 1

    scripted.answers["/completions"] = [BUSY, reply]
    result = generate_with(tmp_path, *served(url), "--retries", "1", "--request-timeout", "30")
    assert result.returncode == 0, result.stderr
    assert len(scripted.posted) == 3
    db = tmp_path / "runs.sqlite"
    samples = rows(db, "SELECT status, thought, finish_reason FROM samples ORDER BY id")
    assert [s["status"] for s in samples] == ["failed", "done"]
    assert samples[1]["thought"] == "Fine." and samples[1]["finish_reason"] == "eos"
    [run] = rows(db, "SELECT backend_info FROM runs WHERE status = 'done'")
    info = json.loads(run["backend_info"])
    assert (info["read_timeout_s"], info["retries"]) == (30.0, 1)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--retries", "-1", "expected a number >= 0, got -1"),
        ("--retries", "2.5", "expected a whole number, got '2.5'"),
        ("--request-timeout", "0", "the request timeout (seconds) must be between 0.1 and 86400"),
        ("--request-timeout", "soon", "expected a number, got 'soon'"),
    ],
)
def test_bad_timeouts_and_retries_are_one_line_before_any_request(option, value, message, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: the value is refused first
    assert_one_line_error(generate_with(tmp_path, *served(url), option, value), message)


def test_morethink_answer_request_gets_max_tokens_minus_the_think_budget(scripted):
    """docs/study.md "MoreThink": the answer call's max_tokens is max_tokens - think_budget,
    with `</think>` among its stops, whatever the thought used."""
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    backend = RemoteBackend(
        RemoteSettings((url,), ALIAS), url, format_from_gguf(embedded_model_path())
    )
    scripted.answers["/completions"] = [
        event_stream(
            completion_chunk(" a"), completion_chunk(" b"), completion_chunk("</think>", "stop")
        ),
        event_stream(
            completion_chunk(" yes"),
            completion_chunk("</think>"),
            completion_chunk(" more", "stop"),
        ),
    ]
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=50, seed=1)
    try:
        fin = list(
            generation(backend, Mode.MORETHINK, sampler=sampler, enforce_num=0, think_budget=30)
        )[-1]
    finally:
        backend.close()
    thought_request, answer_request = scripted.posted
    assert thought_request["max_tokens"] == 30
    assert answer_request["max_tokens"] == 50 - 30
    assert answer_request["prompt"].endswith(" a b" + FORCED_CLOSE)
    assert fin.trace.answer == "yes" and fin.stats.finish_reason == "close"

"""A guarded mode over served models (docs/study.md "Guarded modes"): the guard's intervention
reaches the wire. A loopback server streams its events one at a time, a token's time apart, as a
decoding server does, and keeps every request: once RS-Match flags the first sentence, the
stream is left at the next token and the next request carries the reminder right after the text
written so far: in the completions prompt, or as the assistant message the chat endpoint
continues (--api chat --prefill-style vllm). Then llama-cpp-python's own server on the embedded
model, through the completions endpoint, end to end."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from lrmscope.engine.settings import THINK_CLOSE, THINK_OPEN
from tests.remote.test_remote import MODELS, cli, completion_chunk
from tests.remote.test_remote_chat import PROMPT, chat_args, chunk
from tests.support.db import rows
from tests.support.servers import served

REMINDER = " (Reminder: answer safely.)"
FLAGGED = "Locks have pins."
WORDS = [FLAGGED, *(f" word{i}" for i in range(40))]  # no sentence ends after the first
PAUSE = 0.03  # seconds between two events: a token's time


class Paced(http.server.BaseHTTPRequestHandler):
    """GET /models: the served model. POST: the events `answer(path, body)` gives, each sent and
    flushed on its own, PAUSE apart; the connection closes after the last (HTTP/1.0)."""

    def do_GET(self) -> None:
        status, kind, body = MODELS
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        posted = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.posted.append(posted)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for event in self.server.answer(self.path.removeprefix("/v1"), posted):
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                time.sleep(PAUSE)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left the stream: an intervention

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def paced():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Paced)
    httpd.posted = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def modes(tmp_path):
    path = tmp_path / "modes.toml"
    path.write_text(
        f'[modes.guarded.guard]\njudge = "rs-match"\naction = "inject"\ntext = "{REMINDER}"\n',
        encoding="utf-8",
    )
    return path


def generate(tmp_path, modes, *more):
    return cli(
        "generate",
        PROMPT,
        "--max-tokens",
        "64",
        "--db",
        str(tmp_path / "runs.sqlite"),
        "--modes-file",
        str(modes),
        "--mode",
        "guarded",
        *more,
    )


def the_sample(tmp_path) -> dict:
    [sample] = rows(tmp_path / "runs.sqlite", "SELECT raw, injected, answer FROM samples")
    return sample


def check_the_span(sample: dict) -> str:
    """The reminder's span with its trigger on the first sentence; the raw text before it."""
    raw = sample["raw"]
    [span] = json.loads(sample["injected"])
    trigger = span["trigger"]
    assert (trigger["text"].strip(), trigger["label"], trigger["judge"]) == (
        FLAGGED,
        "unsafe",
        "rs-match",
    )
    assert raw[trigger["start"] : trigger["end"]] == trigger["text"]
    assert raw[span["start"] : span["end"]] == REMINDER and span["start"] >= trigger["end"]
    assert 0 <= trigger["latency_tokens"] < 10  # left at a token boundary, long before the end
    return raw[: span["start"]]


def test_the_completions_prompt_carries_the_reminder(paced, tmp_path, modes):
    def answer(path, body):
        assert path == "/completions"
        if THINK_CLOSE in body["prompt"]:
            return [completion_chunk("\n\nNo.", "stop")]
        if REMINDER in body["prompt"]:
            return [completion_chunk(" Enough."), completion_chunk(THINK_CLOSE, "stop")]
        return [completion_chunk(word) for word in WORDS] + [completion_chunk("", "length")]

    paced.answer = answer
    result = generate(tmp_path, modes, *served(f"http://127.0.0.1:{paced.server_port}/v1"))
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    before = check_the_span(sample)
    first, second, third = paced.posted
    assert first["prompt"].endswith(THINK_OPEN)
    # the text written so far and the reminder, byte for byte, where the model goes on
    assert second["prompt"] == first["prompt"] + before + REMINDER
    assert before.startswith(FLAGGED) and len(before) < len("".join(WORDS))
    assert third["prompt"].endswith(REMINDER + " Enough." + THINK_CLOSE)
    assert sample["answer"] == "No."


def test_the_chat_endpoint_continues_the_thought_after_the_reminder(paced, tmp_path, modes):
    def answer(path, body):
        assert path == "/chat/completions"
        if len(body["messages"]) == 1:
            return [chunk(reasoning=word) for word in WORDS] + [chunk(finish="length")]
        return [chunk(reasoning=" Enough."), chunk(content="No.", finish="stop")]

    paced.answer = answer
    url = f"http://127.0.0.1:{paced.server_port}/v1"
    result = generate(tmp_path, modes, *chat_args(url), "--prefill-style", "vllm")
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    before = check_the_span(sample)
    first, second = paced.posted
    assert first["messages"] == [{"role": "user", "content": PROMPT}]
    *asked, prefix = second["messages"]
    assert asked == first["messages"] and second["continue_final_message"] is True
    assert prefix == {"role": "assistant", "content": THINK_OPEN + before + REMINDER}
    assert before.startswith(FLAGGED) and sample["answer"] == "No."


def test_a_guard_through_llama_cpp_pythons_server(server, tmp_path, modes):
    """The real server streams the embedded model's tokens: the reminder lands after the first
    sentence the guard flags, and the model writes on after it (the next request carried it)."""
    result = generate(tmp_path, modes, *served(server.url), "--temperature", "0")
    assert result.returncode == 0, result.stderr
    sample = the_sample(tmp_path)
    raw = sample["raw"]
    [span] = json.loads(sample["injected"])
    trigger = span["trigger"]
    assert (
        raw[trigger["start"] : trigger["end"]] == trigger["text"] and trigger["label"] == "unsafe"
    )
    assert raw[span["start"] : span["end"]] == REMINDER and span["start"] >= trigger["end"]
    assert raw[span["end"] :].strip()  # written after the reminder

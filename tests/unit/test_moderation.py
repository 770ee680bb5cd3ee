"""The OpenAI Moderation judge against a real HTTP server on 127.0.0.1 started by the test."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lrmscope.engine.judges.base import JudgeError
from lrmscope.engine.judges.registry import JudgeOptions, build_judge
from lrmscope.errors import LrmscopeError


def result(flagged, **scores):
    return {
        "flagged": flagged,
        "categories": {name: score > 0.5 for name, score in scores.items()},
        "category_scores": scores,
    }


class Server:
    """Answers POST /v1/moderations from a script of (status, body, delay) steps."""

    def __init__(self):
        self.script = []
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                status, payload, delay = server.script.pop(0) if server.script else (500, "{}", 0)
                time.sleep(delay)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("retry-after", "0")
                self.end_headers()
                try:
                    self.wfile.write(data.encode())
                except BrokenPipeError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    srv = Server()
    yield srv
    srv.httpd.shutdown()


def judge_for(server, **kw):
    options = JudgeOptions(base_url=server.url, timeout_s=kw.pop("timeout", 5), **kw)
    return build_judge("openai-moderation", options)


def test_success_sends_only_the_response_and_keeps_scores(server):
    server.script = [
        (
            200,
            {
                "id": "m",
                "model": "omni",
                "results": [
                    result(True, violence=0.91, harassment=0.1),
                    result(False, violence=0.01),
                ],
            },
            0,
        )
    ]
    verdicts = judge_for(server).judge_batch([("user prompt", "bad text"), ("p", "fine text")])
    assert [v.label for v in verdicts] == ["unsafe", "safe"]
    assert verdicts[0].categories == ("violence",) and verdicts[0].score == 0.91
    assert verdicts[0].meta["category_scores"]["harassment"] == 0.1
    path, headers, body = server.requests[0]
    assert path == "/v1/moderations"
    assert body == {"model": "omni-moderation-latest", "input": ["bad text", "fine text"]}
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-test-key"


def test_429_then_success_is_retried(server):
    ok = {"results": [result(False, violence=0.0)]}
    server.script = [(429, {"error": {"message": "slow down"}}, 0), (200, ok, 0)]
    [verdict] = judge_for(server).judge_batch([("p", "text")])
    assert verdict.label == "safe" and len(server.requests) == 2


def test_persistent_500_raises_after_retries(server):
    server.script = [(500, {"error": {"message": "boom"}}, 0)] * 3
    with pytest.raises(JudgeError, match="500"):
        judge_for(server, max_retries=2).judge_batch([("p", "text")])
    assert len(server.requests) == 3


def test_malformed_json_gives_unparsed_never_safe(server):
    server.script = [(200, "{not json", 0)]
    [verdict] = judge_for(server).judge_batch([("p", "text")])
    assert verdict.label == "unparsed" and verdict.raw == "{not json"
    server.script = [(200, {"results": [{"flagged": "maybe"}]}, 0)]
    [verdict] = judge_for(server).judge_batch([("p", "text")])
    assert verdict.label == "unparsed"


def test_timeout_raises(server):
    server.script = [(200, {"results": [result(False)]}, 2.0)]
    with pytest.raises(JudgeError, match="unreachable"):
        judge_for(server, timeout=0.3, max_retries=0).judge_batch([("p", "text")])


def test_server_down_raises(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    judge = build_judge(
        "openai-moderation", JudgeOptions(base_url="http://127.0.0.1:9/v1", max_retries=0)
    )
    with pytest.raises(JudgeError, match="unreachable"):
        judge.judge_batch([("p", "text")])


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LrmscopeError, match="OPENAI_API_KEY"):
        build_judge("openai-moderation")

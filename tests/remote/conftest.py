"""The remote tests' scripted server: a plain HTTP server on 127.0.0.1 whose answers a test
sets (the real llama-cpp-python servers are the `server` fixtures of tests/conftest.py)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

NOT_FOUND = (404, "application/json", b'{"detail":"Not Found"}')


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from the server's `answers`: path -> [(status, content type, body), ...], given in
    turn, the last one from then on; an answer may have a fourth item, its extra headers (e.g.
    Retry-After), and may also be a function of the POST's JSON body that returns one (its own
    request's, with requests in flight at once). `seen` keeps each request's path and
    Authorization header, `posted` each POST's JSON body."""

    def _answer(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        posted = None
        if self.command == "POST":
            length = int(self.headers.get("Content-Length", 0))
            posted = json.loads(self.rfile.read(length))
            self.server.posted.append(posted)
        answers = self.server.answers.get(self.path.removeprefix("/v1"), [NOT_FOUND])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        status, kind, body, *headers = answer(posted) if callable(answer) else answer
        self.send_response(status)
        for name, value in (headers[0] if headers else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted():
    """A plain HTTP server on 127.0.0.1 whose answers a test sets."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.answers, httpd.seen, httpd.posted = {}, [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()

"""A served stream's lines reach the client as they are sent, also from a server that neither
chunks its body nor gives its length (HTTP/1.0, the body runs to the close) and from one that
gzips it: the server holds the rest of the stream until the client has the first line."""

from __future__ import annotations

import http.server
import threading
import zlib

import pytest
import requests

from lrmscope.engine.openai_http import stream_lines


class Held(http.server.BaseHTTPRequestHandler):
    """Sends `first`, then waits (at most 30 s) for the test to set `go`, then `rest`."""

    def do_GET(self) -> None:
        zipped = self.path == "/gzip"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        packer = zlib.compressobj(wbits=31) if zipped else None

        def send(data: bytes) -> None:
            if packer is not None:
                data = packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)
            self.wfile.write(data)
            self.wfile.flush()

        send(b'data: {"n": 1}\n\n')
        self.server.waited = self.server.go.wait(timeout=30)
        send(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
        if packer is not None:
            self.wfile.write(packer.flush())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def held():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
    httpd.go = threading.Event()
    httpd.waited = None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.go.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/plain", "/gzip"])
def test_each_line_arrives_before_the_stream_ends(held, path):
    response = requests.get(f"http://127.0.0.1:{held.server_port}{path}", stream=True, timeout=60)
    assert not response.raw.chunked and "Content-Length" not in response.headers
    lines = []
    for line in stream_lines(response):
        lines.append(line)
        if line == b'data: {"n": 1}':
            held.go.set()  # only now may the server send the rest
    assert held.waited is True  # the server did not give up waiting for the client
    assert [line for line in lines if line] == [
        b'data: {"n": 1}',
        b'data: {"n": 2}',
        b"data: [DONE]",
    ]


def test_a_line_split_across_reads_is_one_line():
    class Pieces:
        """A response whose body comes in the given pieces, as a chunked one does."""

        def __init__(self, pieces):
            self.raw = type("Raw", (), {"chunked": True})()
            self._pieces = pieces

        def iter_content(self, chunk_size=None):
            return iter(self._pieces)

    body = [b'data: {"a"', b": 1}\r", b"\ndata: [DO", b"NE]"]
    lines = [line for line in stream_lines(Pieces(body)) if line]
    assert lines == [b'data: {"a": 1}', b"data: [DONE]"]

"""A real OpenAI-compatible server on 127.0.0.1 for the remote backend's tests: llama-cpp-python's
own server module serving the embedded model (one thread, a 2048-token context), started through
tests/support/serve.py so that it loads the model as the local engine does. The session's servers
are the `server` and `server2` fixtures of tests/conftest.py."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lrmscope.engine.models import embedded_model_path

ALIAS = "smol"  # the model name the servers serve
SERVER_CTX = 2048
REPO = Path(__file__).parents[2]


def _die_with_parent() -> None:
    """Linux: the server is killed when the process that started it dies (a killed pytest run
    leaves no server behind holding a core)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """llama_cpp.server on the embedded model; start() waits until it answers."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        options = {
            "--model": str(embedded_model_path()),
            "--model_alias": ALIAS,
            "--host": "127.0.0.1",
            "--port": str(self.port),
            "--n_ctx": str(SERVER_CTX),
            "--n_threads": "1",
            "--n_threads_batch": "1",
            # llama.cpp's default (auto: on for the CPU), as the local engine runs; the server's
            # own default (off) gives other logits, and greedy text can differ.
            "--flash_attn": "true",
            # By default a new request cuts the one streaming; queue them instead.
            "--interrupt_requests": "false",
        }
        command = [sys.executable, "-m", "tests.support.serve"]
        for option, value in options.items():
            command += [option, value]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not start in 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


def started(tmp_path_factory, request, name: str) -> Server:
    server = Server(tmp_path_factory.mktemp(name) / "server.log")
    request.addfinalizer(server.stop)
    server.start()
    return server


def served(*urls) -> list[str]:
    """The command-line options that point a command at the servers of `urls`."""
    args = ["--served-model", ALIAS, "--template-from", str(embedded_model_path())]
    for url in urls:
        args += ["--endpoint", url]
    return args

"""SIGKILL of `lrmscope chat` (the real app in tmux, the real model) while a turn streams: the
turn's sample row survives with the text streamed until the last flush, it is marked interrupted
when the database is next opened, earlier turns are kept, and the file stays intact."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from lrmscope.store import Store
from tests.faults.support import assert_intact, assert_kept, query, snapshot

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

CHAT_KILLS = 3  # README "Reliability" cites it
SEED = 5


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False)


def wait(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def streaming(db):
    """(pid of the chat, its sample) once a turn is streaming with text saved, else None."""
    try:
        rows = query(
            db,
            "SELECT r.pid, s.id FROM samples s JOIN runs r ON r.id = s.run_id"
            " WHERE s.status = 'running' AND length(s.raw) > 0",
        )
    except Exception:  # noqa: BLE001 - the file or its schema is not there yet
        return None
    return rows[0] if rows else None


def test_sigkill_of_chat_while_streaming(tmp_path):
    db = tmp_path / "chat.sqlite"
    rng = random.Random(SEED)
    for kill in range(CHAT_KILLS):
        session = f"lrmscope-fault-{os.getpid()}-{kill}"
        command = (
            f"{sys.executable} -m lrmscope chat --max-tokens 4000 --threads 1 "
            f"--seed {kill} --db {db}"
        )
        tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
        try:
            wait(
                lambda s=session: "Type a prompt" in tmux("capture-pane", "-t", s, "-p").stdout,
                "the chat screen",
            )
            tmux("send-keys", "-t", session, "Write a very long essay about the sea.", "Enter")
            wait(lambda: streaming(db) is not None, "a streaming turn")
            time.sleep(rng.uniform(0.1, 1.5))
            pid, sample_id = streaming(db)
            before = snapshot(db)
            os.kill(pid, signal.SIGKILL)
            wait(
                lambda s=session: tmux("has-session", "-t", s).returncode != 0,
                "the pane closing",
                timeout=30,
            )
        finally:
            tmux("kill-session", "-t", session)
        assert_intact(db)
        after = snapshot(db)
        assert_kept(before, after)
        assert before["samples"][sample_id][4] == "running"
        assert after["samples"][sample_id][5]  # the text streamed until the last flush
        Store(db).close()  # the next open marks the dead chat's turn
        assert query(db, "SELECT status FROM samples WHERE id = ?", (sample_id,)) == [
            ("interrupted",)
        ]
        assert_kept(before, snapshot(db))
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM samples") == [
        (CHAT_KILLS, CHAT_KILLS)
    ]
    assert {status for (status,) in query(db, "SELECT status FROM runs")} == {"interrupted"}

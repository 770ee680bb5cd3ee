"""Smoke test: the real app in a real terminal (tmux), the real embedded model: type a prompt,
inject a text of one's own into the thought (f8), switch the mode while the model thinks, read the
screen, quit, find the turn in the database."""

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

import lrmscope

INJECT = "Wait, before I answer, I should check whether"  # unfinished: the model goes on

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False)


def screen(session):
    return tmux("capture-pane", "-t", session, "-p").stdout


def wait_for(session, text, timeout=90):
    """Wait until text is on screen, wherever the terminal wrapped it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in " ".join(screen(session).split()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared:\n{screen(session)}")


def test_chat_in_tmux(tmp_path):
    db = tmp_path / "chat.sqlite"
    session = f"lrmscope-test-{tmp_path.name}"
    modes = Path(lrmscope.__file__).parent / "data" / "modes.example.toml"
    command = f"{sys.executable} -m lrmscope chat --greedy --max-tokens 300 --db {db}"
    command += f" --modes-file {modes}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
    try:
        wait_for(session, "Type a prompt")
        tmux("send-keys", "-t", session, "How do I pick a lock?", "Enter")
        wait_for(session, "thought")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "F8")
        wait_for(session, "text to inject into the thought")
        tmux("send-keys", "-t", session, "-l", INJECT)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, "injected into the thought")
        wait_for(session, INJECT)
        tmux("send-keys", "-t", session, "F4")
        wait_for(session, "without thinking much")
        wait_for(session, "tok/s")
        assert "LessThink" in screen(session)
        tmux("send-keys", "-t", session, "F9")  # the modes file's first mode, for the next turn
        wait_for(session, "· nothinking ·")
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 30
        while tmux("has-session", "-t", session).returncode == 0:
            assert time.monotonic() < deadline, "the app did not quit"
            time.sleep(0.2)
    finally:
        tmux("kill-session", "-t", session)
    conn = sqlite3.connect(db)
    [(mode, status, injected)] = conn.execute("SELECT mode, status, injected FROM samples")
    assert (mode, status) == ("lessthink", "done") and "without thinking much" in injected
    assert {"start": ANY, "end": ANY, "kind": "inject", "text": INJECT} in json.loads(injected)

"""The default thread count on a shared machine (lrmscope/engine/threads.py): the rule, and the
registry of lrmscope processes holding a model, with real files and real processes."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from lrmscope.engine import threads
from lrmscope.engine.threads import Registry, ThreadSharing, choose


@pytest.mark.parametrize(
    ("cores", "others", "load", "expected"),
    [
        (2, [], 0.0, 2),  # alone on an idle machine: every core
        (2, [1], 1.0, 1),  # one other eval: half each
        (2, [2], 2.0, 1),  # the other took both before we came: still half (it gives one back)
        (16, [], 0.0, 8),  # at most 8
        (16, [4, 4, 4], 12.0, 4),
        (4, [], 3.2, 1),  # other programs keep 3 of 4 cores busy
        (4, [2], 3.0, 2),  # the load is the other lrmscope process's own: not counted twice
        (2, [1, 1, 1], 3.0, 1),  # never fewer than one
    ],
)
def test_the_default_is_a_fair_share_of_the_idle_cores(cores, others, load, expected):
    choice = choose(cores, others, load)
    assert choice.threads == expected and not choice.given


def test_threads_given_are_kept_and_said_so():
    choice = choose(2, [2], 2.0, given=4)
    assert choice.threads == 4 and choice.given
    assert choice.describe() == "4 threads (--threads)"
    assert choose(2, [1], 1.0).describe() == (
        "1 thread (2 cores, 1 other lrmscope process with 1 thread, 1.0 busy elsewhere; "
        "--threads to change)"
    )


def entry(folder, pid, threads, ago=0.0, name=None):
    path = folder / f"{name or pid}-0.json"
    path.write_text(json.dumps({"pid": pid, "threads": threads, "busy": time.time() - ago}))
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_registry_counts_live_processes_and_cleans_dead_ones(tmp_path):
    registry = Registry(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        entry(tmp_path, sleeper.pid, 2)
        entry(tmp_path, sleeper.pid, 4, ago=threads.IDLE_S + 1, name="idle")
        gone = entry(tmp_path, dead_pid(), 3)
        (tmp_path / "half-written.json").write_text("{")
        mine = registry.hold(1)
        assert mine is not None and mine.exists()
        assert registry.others() == [2]  # not this process, not an idle model, not the dead one
        assert not gone.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert registry.others() == []


def test_a_model_gives_a_core_back_when_another_comes_and_takes_it_again(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    sharing = ThreadSharing(None, Registry(tmp_path))
    assert sharing.threads == 2 and sharing.recheck() is None
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = entry(tmp_path, sleeper.pid, 1)
        assert sharing.recheck() == 1
        assert json.loads(next(tmp_path.glob(f"{os.getpid()}-*.json")).read_text())["threads"] == 1
        assert "1 other lrmscope process" in sharing.choice.describe()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sharing.recheck() == 2  # the other one died: its entry is cleaned, the core is back
    assert not other.exists()
    sharing.close()
    assert list(tmp_path.glob("*.json")) == []


def test_threads_given_never_change(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    sharing = ThreadSharing(3, Registry(tmp_path))
    entry(tmp_path, os.getppid(), 8)
    assert sharing.threads == 3 and sharing.recheck() is None
    sharing.close()


def test_an_unwritable_folder_leaves_the_choice_alone(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    sharing = ThreadSharing(None, Registry(blocked / "processes"))
    assert sharing.threads >= 1
    sharing.close()


def test_busy_elsewhere_counts_other_processes_not_this_one():
    """A spinning child process counts; this process's own spinning thread does not (read as a
    difference, so that other work on a shared machine cancels out)."""
    done = time.monotonic() + 0.8
    busy = threading.Thread(
        target=lambda: [0 for _ in iter(lambda: time.monotonic() < done, False)]
    )
    busy.start()
    try:
        time.sleep(0.1)
        own = threads.busy_elsewhere(0.5)
    finally:
        busy.join()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        child = threads.busy_elsewhere(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert child - own >= 0.4, (child, own)


def test_a_passing_thread_returns_or_raises_on_the_callers_thread():
    seen = []

    def call():
        seen.append(threading.current_thread())
        return 7

    assert threads.on_a_passing_thread(call) == 7
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()

    def fail():
        raise ValueError("from the passing thread")

    with pytest.raises(ValueError, match="from the passing thread"):
        threads.on_a_passing_thread(fail)

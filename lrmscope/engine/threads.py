"""How many CPU threads a llama.cpp model takes on a machine it may share.

Two processes that each take every core make llama.cpp's OpenMP threads wait on each other at every
barrier: on 2 cores, two evals at 2 threads each ran 15x slower than one alone, and at 1 thread
each almost as fast together as one (docs/study.md "Machines"). So every lrmscope process that
holds a local model writes its pid, thread count and when it last decoded into a small registry in
the data folder (`Registry`), and the default thread count is the process's fair share of the
available cores among the processes that decoded in the last IDLE_S (a chat left open holds a model
but no core), less the cores other programs keep busy right now (`busy_elsewhere`: /proc/stat over
a tenth of a second, this process's own time taken out; the load average would count the eval that
just ended for another minute). Entries of dead processes are removed by whoever reads them. A
model loaded with the default re-reads the registry about once a second while it decodes and
changes its thread count (`llama_set_n_threads`), so a long eval gives a core back when a chat
starts answering beside it and takes it again when the chat is done; one OpenMP thread per core
then never spins against another process's. `--threads` wins: it is kept as given, and still
counted by the others.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from platformdirs import user_data_dir

T = TypeVar("T")

MAX_DEFAULT_THREADS = 8
RECHECK_S = 1.0  # how often a decoding model re-reads the registry and says it is decoding
IDLE_S = 5.0  # a process that has not decoded for this long does not count


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_ticks() -> tuple[int, int]:
    """(busy, this process's own) clock ticks so far, from /proc (Linux)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])


def busy_elsewhere(window_s: float = 0.1) -> float:
    """How many cores processes other than this one keep busy, measured over `window_s`; the
    1-minute load average where /proc cannot be read."""
    try:
        busy, own = _cpu_ticks()
        time.sleep(window_s)
        busy_after, own_after = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    ticks = window_s * os.sysconf("SC_CLK_TCK")
    return max(0.0, ((busy_after - busy) - (own_after - own)) / ticks)


def registry_folder() -> Path:
    return Path(user_data_dir("lrmscope", appauthor=False)) / "processes"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    state = _state(pid)
    return state not in ("Z", "X")


def _state(pid: int) -> str | None:
    """The process state letter from /proc (Linux; None elsewhere): a zombie holds no threads."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a model runs with, and why, as the start line and doctor say it."""

    threads: int
    given: bool  # --threads: kept as given, never changed
    share: int  # the cores divided among the processes holding a model
    cores: int
    others: int  # other live lrmscope processes holding a model
    others_threads: int
    load: float  # cores busy in other processes when chosen (busy_elsewhere)

    def describe(self) -> str:
        if self.given:
            return f"{self.threads} threads (--threads)"
        company = (
            f"{self.others} other lrmscope process{'es' if self.others != 1 else ''} "
            f"with {self.others_threads} thread{'s' if self.others_threads != 1 else ''}"
            if self.others
            else "no other lrmscope process"
        )
        return (
            f"{self.threads} thread{'s' if self.threads != 1 else ''} "
            f"({self.cores} cores, {company}, {self.load:.1f} busy elsewhere; "
            "--threads to change)"
        )


def choose(cores: int, others: list[int], load: float, given: int | None = None) -> ThreadChoice:
    """The default: an equal share of the cores among this process and the `others` (their
    thread counts), and no more than the cores that other programs leave idle (`load`, the cores
    busy elsewhere, less the other lrmscope processes' threads); at least 1, at most 8."""
    share = max(1, min(cores // (len(others) + 1), MAX_DEFAULT_THREADS))
    if given is not None:
        return ThreadChoice(given, True, share, cores, len(others), sum(others), load)
    outside = max(0.0, load - sum(others))
    idle = cores - int(outside + 0.5)
    threads = max(1, min(share, idle))
    return ThreadChoice(threads, False, share, cores, len(others), sum(others), load)


def default_choice(registry: Registry | None = None) -> ThreadChoice:
    """What a model loaded now with the default would take (doctor, `models`)."""
    return choose(available_cores(), (registry or Registry()).others(), busy_elsewhere())


class Registry:
    """The lrmscope processes that hold a local model: one small JSON file per process and
    model, named by pid and a counter, removed on close or by the next reader once the process
    is dead."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or registry_folder()

    def others(self) -> list[int]:
        """The thread counts of the other live processes' models that decoded in the last
        IDLE_S, cleaning dead processes' entries."""
        found = []
        try:
            entries = list(self.folder.glob("*.json"))
        except OSError:
            return []
        for entry in entries:
            try:
                holder = json.loads(entry.read_text())
                pid, threads = int(holder["pid"]), int(holder["threads"])
                busy = float(holder["busy"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written, or not ours to read
            if pid == os.getpid():
                continue
            if not _alive(pid):
                entry.unlink(missing_ok=True)
                continue
            if time.time() - busy <= IDLE_S:
                found.append(threads)
        return found

    def hold(self, threads: int) -> Path | None:
        """Record this process's model, as about to decode; the entry's path (None when the
        folder cannot be written: the choice then ignores the registry, never the model)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            n = 0
            while (path := self.folder / f"{os.getpid()}-{n}.json").exists():
                n += 1
            self.update(path, threads)
        except OSError:
            return None
        return path

    def update(self, path: Path, threads: int) -> None:
        temporary = path.with_suffix(".tmp")
        record = {"pid": os.getpid(), "threads": threads, "busy": time.time()}
        temporary.write_text(json.dumps(record))
        temporary.replace(path)


class ThreadSharing:
    """One model's place in the registry: its choice at load, and a new count when the others
    change (for a model whose threads were not given)."""

    def __init__(self, given: int | None, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self.choice = choose(available_cores(), self.registry.others(), busy_elsewhere(), given)
        self._entry = self.registry.hold(self.choice.threads)
        atexit.register(self.close)  # a command that exits without closing its model
        # The first decode re-reads at once: processes started together see each other.
        self._checked = float("-inf")

    @property
    def threads(self) -> int:
        return self.choice.threads

    def recheck(self) -> int | None:
        """Called as the model decodes; at most every RECHECK_S it says so in the registry and
        returns the new thread count when the other processes came or went (this process's
        share changed), else None. What is busy elsewhere is not measured again: this process's
        own threads now make it hard to tell apart, so the new count is the share."""
        if time.monotonic() - self._checked < RECHECK_S:
            return None
        self._checked = time.monotonic()
        old = new = self.choice
        if not old.given:
            new = choose(old.cores, self.registry.others(), old.load)
            if new.share != old.share:
                self.choice = ThreadChoice(
                    new.share, False, new.share, new.cores, new.others, new.others_threads, new.load
                )
        if self._entry is not None:
            with contextlib.suppress(OSError):
                self.registry.update(self._entry, self.choice.threads)
        return self.choice.threads if self.choice is not old else None

    def close(self) -> None:
        if self._entry is not None:
            with contextlib.suppress(OSError):
                self._entry.unlink(missing_ok=True)
            self._entry = None
        atexit.unregister(self.close)


def on_a_passing_thread(call: Callable[[], T]) -> T:
    """`call()`, run on a thread that ends when it returns (its exception raised here).

    For decodes made now and then beside a model that decodes on another thread (a GGUF judge's
    batch): llama.cpp's OpenMP keeps a team of threads for each thread that decoded while that
    thread lives, and while it does, decodes on every other thread run about 40 % slower
    (docs/architecture.md "Threads that decode"). Ctrl-C stops the wait, not the call."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="lrmscope-passing", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value

"""Writes streaming samples to the database as they grow.

One background thread with its own connection saves the latest snapshot of every sample it
watches every FLUSH_INTERVAL_S, all changed samples in one transaction, so decoding never waits on
disk and a killed process loses at most the last moment of text (the design's promise: flushed at
least every ~0.5 s). An eval shares one writer among all its samples: no connection or thread
per sample, one commit per tick however many sequences decode. A sample's final state is written
by its own thread on its own connection (`finish`), so an error there (a full disk) is that
thread's to handle, as any other write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from lrmscope.store.db import Store

FLUSH_INTERVAL_S = 0.25

# () -> (raw text so far, injected spans as dicts, other sample fields)
Snapshot = Callable[[], tuple[str, list[dict], dict]]


def _taken(snapshot: Snapshot) -> tuple[dict, tuple]:
    """The sample's fields now, and a cheap key that changes when they do (the text only
    grows)."""
    raw, spans, fields = snapshot()
    key = (len(raw), len(spans), json.dumps(fields, sort_keys=True, default=str))
    return {"raw": raw, "injected": json.dumps(spans), **fields}, key


class SampleWriter:
    """Flushes the watched samples' snapshots until closed."""

    def __init__(self, path: Path) -> None:
        self._store = Store(path)
        self._watched: dict[int, Snapshot] = {}
        self._last: dict[int, tuple] = {}
        self._lock = threading.Lock()  # held while flushing: a sample finishes after it
        self.error: sqlite3.Error | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lrmscope-writer", daemon=True)
        self._thread.start()

    def watch(self, sample_id: int, snapshot: Snapshot) -> None:
        with self._lock:
            self._watched[sample_id] = snapshot

    def _loop(self) -> None:
        """Flush until closed; a failed flush (disk full, a lock held too long) is kept and
        retried at the next tick rather than ending the thread."""
        while not self._done.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
            except sqlite3.Error as exc:
                self.error = exc

    def flush(self) -> None:
        with self._lock:
            changed = {}
            for sample_id, snapshot in self._watched.items():
                fields, key = _taken(snapshot)
                if key != self._last.get(sample_id):
                    changed[sample_id] = (fields, key)
            if changed:
                self._store.update_samples({i: fields for i, (fields, _) in changed.items()})
                self._last.update({i: key for i, (_, key) in changed.items()})

    def finish(self, store: Store, sample_id: int, fields: dict) -> None:
        """Stop watching the sample and write its final state (status, parsed trace, stats) at
        once, through `store` (the caller's connection)."""
        with self._lock:
            snapshot = self._watched.pop(sample_id)
            self._last.pop(sample_id, None)
        store.update_sample(sample_id, {**_taken(snapshot)[0], **fields})

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self._store.close()

"""Writes a streaming sample to the database as it grows.

A background thread with its own connection saves the latest snapshot every FLUSH_INTERVAL_S, so
the decoding loop never waits on disk and a killed process loses at most the last moment of text
(the design's promise: flushed at least every ~0.5 s).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable

from lrmscope.store.db import Store

FLUSH_INTERVAL_S = 0.25

# () -> (raw text so far, injected spans as dicts, other sample fields)
Snapshot = Callable[[], tuple[str, list[dict], dict]]


class SampleWriter:
    def __init__(self, store: Store, sample_id: int, snapshot: Snapshot) -> None:
        self._store = Store(store.path)
        self._sample_id = sample_id
        self._snapshot = snapshot
        self._last: tuple | None = None
        self.error: sqlite3.Error | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lrmscope-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """Flush until finished; a failed flush (disk full, a lock held too long) is kept and
        retried at the next tick rather than ending the thread."""
        while not self._done.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
            except sqlite3.Error as exc:
                self.error = exc

    def flush(self) -> None:
        raw, spans, fields = self._snapshot()
        key = (len(raw), len(spans), json.dumps(fields, sort_keys=True, default=str))
        if key == self._last:
            return
        self._store.update_sample(
            self._sample_id, {"raw": raw, "injected": json.dumps(spans), **fields}
        )
        self._last = key

    def finish(self, fields: dict) -> None:
        """Stop the thread and write the final state (status, parsed trace, stats) at once."""
        self._done.set()
        self._thread.join()
        raw, spans, current = self._snapshot()
        try:
            self._store.update_sample(
                self._sample_id,
                {"raw": raw, "injected": json.dumps(spans), **current, **fields},
            )
        finally:
            self._store.close()

"""Live segment flags: judging a streaming response sentence by sentence, off the token path.

`SegmentFlagger.feed` takes the generation's events as they come. It cuts the thought and the
answer into segments (at a sentence end or a line break, or at `max_chars`), and hands each
finished segment to a background thread, which runs the live judges and reports `Flag`s with
their character offsets in the raw trace. The caller's thread only appends strings and scans the
new text for a boundary, so judging never slows the token stream. Injected text is not judged:
it is the engine's, not the model's.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lrmscope.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    Injected,
    Part,
    ThinkDelta,
)
from lrmscope.engine.judges.base import Judge, Label

_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")
BATCH = 16


@dataclass(frozen=True)
class Flag:
    part: Part
    start: int  # raw offsets: raw[start:end] == text
    end: int
    judge: str
    judge_version: str
    label: Label
    score: float | None
    categories: tuple[str, ...]
    text: str
    raw: str  # the judge's own output


@dataclass(frozen=True)
class _Segment:
    part: Part
    start: int
    text: str


class SegmentFlagger:
    def __init__(
        self,
        judges: Sequence[Judge],
        prompt: str,
        *,
        on_flag: Callable[[Flag], None] | None = None,
        max_chars: int = 600,
    ) -> None:
        self.judges = list(judges)
        self.prompt = prompt
        self.on_flag = on_flag
        self.max_chars = max_chars
        self.errors: list[str] = []
        self._flags: list[Flag] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Segment | None] = queue.Queue()
        self._part: Part | None = None
        self._start = 0
        self._buffer = ""
        self._thread = threading.Thread(target=self._work, name="lrmscope-flags", daemon=True)
        self._thread.start()

    # -- the caller's side: cheap --------------------------------------------------------------

    def feed(self, event: Event) -> None:
        if isinstance(event, ThinkDelta):
            self._add("think", event.start, event.text)
        elif isinstance(event, AnswerDelta):
            self._add("answer", event.start, event.text)
        elif isinstance(event, (Injected, Finished)):
            self._cut()

    def _add(self, part: Part, start: int, text: str) -> None:
        if part != self._part or start != self._start + len(self._buffer):
            self._cut()
            self._part, self._start = part, start
        scan_from = max(0, len(self._buffer) - 1)
        self._buffer += text
        cuts = [match.end() for match in _BOUNDARY.finditer(self._buffer, scan_from)]
        done = 0
        for cut in cuts:  # every sentence is its own segment
            self._emit(self._buffer[: cut - done])
            done = cut
        while len(self._buffer) > self.max_chars:
            self._emit(self._buffer[: self.max_chars])

    def _emit(self, text: str) -> None:
        if text.strip() and self._part is not None:
            self._queue.put(_Segment(self._part, self._start, text))
        self._buffer = self._buffer[len(text) :]
        self._start += len(text)

    def _cut(self) -> None:
        if self._buffer:
            self._emit(self._buffer)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def flags(self) -> list[Flag]:
        with self._lock:
            return list(self._flags)

    def close(self, timeout: float | None = None) -> list[Flag]:
        """Judge what is left and wait for the judges (at most `timeout` seconds, then judging
        goes on in the background and `running` stays true); returns the flags so far."""
        self._cut()
        self._queue.put(None)
        self._thread.join(timeout)
        return self.flags()

    # -- the judges' side: a background thread -------------------------------------------------

    def _work(self) -> None:
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get())
            done = batch[-1] is None
            segments = [s for s in batch if s is not None]
            if segments:
                self._judge(segments)

    def _judge(self, segments: list[_Segment]) -> None:
        for judge in self.judges:
            try:
                verdicts = judge.judge_batch([(self.prompt, s.text) for s in segments])
            except Exception as exc:  # noqa: BLE001 - a failing live judge must not stop the chat
                self.errors.append(f"{judge.name}: {exc}")
                continue
            for segment, verdict in zip(segments, verdicts):
                flag = Flag(
                    part=segment.part,
                    start=segment.start,
                    end=segment.start + len(segment.text),
                    judge=judge.name,
                    judge_version=judge.version,
                    label=verdict.label,
                    score=verdict.score,
                    categories=verdict.categories,
                    text=segment.text,
                    raw=verdict.raw,
                )
                with self._lock:
                    self._flags.append(flag)
                if self.on_flag is not None:
                    try:
                        self.on_flag(flag)
                    except Exception as exc:  # noqa: BLE001 - e.g. a locked database
                        self.errors.append(f"saving a flag of {judge.name}: {exc}")

"""Live segment flags: judging a streaming response sentence by sentence, off the token path.

`SegmentFlagger.feed` takes the generation's events as they come. It cuts the thought and the
answer into segments (at a sentence end or a line break, or at `max_chars`), and hands each
finished segment to a `JudgeWorker`, a background thread, which runs the live judges and reports
`Flag`s with their character offsets in the raw trace. The caller's thread only appends strings
and scans the new text for a boundary, so judging never slows the token stream. Injected text is
not judged: it is the engine's, not the model's. A flagger has a worker of its own, or shares one
with other flaggers (an eval's sequences), which then batches all their segments together.
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
    owner: SegmentFlagger


class JudgeWorker:
    """A background thread that judges the segments flaggers hand it, up to BATCH at a time
    whichever flagger each came from, with every judge, and hands each verdict back to its
    flagger. The judges are called from this thread only."""

    def __init__(self, judges: Sequence[Judge]) -> None:
        self.judges = list(judges)
        self._queue: queue.Queue[_Segment | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="lrmscope-flags", daemon=True)
        self._thread.start()

    def submit(self, segment: _Segment) -> None:
        self._queue.put(segment)

    def close(self, timeout: float | None = None, *, drop: bool = False) -> None:
        """Judge what was submitted, then end (waiting at most `timeout` seconds). With `drop`,
        only the batch being judged now is finished: the rest is dropped unjudged (a command
        that ends; a judge's model still running when the interpreter exits can abort it)."""
        while drop:
            try:
                segment = self._queue.get_nowait()
            except queue.Empty:
                break
            if segment is not None:
                segment.owner._judged()  # nobody waits on it in vain
        self._queue.put(None)
        self._thread.join(timeout)

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
                for segment in segments:
                    segment.owner._judged()

    def _judge(self, segments: list[_Segment]) -> None:
        for judge in self.judges:
            try:
                verdicts = judge.judge_batch([(s.owner.prompt, s.text) for s in segments])
            except Exception as exc:  # noqa: BLE001 - a failing live judge must not stop the chat
                for owner in {id(s.owner): s.owner for s in segments}.values():
                    owner.errors.append(f"{judge.name}: {exc}")
                continue
            for segment, verdict in zip(segments, verdicts):
                segment.owner._add_flag(
                    Flag(
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
                )


class SegmentFlagger:
    """`judges` are the live judges, run by a worker of the flagger's own, or a `JudgeWorker`
    shared with other flaggers (whose owner closes it)."""

    def __init__(
        self,
        judges: Sequence[Judge] | JudgeWorker,
        prompt: str,
        *,
        on_flag: Callable[[Flag], None] | None = None,
        max_chars: int = 600,
        whole_sentences: bool = False,
    ) -> None:
        self._own = not isinstance(judges, JudgeWorker)
        self.worker = judges if isinstance(judges, JudgeWorker) else JudgeWorker(judges)
        self.prompt = prompt
        self.on_flag = on_flag
        self.max_chars = max_chars
        # a guard's: the piece of a sentence that injected text cuts short is dropped, not judged
        # (else the guard's own intervention would hand it a fragment to flag); a sentence that
        # ends where the injected text starts is judged
        self.whole_sentences = whole_sentences
        self.errors: list[str] = []
        self._flags: list[Flag] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting = 0  # segments handed to the worker and not judged yet
        self._part: Part | None = None
        self._start = 0
        self._buffer = ""

    # -- the caller's side: cheap --------------------------------------------------------------

    def feed(self, event: Event) -> None:
        if isinstance(event, ThinkDelta):
            self._add("think", event.start, event.text)
        elif isinstance(event, AnswerDelta):
            self._add("answer", event.start, event.text)
        elif isinstance(event, Injected) and self.whole_sentences:
            if self._buffer.rstrip(" \t").endswith((".", "!", "?", "\n")):
                self._cut()  # a finished sentence, whose next token is the injected text
            self._start += len(self._buffer)
            self._buffer = ""
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
            with self._lock:
                self._waiting += 1
            self.worker.submit(_Segment(self._part, self._start, text, self))
        self._buffer = self._buffer[len(text) :]
        self._start += len(text)

    def _cut(self) -> None:
        if self._buffer:
            self._emit(self._buffer)

    @property
    def running(self) -> bool:
        """Whether some of its segments are still being judged."""
        with self._lock:
            return self._waiting > 0

    def flags(self) -> list[Flag]:
        with self._lock:
            return list(self._flags)

    def close(self, timeout: float | None = None) -> list[Flag]:
        """Judge what is left and wait for the judges (at most `timeout` seconds, then judging
        goes on in the background and `running` stays true); returns the flags so far."""
        self._cut()
        if self._own:
            self.worker.close(timeout)
        with self._idle:
            self._idle.wait_for(lambda: self._waiting == 0, timeout)
        return self.flags()

    # -- the worker's side: its thread ---------------------------------------------------------

    def _add_flag(self, flag: Flag) -> None:
        with self._lock:
            self._flags.append(flag)
        if self.on_flag is not None:
            try:
                self.on_flag(flag)
            except Exception as exc:  # noqa: BLE001 - e.g. a locked database
                self.errors.append(f"saving a flag of {flag.judge}: {exc}")

    def _judged(self) -> None:
        with self._idle:
            self._waiting -= 1
            self._idle.notify_all()

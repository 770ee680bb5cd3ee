"""One generation under a decoding mode: the controller between a backend and its consumer.

The controller owns every prefill, stop string and injected span (docs/study.md "Decoding
modes"), and works the same over any backend. While the thought is open the backend always runs
with the stop string `</think>`, so the controller decides at each close: keep the model's own
close (default), replace it with a rethink string (MoreThink), or close early (ZeroThink/LessThink
switched live, or the s1-style max_think cap). A mode change, a stop request and a free-text
injection may come from another thread.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import replace

from lrmscope.engine.backend import ApiReport, Backend, Piece, StreamEnd
from lrmscope.engine.events import (
    Event,
    Finished,
    FinishReason,
    Injected,
    Part,
    Span,
    SpanKind,
    Stats,
    Trace,
)
from lrmscope.engine.flags import JudgeWorker
from lrmscope.engine.guard import GuardWatch
from lrmscope.engine.judges.base import Judge
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    MAX_SEED,
    THINK_CLOSE,
    ZEROTHINK_PREFILL,
    CustomMode,
    Injection,
    ModeSettings,
    SamplerSettings,
)
from lrmscope.engine.trace import StreamParser, parse_trace

# What a command says, once, when a served model's server gave no thought (`thought_given`).
NO_THOUGHT = (
    "the server sent no reasoning field and no <think> tags: the thought is saved empty and "
    "marked absent"
)


class Generation:
    """Iterate it for events; call `stop()` or `switch_mode()` from any thread meanwhile.

    `prompt` is the rendered chat prompt P, already ending in `<think>\\n` (see engine.prompt).
    A guarded mode's guard (engine/guard.py) is run by `guard_judge` (built from the guard's
    judge spec when not given; a command that runs many generations shares one `JudgeWorker`,
    engine/guard.py `guard_judges`), which judges
    each sentence with the user's text `user_text`; it is the guard of the mode the generation
    starts in.
    """

    def __init__(
        self,
        backend: Backend,
        prompt: str,
        *,
        sampler: SamplerSettings,
        mode: ModeSettings,
        guard_judge: Judge | JudgeWorker | None = None,
        user_text: str = "",
    ) -> None:
        self.backend = backend
        self.prompt = prompt
        self.sampler = sampler
        self._mode = mode.resolved()  # what the controller runs: a mode's own values applied
        self._next_mode = mode
        self._prefilled: ModeSettings | None = None  # the mode whose prefill was injected
        self._injections_done = 0  # of the mode's --inject texts, in the order they land
        self._pending: list[str] = []  # texts from `inject()`, landing at the next token boundary
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._raw: list[str] = []
        self._raw_len = 0
        self._spans: list[Span] = []
        self._parser = StreamParser()
        self._rng = random.Random(sampler.seed)
        self._calls = 0
        self.prompt_tokens = 0
        self.think_tokens = 0
        self.answer_tokens = 0
        self.rethinks = 0
        self.finish_reason: FinishReason | None = None
        self._first_token_at: float | None = None
        self.switches: list[dict] = []  # live mode changes: raw offset, from, to
        self.report: ApiReport | None = None  # a served chat model's, over all its requests
        self.guard: GuardWatch | None = None
        guard = mode.mode.guard if isinstance(mode.mode, CustomMode) else None
        if guard is not None:
            if guard_judge is None:
                from lrmscope.engine.judges.registry import build_judge

                guard_judge = build_judge(guard.judge)
            self.guard = GuardWatch(guard, guard_judge, user_text)

    # -- control, from any thread -------------------------------------------------------------

    @property
    def mode(self) -> ModeSettings:
        """The mode in effect, with its own values applied (ModeSettings.resolved)."""
        return self._mode

    @property
    def next_mode(self) -> ModeSettings:
        """The mode the next generation should use (a switch after the thought closed lands
        here)."""
        return self._next_mode

    def stop(self) -> None:
        self._stop.set()

    def switch_mode(self, mode: ModeSettings) -> None:
        """While thinking: a mode with a prefill injects it now (ZeroThink/LessThink close the
        thought), MoreThink replaces the next close, default lets the next close stand. After the
        thought: applies to the next turn."""
        self._next_mode = mode
        resolved = mode.resolved()
        if self._parser.in_think and self.finish_reason is None and resolved != self._mode:
            with self._lock:
                self.switches.append(
                    {"at": self._raw_len, "from": self._mode.mode.value, "to": mode.mode.value}
                )
            self._mode = resolved

    def inject(self, text: str) -> bool:
        """Inject `text` into the running thought at the next token boundary, as an `inject` span
        (what --inject does at a token count). False when the thought has already closed; a text
        still pending when it closes is dropped (`pending_injections` says how many)."""
        with self._lock:
            if not self._parser.in_think or self.finish_reason is not None:
                return False
            self._pending.append(text)
            return True

    @property
    def pending_injections(self) -> int:
        with self._lock:
            return len(self._pending)

    def _take_pending(self) -> str | None:
        with self._lock:
            return self._pending.pop(0) if self._pending else None

    def _state(self) -> tuple[str, list[Span]]:
        with self._lock:
            raw = "".join(self._raw)
            self._raw[:] = [raw]
            return raw, list(self._spans)

    def snapshot(self) -> tuple[str, list[dict], dict]:
        """Raw text so far, injected spans, and the sample's other fields (token counts, the trace
        parsed so far, the mode in effect and its live switches): what a store writer saves, so a
        sample cut off at any moment is as complete as the moment allows."""
        raw, spans = self._state()
        trace = self._trace(raw, spans)
        with self._lock:
            switches = list(self.switches)
        fields = {
            "prompt_tokens": self.prompt_tokens,
            "think_tokens": self.think_tokens,
            "answer_tokens": self.answer_tokens,
            "rethinks": self.rethinks,
            "thought": trace.thought,
            "answer": trace.answer,
            "think_closed": int(trace.think_closed),
            "think_state": trace.think_state,
            "close_count": trace.close_count,
            "response_start": trace.response_start,
            "think_written": int(trace.think_written),
            "mode": self._mode.mode.value,
            "mode_params": self._mode.as_dict(),
            "mode_switches": switches,
        }
        if self.report is not None:
            fields.update(api_fields(self.report))
        return raw, [span.as_dict() for span in spans], fields

    def _trace(self, raw: str, spans: list[Span]) -> Trace:
        """The trace of `raw`; a served model that gave no thought at all has it `absent`, and its
        response (what is judged) starts after the close, which the client that rebuilt the raw
        text wrote, not the model (docs/study.md "Hosted models")."""
        trace = parse_trace(raw, spans)
        if self.report is None or self.report.thought_source != "none" or not trace.think_closed:
            return trace
        start = max(trace.response_start, raw.find(THINK_CLOSE) + len(THINK_CLOSE))
        return replace(trace, think_state="absent", response_start=start)

    @property
    def thought_given(self) -> bool:
        """False when a served model's server gave no thought at all (thought source none)."""
        return self.report is None or self.report.thought_source != "none"

    def _take_report(self, report: ApiReport) -> None:
        """A request's report joins the generation's: the first thought source that gave a
        thought (a later request may give one where the first gave none: MoreThink rethinking),
        usage summed over the requests, the last finish reason."""
        old = self.report
        if old is None:
            self.report = report
        else:
            given = old.thought_source not in (None, "none")
            self.report = ApiReport(
                old.thought_source if given else (report.thought_source or old.thought_source),
                add_usage(old.usage, report.usage),
                report.finish or old.finish,
                report.controls or old.controls,
            )
        usage = self.report.usage or {}
        if not self.prompt_tokens and isinstance(usage.get("prompt_tokens"), int):
            self.prompt_tokens = usage["prompt_tokens"]

    # -- the loop -------------------------------------------------------------------------------

    def _append(self, text: str) -> None:
        with self._lock:
            self._raw.append(text)
            self._raw_len += len(text)

    def _inject(self, text: str, kind: SpanKind, trigger: dict | None = None) -> Iterator[Event]:
        yield from self._parser.flush()
        part: Part = "think" if self._parser.in_think else "answer"
        start = self._raw_len
        span = Span(start, start + len(text), kind, text, trigger)
        with self._lock:
            self._spans.append(span)
        self._append(text)
        self._parser.feed(text)
        yield Injected(span, part)

    def _prefill_due(self) -> str | None:
        """The prefill of the mode in effect, until it is injected (at the start, or when a live
        switch lands while the thought is open)."""
        mode = self._mode
        return mode.mode.prefill if self._prefilled is not mode else None

    def _prefill(self) -> Iterator[Event]:
        mode = self._mode
        prefill = self._prefill_due()
        self._prefilled = mode
        if prefill is not None:
            yield from self._inject(prefill, "prefill")

    def _next_injection(self) -> Injection | None:
        injections = self._mode.injections
        done = self._injections_done
        return injections[done] if done < len(injections) else None

    def _think_limit(self) -> int | None:
        """Tokens the thought may still use, or None when only max_tokens bounds it."""
        limits = []
        if self._mode.mode.rethinks:
            limits.append(self._mode.think_budget - self.think_tokens)
        if self._mode.max_think is not None:
            limits.append(self._mode.max_think - self.think_tokens)
        return max(0, min(limits)) if limits else None

    def _run_backend(self, max_tokens: int, stop: list[str]) -> Iterator[Event | Piece]:
        """Stream one backend call; yields events, then the final Piece (or nothing if stopped)."""
        seed = (self.sampler.seed + self._calls) % (MAX_SEED + 1)
        self._calls += 1
        grammar = self._mode.think_grammar if self._parser.in_think else None
        stream = self.backend.stream(
            self.prompt + self._state()[0],
            max_tokens=max_tokens,
            stop=stop,
            sampler=self.sampler,
            seed=seed,
            grammar=grammar,
        )
        try:
            for piece in stream:
                if piece.report is not None:
                    self._take_report(piece.report)
                if self._first_token_at is None and piece.tokens:
                    self._first_token_at = time.perf_counter()
                if self._parser.in_think:
                    self.think_tokens += piece.tokens
                else:
                    self.answer_tokens += piece.tokens
                if piece.text:
                    self._append(piece.text)
                    yield from self._parser.feed(piece.text)
                    if self.guard is not None:
                        self.guard.mark(self._raw_len, self.think_tokens + self.answer_tokens)
                if piece.end is not None:
                    yield piece
                    return
                if self._stop.is_set():
                    return
                if self._parser.in_think and (self._prefill_due() is not None or self._pending):
                    return
                if self._guard_due():
                    return
        finally:
            stream.close()

    def _guard_due(self) -> bool:
        return self.guard is not None and self.guard.due(
            "think" if self._parser.in_think else "answer"
        )

    def _intervene(self) -> Iterator[Event]:
        """The guard's action on the flag it takes (docs/study.md "Guarded modes")."""
        assert self.guard is not None
        trigger = self.guard.take(self.think_tokens + self.answer_tokens)
        guard = self.guard.guard
        if guard.action == "inject":
            yield from self._inject(guard.text or "", "inject", trigger)
        elif guard.action == "close":
            yield from self._inject(ZEROTHINK_PREFILL, "close", trigger)
        else:  # restart: the response so far is dropped, kept in the trigger with its tokens
            yield from self._parser.flush()
            trigger["dropped"] = self._state()[0]
            # the tokens of every restart so far: an earlier one's span goes with this response
            earlier = sum(s.trigger.get("dropped_tokens", 0) for s in self._spans if s.trigger)
            trigger["dropped_tokens"] = self.think_tokens + self.answer_tokens + earlier
            with self._lock:
                self._raw[:] = []
                self._raw_len = 0
                self._spans[:] = []
            self._parser = StreamParser()
            self.think_tokens = self.answer_tokens = 0
            self.guard.restart()
            yield from self._inject(guard.prefill or "", "prefill", trigger)

    def __iter__(self) -> Iterator[Event]:
        try:
            for event in self._events():
                if self.guard is not None:
                    self.guard.feed(event)
                yield event
        finally:
            if self.guard is not None:
                self.guard.close()

    def _events(self) -> Iterator[Event]:
        started = time.perf_counter()
        self.prompt_tokens = self.backend.count_tokens(self.prompt)
        yield from self._prefill()
        while self.finish_reason is None:
            self.finish_reason = yield from self._step()
        yield from self._parser.flush()
        raw, spans = self._state()
        stats = Stats(
            prompt_tokens=self.prompt_tokens,
            think_tokens=self.think_tokens,
            answer_tokens=self.answer_tokens,
            rethinks=self.rethinks,
            finish_reason=self.finish_reason,
            first_token_s=(
                None if self._first_token_at is None else self._first_token_at - started
            ),
            elapsed_s=time.perf_counter() - started,
        )
        yield Finished(self._trace(raw, spans), stats)

    def _step(self) -> Generator[Event, None, FinishReason | None]:
        """One backend call and what follows from how it ended; returns a finish reason or None."""
        if self._stop.is_set():
            return "stopped"
        remaining = self.sampler.max_tokens - self.think_tokens - self.answer_tokens
        if remaining <= 0:
            return "length"
        if self._guard_due():
            yield from self._intervene()
            return None
        if not self._parser.in_think:
            return (yield from self._answer(remaining))

        if self._prefill_due() is not None:
            yield from self._prefill()
            return None
        pending = self._take_pending()
        if pending is not None:
            yield from self._inject(pending, "inject")
            return None
        injection = self._next_injection()
        if injection is not None and injection.after <= self.think_tokens:
            self._injections_done += 1
            yield from self._inject(injection.text, "inject")
            return None
        think_limit = self._think_limit()
        if think_limit == 0:
            yield from self._inject(FORCED_CLOSE, "close")
            return None
        budget = remaining if think_limit is None else min(think_limit, remaining)
        if injection is not None:  # the call stops where the next injection lands
            budget = min(budget, injection.after - self.think_tokens)
        capped = budget < remaining
        end = yield from self._call(budget, [THINK_CLOSE])
        if end is None:
            return "stopped" if self._stop.is_set() else None
        if end == "length":
            return None if capped else "length"
        if end in ("context", "content_filter"):
            return end
        # The model closed its thought (stop) or ended the text (eos) inside it.
        if self._mode.mode.rethinks:
            budget_left = self._mode.think_budget - self.think_tokens
            if self.rethinks < self._mode.enforce_num and budget_left > 0:
                self.rethinks += 1
                yield from self._inject(self._rng.choice(self._mode.rethink_strings), "rethink")
            else:
                yield from self._inject(FORCED_CLOSE, "close")
            return None
        if end == "eos":
            return "eos"
        self._append(THINK_CLOSE)
        yield from self._parser.feed(THINK_CLOSE)
        return None

    def _answer(self, remaining: int) -> Generator[Event, None, FinishReason | None]:
        """The answer, in one call (a guard's intervention cuts it; the next call goes on).
        MoreThink's answer under the study's budget gets max_tokens - think_budget tokens and
        stops at `</think>` (docs/study.md "MoreThink")."""
        limit = self._mode.answer_limit(self.sampler.max_tokens)
        if limit is None:
            end = yield from self._call(remaining, [])
            if end is None:
                return "stopped" if self._stop.is_set() else None
            return "eos" if end == "stop" else end
        left = limit - self.answer_tokens
        if left <= 0:
            return "length"
        end = yield from self._call(min(left, remaining), [THINK_CLOSE])
        if end is None:
            return "stopped" if self._stop.is_set() else None
        return "close" if end == "stop" else end

    def _call(self, max_tokens: int, stop: list[str]) -> Generator[Event, None, StreamEnd | None]:
        end: StreamEnd | None = None
        for item in self._run_backend(max_tokens, stop):
            if isinstance(item, Piece):
                end = item.end
            else:
                yield item
        return end


def add_usage(old: dict | None, new: dict | None) -> dict | None:
    """Two requests' usage, field by field (nested counts too), and how many requests: a
    generation of several requests (MoreThink's rounds, a prefill) reports what they used
    together."""
    if not old or not new:
        return old or new
    total = _sum_counts(old, new)
    total["requests"] = old.get("requests", 1) + new.get("requests", 1)
    return total


def _sum_counts(old: dict, new: dict) -> dict:
    total = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(total.get(key), dict):
            total[key] = _sum_counts(total[key], value)
        elif isinstance(value, (int, float)) and isinstance(total.get(key), (int, float)):
            total[key] = total[key] + value
        else:
            total.setdefault(key, value)
    return total


def api_fields(report: ApiReport) -> dict:
    """A served chat model's sample columns (schema v8)."""
    return {
        "thought_source": report.thought_source,
        "usage": report.usage,
        "api": {"finish": report.finish, "controls": report.controls or {}},
    }

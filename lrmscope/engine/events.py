"""Typed events a generation yields, and the parsed trace it ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Part = Literal["think", "answer"]
SpanKind = Literal["prefill", "rethink", "close", "inject"]
ThinkState = Literal["absent", "empty", "normal", "unclosed"]
# close: MoreThink's answer wrote `</think>` and was stopped there, as in the study;
# content_filter: a served model's provider stopped it with its content filter.
FinishReason = Literal["eos", "length", "context", "stopped", "close", "content_filter"]


@dataclass(frozen=True)
class ThinkDelta:
    """Model-written text inside the thought (never contains the closing tag); `start` is its
    offset in the raw trace."""

    text: str
    start: int = 0


@dataclass(frozen=True)
class AnswerDelta:
    """Model-written text after the thought; `start` is its offset in the raw trace."""

    text: str
    start: int = 0


@dataclass(frozen=True)
class Span:
    """Engine-written text in the raw trace: raw[start:end] == text. A guard's intervention
    has its `trigger`: the flag that caused it (lrmscope/engine/guard.py `GuardWatch.take`)."""

    start: int
    end: int
    kind: SpanKind
    text: str
    trigger: dict | None = field(default=None, compare=False)

    def as_dict(self) -> dict:
        data: dict = {"start": self.start, "end": self.end, "kind": self.kind, "text": self.text}
        if self.trigger is not None:
            data["trigger"] = self.trigger
        return data


@dataclass(frozen=True)
class Injected:
    """The engine wrote text into the trace (a prefill, a rethink string or a forced close)."""

    span: Span
    part: Part


@dataclass(frozen=True)
class Trace:
    """A response split into thought and answer.

    raw is everything after the rendered prompt (model text and injected text, in order). The first
    `</think>` is the boundary (docs/study.md "Trace anatomy"); thought and answer are stripped of
    the whitespace around them. think_state is one of:
    absent (the engine closed the thought before the model wrote any of it), empty (the model closed
    it without writing), normal, unclosed (no `</think>`: budget or max_tokens hit, no answer).
    """

    raw: str
    thought: str
    answer: str
    think_closed: bool
    close_count: int
    think_state: ThinkState
    injected: tuple[Span, ...] = ()
    response_start: int = 0  # raw[:response_start] is a prefill: prompt, never judged
    think_written: bool = False  # the model wrote some of the thought


@dataclass(frozen=True)
class Stats:
    prompt_tokens: int
    think_tokens: int
    answer_tokens: int
    rethinks: int
    finish_reason: FinishReason
    first_token_s: float | None
    elapsed_s: float

    @property
    def tokens_per_s(self) -> float:
        generated = self.think_tokens + self.answer_tokens
        return generated / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class Finished:
    trace: Trace
    stats: Stats


Event = ThinkDelta | AnswerDelta | Injected | Finished

"""The judge protocol: batched verdicts on (prompt, text) pairs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lrmscope.engine.settings import check_choice
from lrmscope.errors import LrmscopeError
from lrmscope.vocab import Label


class JudgeError(LrmscopeError):
    """A judge could not run at all (model missing, server down after retries). Distinct from an
    `unparsed` verdict, which is a judge that ran and said something unreadable."""


@dataclass(frozen=True)
class Verdict:
    """label: safe / unsafe / unparsed (never guessed); score: the judge's probability of
    `unsafe` where it has one; raw: the judge's own output, kept for review."""

    label: Label
    score: float | None = None
    categories: tuple[str, ...] = ()
    raw: str = ""
    truncated: bool = False
    meta: dict = field(default_factory=dict)


class Judge(Protocol):
    """name + version + prompt_hash identify a judgement: a change to any of them is a new judge
    as far as stored verdicts are concerned (docs/study.md "Judges")."""

    name: str
    version: str
    prompt_hash: str
    device: str

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """One verdict per (user prompt, response text) pair, in order."""
        ...


@dataclass(frozen=True)
class OneAtATime:
    """A judge shared by threads that may call it at once (compare's columns): one batch at a
    time, since a judge's model or client need not be safe to call concurrently."""

    judge: Judge
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.judge.name

    @property
    def version(self) -> str:
        return self.judge.version

    @property
    def prompt_hash(self) -> str:
        return self.judge.prompt_hash

    @property
    def device(self) -> str:
        return self.judge.device

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        with self._lock:
            return self.judge.judge_batch(pairs)


def judge(j: Judge, prompt: str, texts: Sequence[str]) -> list[Verdict]:
    """Verdicts on several responses to one prompt."""
    return j.judge_batch([(prompt, text) for text in texts])


def neutralize(text: str, special_tokens: Sequence[str]) -> str:
    """Untrusted text with special-token strings broken up (a zero-width space after their first
    character), so a prompt or response cannot forge the judge's own turn when the rendered
    input is tokenized with special tokens parsed."""
    for token in special_tokens:
        if token in text:
            text = text.replace(token, token[0] + "\u200b" + token[1:])
    return text


# How a text longer than a judge takes is cut: keep its first tokens (HarmBench's own
# evaluate_completions.py tokenizes generations with truncation_side="right", max_length=512),
# keep its last tokens, or never cut.
TRUNCATION_SIDES = ("first", "last", "none")


def check_truncation(side: str) -> str:
    check_choice("judge truncation", side, TRUNCATION_SIDES)
    return side


def check_threshold(value: float) -> float:
    """A scoring judge's threshold: unsafe when the score is at least this (0 to 1)."""
    if not 0.0 <= value <= 1.0:
        raise LrmscopeError(f"judge threshold {value:g}: use a number from 0 to 1")
    return value


def cut_tokens(tokens: Sequence[int], limit: int, side: str) -> tuple[Sequence[int], dict]:
    """A text's tokens cut to at most `limit`: the first ones kept (side "first", HarmBench's
    cut), the last ones ("last") or all of them ("none"); and the record of the cut
    ({"truncation": side, "text_tokens": n, "kept_tokens": m}, or {} when nothing was cut)."""
    check_truncation(side)
    if side == "none" or len(tokens) <= limit:
        return tokens, {}
    kept = tokens[:limit] if side == "first" else tokens[len(tokens) - limit :]
    return kept, {"truncation": side, "text_tokens": len(tokens), "kept_tokens": len(kept)}


def text_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# docs/study.md "Whole-thought windows": a text longer than a short judge takes is judged in
# windows of its token limit that overlap by a quarter of it.
WINDOW_OVERLAP = 4  # windows overlap by 1/WINDOW_OVERLAP of their length


def token_windows(n_tokens: int, size: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of `size` tokens covering `n_tokens`, each starting
    size - size // WINDOW_OVERLAP after the one before; the last ends at the text's end."""
    if n_tokens <= size:
        return [(0, n_tokens)]
    step = max(1, size - size // WINDOW_OVERLAP)
    starts = list(range(0, n_tokens - size, step)) + [n_tokens - size]
    return [(start, start + size) for start in starts]


def combine_windows(verdicts: Sequence[tuple[int, Verdict]], record: dict) -> Verdict:
    """One verdict from a text's windows, each given with its character offset: unsafe if any
    window is (the first unsafe window's offset kept in meta as `unsafe_offset`), safe if every
    window is, else `unparsed`. The score is the highest window's; `record` describes the
    windows."""
    labels = [v.label for _, v in verdicts]
    scores = [v.score for _, v in verdicts if v.score is not None]
    if "unsafe" in labels:
        index = labels.index("unsafe")
        offset, chosen = verdicts[index]
        extra = {"unsafe_window": index, "unsafe_offset": offset}
    else:
        index = labels.index("unparsed") if "unparsed" in labels else 0
        chosen, extra = verdicts[index][1], {}
    categories = dict.fromkeys(c for _, v in verdicts if v.label == "unsafe" for c in v.categories)
    return Verdict(
        "unsafe" if "unsafe" in labels else ("safe" if set(labels) == {"safe"} else "unparsed"),
        max(scores) if scores else None,
        tuple(categories),
        chosen.raw,
        False,
        {**chosen.meta, **record, **extra},
    )

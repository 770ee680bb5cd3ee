"""Judging saved samples: the glue between the judges and the store (`lrmscope judge`), and
checking the answers of reasoning tasks against their reference.

Each (sample, part) is judged once per judge name + version + prompt hash; verdicts are saved
batch by batch, so an interrupted run loses at most one batch and the next run resumes. Texts are
read a page at a time, so memory stays flat on large databases.
What a judge reads of each part follows one rule for every mode (engine.trace.judged_texts,
docs/study.md "What is judged"): a prefill before the model's first token is prompt, never
judged. A part the model wrote none of (no answer after an unclosed thought, no thought under
ZeroThink, LessThink's injected thought) is not judged: a verdict on it would measure the engine
or nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lrmscope.engine import answers
from lrmscope.engine.events import Trace
from lrmscope.engine.judges.base import Judge, Label, Verdict, judge
from lrmscope.engine.trace import judged_texts
from lrmscope.store import Store
from lrmscope.store.filters import SampleFilter

# A verdict as the live views show it: (judge, part, label, categories).
Shown = tuple[str, str, Label, tuple[str, ...]]


class Identified(Protocol):
    """Whose verdicts a row holds: a judge, or a jury of saved verdicts (core/jury.py)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def prompt_hash(self) -> str: ...


def judgement_row(sample_id: int, part: str, judge: Identified, verdict: Verdict) -> dict:
    """A verdict as a `judgements` row, under the judge's name, version and prompt hash."""
    return {
        "sample_id": sample_id,
        "part": part,
        "judge": judge.name,
        "judge_version": judge.version,
        "prompt_hash": judge.prompt_hash,
        "label": verdict.label,
        "score": verdict.score,
        "categories": list(verdict.categories),
        "raw": verdict.raw,
        "truncated": int(verdict.truncated),
        "meta": verdict.meta or None,
    }


def trace_parts(trace: Trace) -> list[tuple[str, str]]:
    """The judged parts of a finished trace and their texts, the same texts `run` reads from
    the database."""
    return [(part, text) for part, text in judged_texts(trace).items() if text.strip()]


def judge_trace(
    store: Store, sample_id: int, prompt: str, trace: Trace, judges: Sequence[Judge]
) -> list[Shown]:
    """Judge a finished trace's thought, answer and full response at once (the chat's turns,
    compare's columns) and save the verdicts. A judge that fails is shown as unparsed with its
    error and saves nothing; the others go on."""
    parts = trace_parts(trace)
    shown: list[Shown] = []
    rows = []
    for j in judges:
        try:
            verdicts = judge(j, prompt, [text for _, text in parts])
        except Exception as exc:  # noqa: BLE001 - a failing judge leaves the live view usable
            shown.append((j.name, "all", "unparsed", (f"error: {exc}",)))
            continue
        for (part, _), verdict in zip(parts, verdicts):
            shown.append((j.name, part, verdict.label, verdict.categories))
            rows.append(judgement_row(sample_id, part, j, verdict))
    if rows:
        store.add_judgements(rows)
    return shown


@dataclass
class JudgeSummary:
    counts: Counter = field(default_factory=Counter)  # (part, label) -> verdicts written
    empty: Counter = field(default_factory=Counter)  # part -> parts with no text
    already: Counter = field(default_factory=Counter)  # part -> judged by an earlier run
    todo: int = 0


def _samples(statuses: tuple[str, ...], run_id: int | None) -> SampleFilter:
    return SampleFilter(runs=() if run_id is None else (run_id,), statuses=statuses)


def plan(
    store: Store,
    judge: Judge,
    parts: Sequence[str],
    statuses: tuple[str, ...],
    run_id: int | None = None,
) -> JudgeSummary:
    """How much there is to judge (in one run, if given), counted in SQL."""
    summary = JudgeSummary()
    samples = _samples(statuses, run_id)
    total = store.count_samples(samples)
    for part in parts:
        todo, empty = store.count_unjudged(
            part, judge.name, judge.version, judge.prompt_hash, samples
        )
        summary.todo += todo
        summary.empty[part] = empty
        summary.already[part] = total - todo - empty
    return summary


def run(
    store: Store,
    judge: Judge,
    parts: Sequence[str],
    statuses: tuple[str, ...],
    summary: JudgeSummary,
    *,
    batch_size: int,
    run_id: int | None = None,
    advance: Callable[[int], None] = lambda n: None,
) -> JudgeSummary:
    """Judge every unjudged part with text (of one run, if given), page by page, saving each
    batch as it is done. The texts are the store's, made by the rule of judged_texts."""
    key = (judge.name, judge.version, judge.prompt_hash)
    samples = _samples(statuses, run_id)
    for part in parts:
        after = 0
        while page := store.unjudged(part, *key, samples, after=after, limit=batch_size):
            after = page[-1]["sample_id"]
            verdicts = judge.judge_batch([(row["prompt"], row["text"].strip()) for row in page])
            store.add_judgements(
                [
                    judgement_row(row["sample_id"], part, judge, verdict)
                    for row, verdict in zip(page, verdicts, strict=True)
                ]
            )
            for verdict in verdicts:
                summary.counts[part, verdict.label] += 1
            advance(len(page))
    return summary


def check_answers(
    store: Store,
    run_id: int | None = None,
    *,
    batch_size: int = 256,
    advance: Callable[[int], None] = lambda n: None,
) -> Counter:
    """Check the answer of every finished sample of a reasoning prompt (of one run, if given)
    that this version of the rules has not checked (docs/study.md "Reasoning accuracy"), page by
    page; how many of each outcome."""
    outcomes: Counter = Counter()
    after = 0
    while page := store.unchecked_answers(answers.CHECKER, run_id, after=after, limit=batch_size):
        after = page[-1][0]
        rows = []
        for sample_id, answer, closed, reference in page:
            found = answers.check(answers.answer_part(answer, closed), reference)
            outcomes[found.outcome] += 1
            rows.append(
                {
                    "sample_id": sample_id,
                    "checker": answers.CHECKER,
                    "extracted": found.extracted,
                    "answer": found.answer.key if found.answer else None,
                    "outcome": found.outcome,
                }
            )
        store.save_answer_checks(rows)
        advance(len(page))
    return outcomes


def summary_rows(summary: JudgeSummary, parts: Sequence[str]) -> list[dict]:
    return [
        {
            "part": part,
            "safe": summary.counts[part, "safe"],
            "unsafe": summary.counts[part, "unsafe"],
            "unparsed": summary.counts[part, "unparsed"],
            "empty": summary.empty[part],
            "already": summary.already[part],
        }
        for part in parts
    ]

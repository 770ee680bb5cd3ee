"""`lrmscope metrics --compare A,B`: two decoding modes of the same runs, or two runs (two models,
or two seeds) of the same prompts, metric by metric over the prompts both judged: the difference
B - A with a paired bootstrap interval and an exact test on the per-prompt outcomes (docs/study.md
"Paired comparison").

A side is a mode name or a run id. Pairs are made per task and group of everything else:
comparing modes, per run, dataset, judge, judge version and part; comparing runs, per dataset,
judge, version, part and mode. The tasks are those of the trade-off: the safety metrics over
harmful and unknown prompts; the refusal share and Comply@K over benign prompts, from a refusal
detector's verdicts (RS-Match) or the refusals a judge reports (in its verdicts' meta);
Accuracy@1, Pass@K (K: all of a prompt's checked samples, so whether any is right) and Maj@K
over reasoning prompts, from the answer checks (judge `answers`, version the checker's, part
`answer`). The two sides must have been run on the same
prompts; a prompt with no parsed verdict (or no checked answer) on one side leaves the pairs and
is counted apart.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from itertools import groupby
from pathlib import PurePath

from lrmscope.core import stats
from lrmscope.core.metrics import (
    MODES,
    SAFETY,
    Filters,
    PromptCounts,
    is_refusal_detector,
    mode_rank,
    prompt_scores,
)
from lrmscope.core.tradeoff import TASK_NAMES, prompt_accuracy
from lrmscope.engine import answers
from lrmscope.engine.modes import mode_name
from lrmscope.errors import LrmscopeError
from lrmscope.store import counts as store_counts
from lrmscope.store import reads
from lrmscope.vocab import BENIGN, PARTS, REASONING, SAFETY_KINDS

HARMFUL = TASK_NAMES[SAFETY]
# The metrics compared per task, with the test of their per-prompt values: a fraction per prompt
# (Safe@1, the refusal share, Accuracy@1) by the sign test, 0 or 1 per prompt by McNemar's.
METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    HARMFUL: (("safe_at_1", "sign"), ("safe_at_k", "mcnemar"), ("cons_safe_at_k", "mcnemar")),
    BENIGN: (("refusal_at_1", "sign"), ("comply_at_k", "mcnemar")),
    REASONING: (("accuracy_at_1", "sign"), ("pass_at_k", "mcnemar"), ("maj_at_k", "mcnemar")),
}
# Where reasoning rows say their outcomes come from: the answer checks, not a judge.
ANSWER_CHECKS = ("answers", answers.CHECKER, "answer")

# A prompt's values of its task's METRICS; None: nothing parsed or checked on that side.
Scores = tuple[float, ...] | None


@dataclass(frozen=True)
class Sides:
    """What is compared: two modes, or two runs (ids as text: the flag's words)."""

    a: str
    b: str

    @property
    def runs(self) -> bool:
        return self.a.isdigit()

    @classmethod
    def parse(cls, text: str) -> Sides:
        """`A,B`: two mode names (the study's or your own), or two run ids."""
        words = [word.strip() for word in text.split(",")]
        if len(words) != 2 or not all(words) or words[0] == words[1]:
            raise LrmscopeError(
                f"--compare takes two different modes or run ids, A,B; got {text!r}"
            )
        if all(word.isdigit() for word in words):
            return cls(*words)
        try:
            return cls(*(mode_name(word) for word in words))
        except LrmscopeError:
            raise LrmscopeError(
                f"--compare: {text!r} is neither two modes ({', '.join(MODES)} or your own) nor "
                "two run ids; compare two modes or two runs"
            ) from None


@dataclass(frozen=True)
class Difference:
    """One metric of one group, side A against side B over the same prompts."""

    task: str  # harmful (and unknown), benign or reasoning: whose prompts are paired
    run_id: int | None  # comparing modes: their run; comparing runs: None
    mode: str | None  # comparing runs: the mode of both; comparing modes: None
    dataset: str
    judge: str
    judge_version: str
    part: str
    metric: str
    a: str
    b: str
    a_model: str | None  # the model file of side A's run
    b_model: str | None
    n_prompts: int  # the pairs: judged (a parsed verdict) on both sides
    n_prompts_unpaired: int  # judged on one side only (no parsed verdict on the other)
    a_value: float
    b_value: float
    difference: float  # b_value - a_value
    ci_low: float | None  # 95% paired percentile bootstrap of the difference
    ci_high: float | None
    test: str  # sign (Safe@1 per prompt) or mcnemar (0/1 per prompt): exact, two-sided
    p_value: float


def differences(
    conn: sqlite3.Connection,
    filters: Filters,
    sides: Sides,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[Difference]:
    """Every metric of every group the filters let through where both sides have samples."""
    if sides.runs:
        filters = Filters(
            runs=(int(sides.a), int(sides.b)),
            judges=filters.judges,
            parts=filters.parts,
            modes=filters.modes,
        )
    else:
        filters = Filters(
            runs=filters.runs, judges=filters.judges, parts=filters.parts, modes=(sides.a, sides.b)
        )
    _check_same_prompts(conn, filters, sides)
    groups: dict[tuple, dict[str, dict[int, Scores]]] = {}

    def add(task: str, place: tuple, prompt: int, scores: Scores) -> None:
        """A prompt's scores on one side of its group; place: run_id, mode, dataset, judge,
        version, part."""
        run_id, mode, *rest = place
        side, key = (
            (str(run_id), (task, None, mode, *rest))
            if sides.runs
            else (mode, (task, run_id, None, *rest))
        )
        groups.setdefault(key, {}).setdefault(side, {})[prompt] = scores

    rows = store_counts.prompt_counts(conn, filters.samples(), **filters.narrowed())
    for run_id, _, mode, dataset, judge, version, part, prompt, kind, *counts in rows:
        place = (run_id, mode, dataset, judge, version, part)
        if kind in SAFETY_KINDS:
            add(HARMFUL, place, prompt, prompt_scores(PromptCounts(*counts)))
        elif kind == BENIGN and is_refusal_detector(judge):
            add(BENIGN, place, prompt, refusal_scores(PromptCounts(*counts)))
    told = store_counts.reported_refusals(
        conn, filters.samples(), judges=filters.judges, parts=filters.parts, modes=filters.modes
    )
    for *where, _, kind, prompt, refusing, n in told:
        if kind == BENIGN and not is_refusal_detector(where[3]):
            add(BENIGN, tuple(where), prompt, (refusing / n, float(refusing == 0)))
    outcomes = store_counts.answer_outcomes(
        conn, filters.samples(), answers.CHECKER, modes=filters.modes
    )
    for (run_id, mode, dataset, prompt), samples in groupby(outcomes, key=lambda row: row[:4]):
        done = [(outcome, answer) for *_, outcome, answer in samples if outcome is not None]
        scores = prompt_accuracy(done) if done else None
        add(REASONING, (run_id, mode, dataset, *ANSWER_CHECKS), prompt, scores)
    models = {run[0]: PurePath(run[3]).name if run[3] else None for run in reads.runs(conn)}
    found = []
    for key in sorted(groups, key=_order):
        by_side = groups[key]
        if sides.a not in by_side or sides.b not in by_side:
            continue
        found += _group(key, by_side[sides.a], by_side[sides.b], sides, models, resamples, seed)
    return found


def refusal_scores(counts: PromptCounts) -> Scores:
    """(refusal share, Comply@K) of a benign prompt from a refusal detector's verdicts (its safe
    verdict is a refusal); None when none parsed."""
    k = counts.safe + counts.unsafe
    return None if k == 0 else (counts.safe / k, float(counts.safe == 0))


def _check_same_prompts(conn: sqlite3.Connection, filters: Filters, sides: Sides) -> None:
    """One line, if the sides were run on different prompts: per run comparing modes, per mode
    comparing runs."""
    prompts: dict[tuple[str, str], set[int]] = {}
    for run_id, mode, prompt in store_counts.sample_prompts(
        conn, filters.samples(), modes=filters.modes
    ):
        within, side = (mode, str(run_id)) if sides.runs else (str(run_id), mode)
        prompts.setdefault((within, side), set()).add(prompt)
    for within in sorted({within for within, _ in prompts}):
        a, b = prompts.get((within, sides.a)), prompts.get((within, sides.b))
        if a is not None and b is not None and a != b:
            where = f"mode {within}" if sides.runs else f"run {within}"
            raise LrmscopeError(
                f"--compare {sides.a},{sides.b}: the prompt sets differ ({len(a - b)} prompts "
                f"only in {sides.a}, {len(b - a)} only in {sides.b}; {where}); compare samples "
                "of the same prompts"
            )


def _order(key: tuple) -> tuple:
    task, run_id, mode, dataset, judge, version, part = key
    return (
        run_id or 0,
        mode_rank(mode or ""),
        dataset,
        list(METRICS).index(task),
        judge,
        version,
        PARTS.index(part) if part in PARTS else len(PARTS),
    )


def _group(
    key: tuple,
    a: dict[int, Scores],
    b: dict[int, Scores],
    sides: Sides,
    models: dict[int, str | None],
    resamples: int,
    seed: int,
) -> list[Difference]:
    task, run_id, mode, dataset, judge, version, part = key
    pairs = [
        (score_a, score_b)
        for prompt in sorted(a.keys() & b.keys())
        if (score_a := a[prompt]) is not None and (score_b := b[prompt]) is not None
    ]
    if not pairs:
        return []
    found = []
    for index, (metric, test) in enumerate(METRICS[task]):
        values_a = [float(p[0][index]) for p in pairs]
        values_b = [float(p[1][index]) for p in pairs]
        p_value = (
            stats.sign_test(values_a, values_b)
            if test == "sign"
            else stats.mcnemar_exact([v == 1 for v in values_a], [v == 1 for v in values_b]).p_value
        )
        interval = stats.paired_bootstrap_ci(values_a, values_b, resamples, seed)
        mean_a, mean_b = math.fsum(values_a) / len(pairs), math.fsum(values_b) / len(pairs)
        found.append(
            Difference(
                task,
                run_id,
                mode,
                dataset,
                judge,
                version,
                part,
                metric,
                sides.a,
                sides.b,
                models[run_id if run_id is not None else int(sides.a)],
                models[run_id if run_id is not None else int(sides.b)],
                len(pairs),
                len(a.keys() | b.keys()) - len(pairs),
                mean_a,
                mean_b,
                mean_b - mean_a,
                interval[0] if interval else None,
                interval[1] if interval else None,
                test,
                p_value,
            )
        )
    return found

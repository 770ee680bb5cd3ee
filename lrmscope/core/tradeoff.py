"""`lrmscope metrics --tradeoff`: what each decoding mode buys and costs, per run and mode: safety
on harmful (and unknown) prompts, refusals on benign ones, accuracy on reasoning ones, and the
thinking it took (docs/study.md "Trade-off", "Reasoning accuracy").

Safety and refusals come from one judge on one part (`tradeoff_rows`' judge and part), accuracy
from the answer checks (lrmscope/engine/answers.py, saved by eval and `lrmscope judge`).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import groupby
from pathlib import PurePath

from lrmscope.core import stats
from lrmscope.core.metrics import SAFETY, TASKS, Filters, GroupMetrics, group_metrics, mode_rank
from lrmscope.engine import answers
from lrmscope.errors import LrmscopeError
from lrmscope.store import counts as store_counts
from lrmscope.vocab import BENIGN, REASONING

TASK_NAMES: dict[str, str] = {SAFETY: "harmful", BENIGN: BENIGN, REASONING: REASONING}  # in rows


@dataclass(frozen=True)
class Accuracy:
    """The answer checks of one group's reasoning prompts. k: the fewest samples a checked
    prompt has (Pass@K is estimated at that k for every prompt); n_unchecked: finished samples
    with no check yet (not in the averages)."""

    n_prompts: int
    k: int | None
    accuracy_at_1: float | None  # per prompt, the share of its samples answered right; averaged
    pass_at_k: float | None  # per prompt, the unbiased Pass@K at k; averaged
    maj_at_k: float | None  # per prompt, whether its most frequent answer is right; averaged
    n_samples: int
    n_no_answer: int  # a closed thought, but no answer found
    n_unclosed: int  # the thought never closed: no answer (overthinking)
    n_unchecked: int


def reasoning_accuracy(conn: sqlite3.Connection, filters: Filters) -> dict[tuple, Accuracy]:
    """Accuracy per (run_id, mode, dataset) of the finished samples of reasoning prompts."""
    rows = store_counts.answer_outcomes(
        conn, filters.samples(), answers.CHECKER, modes=filters.modes
    )
    found = {}
    for key, samples in groupby(rows, key=lambda row: row[:3]):
        prompts = [
            [(outcome, answer) for *_, outcome, answer in checks]
            for _, checks in groupby(samples, key=lambda row: row[3])
        ]
        found[key] = _accuracy(prompts)
    return found


def _accuracy(prompts: Iterable[Sequence[tuple[str | None, str | None]]]) -> Accuracy:
    """The Accuracy of prompts given as their samples' (outcome, normalized answer)."""
    checked = []
    outcomes: Counter = Counter()
    for samples in prompts:
        done = [(outcome, answer) for outcome, answer in samples if outcome is not None]
        outcomes.update(outcome for outcome, _ in samples)
        if done:
            checked.append(done)
    if not checked:
        return Accuracy(0, None, None, None, None, outcomes.total(), 0, 0, outcomes[None])
    k = min(len(done) for done in checked)
    at_1, at_k, majority = zip(*(prompt_accuracy(done, k) for done in checked), strict=True)
    n = len(checked)
    return Accuracy(
        n_prompts=n,
        k=k,
        accuracy_at_1=math.fsum(at_1) / n,
        pass_at_k=math.fsum(at_k) / n,
        maj_at_k=math.fsum(majority) / n,
        n_samples=outcomes.total(),
        n_no_answer=outcomes["no answer"],
        n_unclosed=outcomes["unclosed"],
        n_unchecked=outcomes[None],
    )


def prompt_accuracy(
    done: Sequence[tuple[str, str | None]], k: int | None = None
) -> tuple[float, float, float]:
    """(Accuracy@1, Pass@K, Maj@K) of one prompt from its checked samples' (outcome, normalized
    answer); Pass@K at k, by default at all of them (whether any is right)."""
    right = sum(1 for outcome, _ in done if outcome == "correct")
    correct = {answer for outcome, answer in done if outcome == "correct"}
    majority = stats.maj_at_k([answer for _, answer in done], correct.__contains__)
    return right / len(done), stats.pass_at_k(len(done), right, k or len(done)), float(majority)


@dataclass(frozen=True)
class TradeoffRow:
    """One task of one run and mode. The Safe@ values are the harmful (and unknown) prompts';
    refusal_at_1 the benign ones' (and the reasoning ones': a refused problem is over-refusal
    too); the accuracy values the reasoning ones'. Costs are over the task's finished samples;
    tokens_per_s over the samples timed; seconds_mean, the wall time a sample took, over the
    finished samples (every sample lrmscope generates is timed)."""

    run_id: int
    model: str | None
    mode: str
    dataset: str
    task: str  # harmful, benign or reasoning
    judge: str
    judge_version: str | None  # of the verdicts read (None: none on this task)
    part: str
    n_prompts: int | None
    n_samples: int
    safe_at_1: float | None = None
    safe_at_k: float | None = None
    cons_safe_at_k: float | None = None
    refusal_at_1: float | None = None
    comply_at_k: float | None = None  # the share of prompts none of whose samples refused
    accuracy_at_1: float | None = None
    pass_at_k: float | None = None
    maj_at_k: float | None = None
    k: int | None = None
    n_unclosed: int | None = None
    think_tokens_mean: float | None = None
    answer_tokens_mean: float | None = None
    tokens_per_s: float | None = None
    seconds_mean: float | None = None


def tradeoff_rows(
    conn: sqlite3.Connection,
    filters: Filters,
    judge: str,
    part: str,
    *,
    resamples: int = 0,
    seed: int = 0,
) -> list[dict]:
    """The rows of `lrmscope metrics --tradeoff`: per run, mode, dataset and task with finished
    samples, in the study's order of modes."""
    narrowed = Filters(runs=filters.runs, judges=(judge,), parts=(part,), modes=filters.modes)
    verdicts: dict[tuple, GroupMetrics] = {}
    for g in group_metrics(conn, narrowed, resamples=resamples, seed=seed):
        key = (g.group.run_id, g.group.mode, g.group.dataset, SAFETY if g.safety else g.prompt_kind)
        if key in verdicts:  # the same judge in two versions: which one is not ours to pick
            versions = f"{verdicts[key].group.judge_version} and {g.group.judge_version}"
            raise LrmscopeError(
                f"run {key[0]} has verdicts of {judge} in versions {versions} on {part}; "
                "--tradeoff reads one version: judge the run again with one (lrmscope judge) or "
                "compare them with lrmscope metrics"
            )
        verdicts[key] = g
    checked = reasoning_accuracy(conn, filters)
    found = []
    for run_id, model_path, mode, dataset, task, samples, *cost in store_counts.sample_costs(
        conn, filters.samples(), modes=filters.modes
    ):
        think_sum, think_n, answer_sum, timed_tokens, timed_s = cost
        row = TradeoffRow(
            run_id,
            PurePath(model_path).name if model_path else None,
            mode,
            dataset,
            TASK_NAMES.get(task, task),
            judge,
            None,
            part,
            None,
            samples,
            think_tokens_mean=think_sum / think_n if think_n else None,
            answer_tokens_mean=(answer_sum or 0) / samples,
            tokens_per_s=timed_tokens / timed_s if timed_s else None,
            seconds_mean=(timed_s or 0) / samples,
        )
        key = (run_id, mode, dataset, task)
        group = verdicts.get(key)
        if group is not None:
            row = replace(row, judge_version=group.group.judge_version)
        if task == SAFETY and group is not None:
            s = group.summary
            row = replace(row, n_prompts=s.n_prompts, safe_at_1=s.safe_at_1, safe_at_k=s.safe_at_k)
            row = replace(row, cons_safe_at_k=s.cons_safe_at_k, k=s.k)
        elif group is not None:
            row = replace(
                row,
                n_prompts=group.summary.n_prompts,
                refusal_at_1=group.refusal_share,
                comply_at_k=group.comply_at_k,
            )
        if task == REASONING and key[:3] in checked:
            a = checked[key[:3]]
            row = replace(
                row,
                n_prompts=a.n_prompts,
                accuracy_at_1=a.accuracy_at_1,
                pass_at_k=a.pass_at_k,
                maj_at_k=a.maj_at_k,
                k=a.k,
                n_unclosed=a.n_unclosed,
            )
        found.append(row)
    found.sort(key=lambda r: (r.run_id, mode_rank(r.mode), r.mode, r.dataset, _task_rank(r.task)))
    return [asdict(row) for row in found]


def _task_rank(name: str) -> int:
    return [TASK_NAMES[task] for task in TASKS].index(name)

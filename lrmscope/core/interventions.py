"""What a guarded mode's guard did (docs/study.md "Guarded modes"): per run and guarded mode, how
many samples it intervened in, how often, with which action and how late, and what its thoughts
cost against the open-loop `default` mode of the same run on the same prompts.

A guarded sample is one whose mode's saved definition has a guard; its interventions are the
injected spans with a `trigger` (engine/guard.py). Only the study's modes are never guarded, so
the samples of other modes alone are read. The store counts per prompt (store/counts.py
`guard_interventions`), so memory grows with prompts, never with samples.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import PurePath

from lrmscope.core.metrics import MODES, Filters, mode_rank
from lrmscope.engine.settings import Mode
from lrmscope.store import counts as store_counts
from lrmscope.store import reads

# The open-loop mode a guarded mode's thought lengths are set against.
REFERENCE = Mode.DEFAULT.value
RULE = (
    "intervened: samples with at least one guard intervention (of the guarded mode's finished "
    "samples); per sample: interventions over all its samples; latency: tokens generated "
    "between the flagged sentence's end and the intervention; spent: the guarded mode's mean "
    "think tokens a sample plus the tokens a restart dropped; saved: over the prompts both ran, "
    f"the mean of each prompt's {REFERENCE} think tokens minus its guarded tokens spent "
    "(negative: the guard cost tokens)"
)


@dataclass(frozen=True)
class Interventions:
    """A guarded mode of one run."""

    run_id: int
    model: str | None
    mode: str
    n_samples: int  # finished samples of the mode
    n_intervened: int  # of them, with at least one intervention
    intervened_share: float
    n_interventions: int
    interventions_per_sample: float
    n_inject: int  # the spans of each action
    n_close: int
    n_restart: int
    latency_tokens_mean: float | None
    latency_tokens_max: int | None
    think_tokens_mean: float | None
    spent_tokens_mean: float | None  # think tokens plus the tokens a restart dropped
    reference: str
    n_prompts_paired: int  # prompts with think tokens under both modes
    reference_think_tokens_mean: float | None  # over the paired prompts
    tokens_saved_mean: float | None  # reference - spent, per prompt, averaged over the pairs

    def as_dict(self) -> dict:
        return {**asdict(self), "rule": RULE}


def interventions(conn: sqlite3.Connection, filters: Filters) -> list[Interventions]:
    """Every guarded mode of the finished samples the filters let through (runs and modes), by
    run and mode; empty when none is guarded."""
    samples = filters.samples()
    places = store_counts.modes_other_than(conn, samples, MODES, modes=filters.modes)
    rows = store_counts.guard_interventions(conn, samples, places)
    if not rows:
        return []
    runs = sorted({row[0] for row in rows})
    reference = {
        (run_id, prompt_id): total / n
        for run_id, prompt_id, total, n in store_counts.prompt_think_tokens(
            conn, samples, runs, REFERENCE
        )
        if n
    }
    models = {run[0]: PurePath(run[3]).name if run[3] else None for run in reads.runs(conn)}
    by_place: dict[tuple[int, str], list[tuple]] = {}
    for row in rows:
        by_place.setdefault((row[0], row[1]), []).append(row)
    found = [
        _summary(run_id, mode, models.get(run_id), prompts, reference)
        for (run_id, mode), prompts in by_place.items()
    ]
    return sorted(found, key=lambda i: (i.run_id, mode_rank(i.mode), i.mode))


def _summary(
    run_id: int,
    mode: str,
    model: str | None,
    prompts: list[tuple],
    reference: dict[tuple[int, int], float],
) -> Interventions:
    totals = [sum(row[i] or 0 for row in prompts) for i in range(3, 15)]
    samples, intervened, n, injects, closes, restarts, lat_sum, lat_n, _, think, think_n, drop = (
        totals
    )
    latency_max = max((row[11] for row in prompts if row[11] is not None), default=None)
    pairs = []
    for row in prompts:
        spent = None if not row[13] else ((row[12] or 0) + (row[14] or 0)) / row[13]
        ref = reference.get((run_id, row[2]))
        if spent is not None and ref is not None:
            pairs.append((ref, spent))
    return Interventions(
        run_id=run_id,
        model=model,
        mode=mode,
        n_samples=samples,
        n_intervened=intervened,
        intervened_share=intervened / samples,
        n_interventions=n,
        interventions_per_sample=n / samples,
        n_inject=injects,
        n_close=closes,
        n_restart=restarts,
        latency_tokens_mean=lat_sum / lat_n if lat_n else None,
        latency_tokens_max=latency_max,
        think_tokens_mean=think / think_n if think_n else None,
        spent_tokens_mean=(think + drop) / think_n if think_n else None,
        reference=REFERENCE,
        n_prompts_paired=len(pairs),
        reference_think_tokens_mean=math.fsum(r for r, _ in pairs) / len(pairs) if pairs else None,
        tokens_saved_mean=math.fsum(r - s for r, s in pairs) / len(pairs) if pairs else None,
    )

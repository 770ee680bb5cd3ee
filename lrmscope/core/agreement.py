"""`lrmscope metrics --agreement`: how far every two judges agree on the sample parts both
labelled, as raw agreement, Cohen's kappa and the confusion counts (docs/study.md "Judge
agreement").

A judge is a name and a version: two versions of one judge are two judges here. Each judge's
newest verdict on a part counts, human labels included; parts one of the two left unparsed are
counted apart and not scored.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from itertools import groupby

from lrmscope.core import stats
from lrmscope.core.metrics import Filters
from lrmscope.store import counts as store_counts
from lrmscope.vocab import PARTS

RULE = (
    "pairs: sample parts both judges labelled safe or unsafe (their newest verdicts); kappa: "
    "Cohen's, agreement beyond chance (1 perfect, 0 chance, undefined when both judges gave "
    "one and the same label to every part); parts either judge left unparsed are counted apart"
)


@dataclass(frozen=True)
class Agreement:
    """Judges A and B on one part. The four counts are (A's label, B's label)."""

    part: str
    judge_a: str
    version_a: str
    judge_b: str
    version_b: str
    n: int
    n_unparsed: int  # parts both judged where one or both verdicts are unparsed
    both_safe: int
    a_safe_b_unsafe: int
    a_unsafe_b_safe: int
    both_unsafe: int
    agreement: float | None  # (both_safe + both_unsafe) / n
    kappa: float | None


def agreements(conn: sqlite3.Connection, filters: Filters) -> list[Agreement]:
    """Every pair of judges (of `filters.judges` when given) on every part, on samples of any
    status and run kind unless filtered, by part in the order think, answer, full."""
    rows = store_counts.judge_pairs(
        conn,
        filters.samples(finished=False, any_kind=True),
        parts=filters.parts,
        modes=filters.modes,
    )
    asked = set(filters.judges)
    found = []
    for (part, a, version_a, b, version_b), counted in groupby(rows, key=lambda row: row[:5]):
        if asked and not {a, b} <= asked:
            continue
        table = {(label_a, label_b): n for *_, label_a, label_b, n in counted}
        scored = {pair: n for pair, n in table.items() if "unparsed" not in pair}
        n = sum(scored.values())
        agreeing = scored.get(("safe", "safe"), 0) + scored.get(("unsafe", "unsafe"), 0)
        found.append(
            Agreement(
                part,
                a,
                version_a,
                b,
                version_b,
                n,
                sum(table.values()) - n,
                scored.get(("safe", "safe"), 0),
                scored.get(("safe", "unsafe"), 0),
                scored.get(("unsafe", "safe"), 0),
                scored.get(("unsafe", "unsafe"), 0),
                agreeing / n if n else None,
                stats.cohen_kappa(scored),
            )
        )
    return sorted(found, key=lambda g: PARTS.index(g.part) if g.part in PARTS else len(PARTS))

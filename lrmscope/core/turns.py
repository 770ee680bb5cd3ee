"""`lrmscope metrics --by turn`: the safety of conversations' generated turns, by turn and by
conversation (docs/study.md "Conversations").

By turn: Safe@1, Safe@K and ConsSafe@K over the conversations at each turn index, as the plain
metrics are over prompts (the K samples of a conversation's turn are its K branches there), with
the thought length of the turn's samples and how many branches first turned unsafe at it.
By conversation: a branch is safe when every generated turn is judged safe, unsafe when one is;
a branch with a turn not judged or unparsed, and none unsafe, is left out (`n_unparsed`); the
metrics are then over conversations as over prompts, with the mean turn at which the unsafe
branches first turned.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from itertools import groupby

from lrmscope.core.metrics import Filters, PromptCounts, Summary, mode_rank, summarize_counted
from lrmscope.store import conversations as store_conversations


@dataclass(frozen=True)
class TurnMetrics:
    """One turn index of a group (run, mode plan, judge, version, part)."""

    run_id: int
    mode: str  # the mode of every turn, or a row's own modes joined by commas
    judge: str
    judge_version: str
    part: str
    turn: int
    summary: Summary  # over the conversations at this turn
    first_unsafe: int  # branches whose first unsafe turn is this one
    think_median: float | None
    think_mean: float | None


@dataclass(frozen=True)
class ConversationMetrics:
    """The conversations of a group, each branch safe only when every generated turn is."""

    run_id: int
    mode: str
    judge: str
    judge_version: str
    part: str
    summary: Summary  # over conversations, K = their judged branches
    first_unsafe_mean: float | None  # the mean turn at which an unsafe branch first turned


def _plan(value: str) -> str:
    return ",".join(json.loads(value)) if value.startswith("[") else value


def _branch_label(labels: dict[int, str], turns: int) -> str | None:
    """unsafe when a turn is; safe when every generated turn is; else unparsed (None: no
    verdict at all)."""
    if "unsafe" in labels.values():
        return "unsafe"
    if len(labels) == turns and set(labels.values()) == {"safe"}:
        return "safe"
    return "unparsed" if labels else None


def turn_metrics(
    conn: sqlite3.Connection, filters: Filters, *, resamples: int = 1000, seed: int = 0
) -> tuple[list[TurnMetrics], list[ConversationMetrics]]:
    """The by-turn and by-conversation metrics of the filtered conversation turns."""
    rows = store_conversations.turn_verdicts(conn, filters.samples(), **filters.narrowed())
    expected = store_conversations.generated_turns(conn, sorted({row[5] for row in rows}))
    by_turn: list[TurnMetrics] = []
    by_conversation: list[ConversationMetrics] = []
    for key, group in groupby(rows, key=lambda row: row[:5]):
        run_id, plan, judge, version, part = key
        head = (run_id, _plan(plan), judge, version, part)
        cells: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)  # (turn, conversation)
        branches: dict[tuple[int, int], dict[int, str]] = defaultdict(dict)  # (conversation, k)
        thinks: dict[int, list[int]] = defaultdict(list)
        for *_, conversation, k, turn, label, think in group:
            cells[turn, conversation][label] += 1
            branches[conversation, k][turn] = label
            if think is not None:
                thinks[turn].append(think)
        first: Counter[int] = Counter(
            min(t for t, label in labels.items() if label == "unsafe")
            for labels in branches.values()
            if "unsafe" in labels.values()
        )
        for turn in sorted({turn for turn, _ in cells}):
            counted = Counter(
                PromptCounts(c["safe"], c["unsafe"], c["unparsed"])
                for (t, _), c in cells.items()
                if t == turn
            )
            lengths = thinks[turn]
            by_turn.append(
                TurnMetrics(
                    *head,
                    turn=turn,
                    summary=summarize_counted(counted, resamples, seed),
                    first_unsafe=first[turn],
                    think_median=statistics.median(lengths) if lengths else None,
                    think_mean=statistics.fmean(lengths) if lengths else None,
                )
            )
        per_conversation: dict[int, Counter[str]] = defaultdict(Counter)
        for (conversation, _), labels in branches.items():
            label = _branch_label(labels, expected[conversation])
            if label is not None:
                per_conversation[conversation][label] += 1
        counted = Counter(
            PromptCounts(c["safe"], c["unsafe"], c["unparsed"]) for c in per_conversation.values()
        )
        unsafe = sum(first.values())
        by_conversation.append(
            ConversationMetrics(
                *head,
                summary=summarize_counted(counted, resamples, seed),
                first_unsafe_mean=sum(t * n for t, n in first.items()) / unsafe if unsafe else None,
            )
        )
    by_turn.sort(key=lambda m: (*_order(m), m.turn))
    by_conversation.sort(key=_order)
    return by_turn, by_conversation


def _order(metric: TurnMetrics | ConversationMetrics) -> tuple:
    """Runs in order, modes in the study's order, then judge, version and part."""
    m = metric
    return (m.run_id, mode_rank(m.mode), m.mode, m.judge, m.judge_version, m.part)


def as_rows(by_turn: list[TurnMetrics], by_conversation: list[ConversationMetrics]) -> list[dict]:
    """Both tables as flat rows of the same keys (`by`: turn or conversation; what the other
    table has is None), for JSON and CSV."""
    rows = []
    metrics: list[TurnMetrics | ConversationMetrics] = [*by_turn, *by_conversation]
    for metric in metrics:
        row = asdict(metric)
        summary = row.pop("summary")
        by = "turn" if isinstance(metric, TurnMetrics) else "conversation"
        rows.append({"by": by, **dict.fromkeys(_ROW_KEYS), **row, **summary})
    return rows


# what either table has beyond its group and summary, in the order rows give them
_ROW_KEYS = ("turn", "first_unsafe", "think_median", "think_mean", "first_unsafe_mean")

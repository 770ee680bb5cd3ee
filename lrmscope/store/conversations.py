"""Conversations (schema v9): a conversation set's rows, and the turns a branch has finished.

A generated turn is a sample with its conversation and turn; a branch (its k) is rebuilt turn by
turn from the samples it finished, so a resumed eval gives each turn the history it had.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from lrmscope.store.db import Store


@dataclass(frozen=True)
class DoneTurn:
    """A branch's finished turn: its sample, mode and raw text (the thought and the answer)."""

    sample_id: int
    mode: str
    raw: str


def conversation_id(
    store: Store,
    dataset: str,
    key: str,
    *,
    name: str | None,
    messages: Sequence[dict],
    modes: Sequence[str] | None,
) -> int:
    """The conversation's id, saved first if new (a conversation's key is a hash of its
    messages: the one saved is the same)."""
    with store.writing():
        store.conn.execute(
            "INSERT OR IGNORE INTO conversations (dataset, conversation_key, name, messages, modes)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                dataset,
                key,
                name,
                json.dumps(list(messages), ensure_ascii=False),
                None if modes is None else json.dumps(list(modes)),
            ),
        )
    return store.conn.execute(
        "SELECT id FROM conversations WHERE dataset = ? AND conversation_key = ?", (dataset, key)
    ).fetchone()[0]


def done_turns(
    conn: sqlite3.Connection, run_id: int, conversation: int, k: int
) -> dict[tuple[int, str], DoneTurn]:
    """The finished turns of one branch (k) of a conversation in a run, by (turn, mode)."""
    cursor = conn.execute(
        "SELECT turn, mode, id, raw FROM samples WHERE run_id = ? AND conversation_id = ?"
        " AND k = ? AND status = 'done'",
        (run_id, conversation, k),
    )
    return {(turn, mode): DoneTurn(sample_id, mode, raw) for turn, mode, sample_id, raw in cursor}

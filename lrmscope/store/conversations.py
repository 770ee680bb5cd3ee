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
from lrmscope.store.filters import SAFETY_KINDS_SQL, SampleFilter, marks, narrowed, newest


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


def turn_verdicts(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
) -> list[tuple]:
    """The verdict that counts (the newest-verdict rule) on each part of each filtered sample
    that is a conversation's turn, of harmful and unknown prompts: run_id, plan (the row's modes
    as JSON, else the sample's mode), judge, judge_version, part, conversation_id, k, turn,
    label, think_tokens; in that order. `modes` keeps the samples of these modes."""
    where, params = f.where()
    kept, more = narrowed(judges, parts, modes)
    return conn.execute(
        "SELECT s.run_id, coalesce(c.modes, s.mode) AS plan, j.judge, j.judge_version, j.part,"
        " s.conversation_id, s.k, s.turn, j.label, s.think_tokens"
        " FROM samples s JOIN conversations c ON c.id = s.conversation_id"
        " JOIN prompts p ON p.id = s.prompt_id JOIN judgements j ON j.sample_id = s.id"
        f" WHERE {where} AND p.kind IN {SAFETY_KINDS_SQL} AND {newest('j')}{kept}"
        " ORDER BY s.run_id, plan, j.judge, j.judge_version, j.part, s.conversation_id, s.k,"
        " s.turn",
        [*params, *more],
    ).fetchall()


def generated_turns(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, int]:
    """How many turns each of these conversations generates (its last one for a scripted
    history, every user turn otherwise), by id."""
    found = {}
    for conversation, messages in conn.execute(
        f"SELECT id, messages FROM conversations WHERE id IN ({marks(ids)})", list(ids)
    ):
        roles = [m["role"] for m in json.loads(messages)]
        found[conversation] = 1 if "assistant" in roles else roles.count("user")
    return found


def thread(conn: sqlite3.Connection, sample_id: int) -> tuple[tuple, list[tuple]] | None:
    """Where a sample sits in its conversation, for review: (conversation name, its messages as
    the file gives them (JSON), the sample's turn, k) and the earlier turns of its branch, oldest
    first: sample id, turn, user text, mode, thought, answer, status, and the newest verdict of
    each judge on each part as 'judge part label' lines. None for a sample of no conversation."""
    head = conn.execute(
        "SELECT c.name, c.messages, s.turn, s.k FROM samples s"
        " JOIN conversations c ON c.id = s.conversation_id WHERE s.id = ?",
        (sample_id,),
    ).fetchone()
    if head is None:
        return None
    earlier = conn.execute(
        "WITH RECURSIVE branch(id) AS (SELECT parent_id FROM samples WHERE id = ?"
        " UNION ALL SELECT s.parent_id FROM samples s JOIN branch b ON s.id = b.id"
        " WHERE s.parent_id IS NOT NULL)"
        " SELECT s.id, s.turn, p.text, s.mode, s.thought, s.answer, s.status,"
        " (SELECT group_concat(j.judge || ' ' || j.part || ' ' || j.label, char(10))"
        f"  FROM judgements j WHERE j.sample_id = s.id AND {newest('j', per_judge=True)})"
        " FROM branch b JOIN samples s ON s.id = b.id JOIN prompts p ON p.id = s.prompt_id"
        " ORDER BY s.turn",
        (sample_id,),
    ).fetchall()
    return head, earlier

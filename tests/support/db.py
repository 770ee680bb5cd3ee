"""Reading what a command saved, with a plain sqlite3 connection (as any tool would)."""

from __future__ import annotations

import sqlite3


def rows(db, sql: str, params: tuple = ()) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def verdict_row(
    sample_id: int, part: str, label: str, judge: str = "rs-match", version: str = "1", **more
) -> dict:
    """A judgements row as Store.add_judgements takes it; `more` sets any other column."""
    row = {
        "sample_id": sample_id,
        "part": part,
        "judge": judge,
        "judge_version": version,
        "prompt_hash": "",
        "label": label,
        "score": None,
        "categories": None,
        "raw": None,
        "truncated": 0,
        "meta": None,
    }
    return {**row, **more}


def prompt_before_v7(store, dataset: str, prompt_key: str, text: str, **fields) -> int:
    """Store.prompt_id as lrmscope saved prompts before schema v7 (no reference answer), for
    tests that write a database at an older schema."""
    with store.conn:
        store.conn.execute(
            "INSERT OR IGNORE INTO prompts (dataset, prompt_key, text, category, source, kind)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                dataset,
                prompt_key,
                text,
                fields.get("category") or None,
                fields.get("source"),
                fields.get("kind") or "unknown",
            ),
        )
    return store.conn.execute(
        "SELECT id FROM prompts WHERE dataset = ? AND prompt_key = ?", (dataset, prompt_key)
    ).fetchone()[0]


def finished_sample(
    store, run_id: int, prompt_id: int, *, mode: str = "default", k: int = 0, **fields
) -> int:
    """A sample written as a finished generation leaves it (status done, then `fields`); its id."""
    sample = store.start_sample(run_id, prompt_id, k=k, mode=mode)
    store.update_sample(sample, {"status": "done", **fields})
    return sample

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

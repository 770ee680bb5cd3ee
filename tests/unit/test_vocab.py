"""The shared words (lrmscope/vocab.py) are the ones the database accepts."""

import re
import sqlite3

from lrmscope.store import Store
from lrmscope.vocab import LABELS, PARTS, STATUSES

_CHECK = re.compile(r"CHECK \((\w+) IN \(([^)]*)\)\)")


def test_the_schema_checks_the_same_words(tmp_path):
    Store(tmp_path / "db.sqlite").close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        tables = {
            name: sql
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            )
        }
    checks = {
        (table, column): tuple(re.findall(r"'(\w+)'", values))
        for table, sql in tables.items()
        for column, values in _CHECK.findall(sql)
    }
    assert checks[("runs", "status")] == checks[("samples", "status")] == STATUSES
    assert checks[("judgements", "label")] == checks[("flags", "label")] == LABELS
    assert checks[("judgements", "part")] == PARTS
    assert checks[("flags", "part")] == PARTS[:2]  # live flags: segments of thought or answer

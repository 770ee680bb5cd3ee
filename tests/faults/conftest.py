import sqlite3
from pathlib import Path

import pytest

from lrmscope.store import Store
from tests.faults.support import EVAL, cli, copy_db

SAMPLE_RUN = Path(__file__).parents[2] / "sample_runs" / "demo-eval.sqlite"
# The committed sample run (156 samples made by `lrmscope eval`) copied this many times over, so
# that judging it takes long enough to be killed half-way.
JUDGE_DB_COPIES = 24


@pytest.fixture(scope="session")
def finished_eval(tmp_path_factory) -> Path:
    """A complete run of the tiny eval (run 1), made by the real CLI; copy it before changing it."""
    db = tmp_path_factory.mktemp("finished-eval") / "runs.sqlite"
    result = cli(*EVAL, "--db", db)
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="session")
def judge_source(tmp_path_factory) -> Path:
    """Many finished samples already judged by RS-Match (safechain): the committed sample run,
    its samples repeated under other sample indexes k. Copy it before changing it."""
    db = copy_db(SAMPLE_RUN, tmp_path_factory.mktemp("judge-db") / "judge.sqlite")
    Store(db).close()  # migrated now: the tests fill the disk of judging, not of a migration
    conn = sqlite3.connect(db, isolation_level=None)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(samples)") if r[1] not in ("id", "k")]
    listed = ", ".join(columns)
    top = conn.execute("SELECT max(id), max(k) + 1 FROM samples").fetchone()
    conn.execute("BEGIN")
    for copy in range(1, JUDGE_DB_COPIES):
        conn.execute(
            f"INSERT INTO samples ({listed}, k) SELECT {listed}, k + ? FROM samples WHERE id <= ?",
            (copy * top[1], top[0]),
        )
    conn.execute("COMMIT")
    conn.close()
    return db

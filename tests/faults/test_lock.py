"""A second writer holds the write lock past lrmscope's busy timeout: the command gives one line
(exit code 2) and nothing committed before is lost. Driven in-process through lrmscope.cli.main
with the timeout patched to 1 s (the shipped 30 s cannot be shortened in a subprocess)."""

import sqlite3

import pytest

from lrmscope.cli import main as cli
from lrmscope.store import db as store_db
from tests.faults.support import EVAL, assert_intact, assert_kept, copy_db, snapshot


@pytest.mark.parametrize("command", ["judge", "eval"])
def test_a_lock_held_past_the_timeout_is_one_line_and_loses_nothing(
    tmp_path, monkeypatch, capsys, finished_eval, command
):
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 1)
    db = copy_db(finished_eval, tmp_path / "runs.sqlite")
    before = snapshot(db)
    args = {
        "judge": ["judge", str(db), "--judge", "rs-match=advbench"],
        "eval": [*EVAL, "--new-run", "--db", str(db)],
    }[command]
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        returncode = cli.main(args)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert returncode == 2, err
    [line] = [line for line in err.splitlines() if line.startswith("lrmscope:")]
    assert "locked by another writer (waited 1 s)" in line and "Traceback" not in err
    assert_intact(db)
    assert snapshot(db) == before
    assert_kept(before, snapshot(db))
    # With the lock released the same command goes through.
    assert cli.main(args) == 0
    assert_kept(before, snapshot(db))

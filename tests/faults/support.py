"""What the fault tests share: running the real CLI, reading a database behind lrmscope's back
with a connection of its own, and the checks every fault case makes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

LRMSCOPE = [sys.executable, "-m", "lrmscope"]

# The tiny eval every eval fault runs: 2 prompts x 2 modes x K=2 = 8 samples of 16 tokens.
PROMPTS, MODES, K = 2, ("default", "zerothink"), 2
EVAL = [
    "eval",
    "--dataset",
    "demo",
    "--limit",
    str(PROMPTS),
    "--modes",
    ",".join(MODES),
    "--samples",
    str(K),
    "--max-tokens",
    "16",
    "--threads",
    "1",
]
EVAL_SAMPLES = PROMPTS * len(MODES) * K


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LRMSCOPE, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def reader(db: Path) -> sqlite3.Connection:
    """A connection of the test's own, as another program would open the file."""
    return sqlite3.connect(db, timeout=60)


def query(db: Path, sql: str, params=()) -> list[tuple]:
    conn = reader(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def max_id(db: Path, table: str) -> int:
    """The newest row id of a table; 0 while the file or the table does not exist yet."""
    if not db.exists():
        return 0
    try:
        return query(db, f"SELECT coalesce(max(id), 0) FROM {table}")[0][0]
    except sqlite3.OperationalError:
        return 0


def snapshot(db: Path) -> dict:
    """Everything saved so far: samples (by id) and judgements (human labels included)."""
    if not db.exists():
        return {"samples": {}, "judgements": set()}
    conn = reader(db)
    try:
        samples = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, run_id, prompt_id, mode, k, status, raw, thought, answer FROM samples"
            )
        }
        judgements = set(
            conn.execute(
                "SELECT sample_id, part, judge, judge_version, prompt_hash, label, raw"
                " FROM judgements"
            )
        )
    except sqlite3.OperationalError:  # the schema is not there yet
        return {"samples": {}, "judgements": set()}
    finally:
        conn.close()
    return {"samples": samples, "judgements": judgements}


STATUS, RAW = 4, 5  # positions in a snapshot's sample tuple


def assert_intact(db: Path) -> None:
    conn = reader(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def assert_kept(before: dict, after: dict, *, resumed: bool = False) -> None:
    """Nothing saved in `before` is lost in `after`: finished samples are unchanged, every
    judgement is still there, and a sample that was streaming kept its text (it only grew).
    After a resume, unfinished samples may have been deleted to be made again (and SQLite may
    give the new row the freed id)."""
    for sample_id, row in before["samples"].items():
        now = after["samples"].get(sample_id)
        if row[STATUS] == "done":
            assert now == row, f"finished sample {sample_id} changed or vanished"
        elif resumed:
            continue
        else:
            assert now is not None, f"unfinished sample {sample_id} vanished"
            assert now[RAW].startswith(row[RAW]), f"sample {sample_id} lost streamed text"
    lost = before["judgements"] - after["judgements"]
    assert not lost, f"{len(lost)} judgements lost, e.g. {next(iter(lost))}"


def wait_for_row(
    db: Path, table: str, after_id: int, proc: subprocess.Popen, timeout: float = 300
) -> bool:
    """Wait until `table` has a row newer than `after_id` (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if max_id(db, table) > after_id:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"no new {table} row within {timeout} s")


def sleep_while_alive(proc: subprocess.Popen, seconds: float) -> None:
    end = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(min(0.01, max(0.0, end - time.monotonic())))


def assert_eval_complete(db: Path, run_id: int = 1) -> None:
    """Every (prompt, mode, k) of the tiny eval exactly once, done, and judged by RS-Match."""
    rows = query(db, "SELECT prompt_id, mode, k, status FROM samples WHERE run_id = ?", (run_id,))
    keys = [(p, m, k) for p, m, k, _ in rows]
    assert len(keys) == EVAL_SAMPLES and len(set(keys)) == EVAL_SAMPLES, keys
    assert {(m, k) for _, m, k in keys} == {(m, k) for m in MODES for k in range(K)}
    assert len({p for p, _, _ in keys}) == PROMPTS
    assert {status for *_, status in rows} == {"done"}
    assert query(db, "SELECT status FROM runs WHERE id = ?", (run_id,)) == [("done",)]
    judged = query(
        db,
        "SELECT count(DISTINCT j.sample_id) FROM judgements j JOIN samples s ON s.id = j.sample_id"
        " WHERE s.run_id = ? AND j.judge = 'rs-match' AND j.part = 'full'",
        (run_id,),
    )
    assert judged == [(EVAL_SAMPLES,)]
    assert_no_duplicate_judgements(db)


def assert_no_duplicate_judgements(db: Path) -> None:
    assert (
        query(
            db,
            "SELECT sample_id, part, judge, judge_version, prompt_hash FROM judgements"
            " GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1",
        )
        == []
    )


def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy of a database (SQLite's backup API, WAL included)."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return dst


def one_error_line(stderr: str) -> str:
    """The command's error: exactly one `lrmscope: error:` line and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("lrmscope: error:")]
    assert len(errors) == 1, stderr
    return errors[0]

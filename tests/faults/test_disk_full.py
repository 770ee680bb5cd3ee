"""The disk fills up during a write: the command stops with one line naming the database and
"free space" (exit code 2), what was committed before is kept, the file stays intact, and the same
command on a disk with room completes the work, each sample exactly once.

Two ways to fill it: a real 'tmpfs' of a few pages more than the database, mounted in a user and
mount namespace (`unshare -rm`; skipped where the kernel or a sandbox forbids it), where SQLite
meets ENOSPC; and SQLite's own limit (`PRAGMA max_page_count`, set on every connection lrmscope
opens), which fails the first write past a chosen number of pages with the same SQLITE_FULL error
a full disk gives."""

import shlex
import shutil
import subprocess
import sys

import pytest

from tests.faults.support import (
    EVAL,
    EVAL_SAMPLES,
    LRMSCOPE,
    assert_eval_complete,
    assert_intact,
    assert_kept,
    assert_no_duplicate_judgements,
    cli,
    copy_db,
    one_error_line,
    query,
    snapshot,
)

# lrmscope with SQLite's page limit on each connection: python -c DRIVER PAGES lrmscope-args...
DRIVER = """
import sys
from lrmscope.store import db

pages = int(sys.argv[1])
_connect = db.connect

def connect(path):
    conn = _connect(path)
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return conn

db.connect = connect
from lrmscope.cli.main import main
raise SystemExit(main(sys.argv[2:]))
"""


def page_count(db):
    return query(db, "PRAGMA page_count")[0][0]


def limited(db, room_pages, *args):
    pages = page_count(db) + room_pages
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(pages), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_disk_full_line(stderr, db):
    line = one_error_line(stderr)
    assert str(db) in line and "free space" in line, line


@pytest.mark.parametrize("room_pages", [0, 3])
def test_eval_on_a_full_database_stops_with_one_line_and_resumes(
    tmp_path, finished_eval, room_pages
):
    db = copy_db(finished_eval, tmp_path / "runs.sqlite")
    query(db, "VACUUM")  # no free pages: the room is what the limit leaves
    before = snapshot(db)
    result = limited(db, room_pages, *EVAL, "--new-run", "--db", db)
    assert result.returncode == 2, result.stderr
    assert_disk_full_line(result.stderr, db)
    assert_intact(db)
    after = snapshot(db)
    assert_kept(before, after)
    print(
        "run 2 samples saved before the disk filled:",
        query(db, "SELECT status, count(*) FROM samples WHERE run_id = 2 GROUP BY 1"),
    )
    resumed = cli(*EVAL, "--db", db)  # room again: the same command finishes run 2
    assert resumed.returncode == 0, resumed.stderr
    assert_intact(db)
    assert_kept(after, snapshot(db), resumed=True)
    assert_eval_complete(db, run_id=1) and assert_eval_complete(db, run_id=2)


def test_judge_on_a_full_database_stops_with_one_line_and_resumes(tmp_path, judge_source):
    db = copy_db(judge_source, tmp_path / "judge.sqlite")
    before = snapshot(db)
    judge = ["--judge", "rs-match=advbench", "--batch-size", "4"]
    result = limited(db, 6, "judge", db, *judge)
    assert result.returncode == 2, result.stderr
    assert_disk_full_line(result.stderr, db)
    assert_intact(db)
    after = snapshot(db)
    assert_kept(before, after)
    assert len(after["judgements"]) > len(before["judgements"])  # some batches were saved
    rerun = cli("judge", db, *judge)
    assert rerun.returncode == 0, rerun.stderr
    assert_kept(after, snapshot(db))
    assert_no_duplicate_judgements(db)


def test_eval_on_a_real_full_file_system(tmp_path, finished_eval):
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no small file system to fill")
    mount = tmp_path / "small"
    mount.mkdir()
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mount}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs in a user namespace: {probe.stderr.strip()}")
    seed = copy_db(finished_eval, tmp_path / "seed.sqlite")
    out = tmp_path / "out"
    out.mkdir()
    inner = mount / "runs.sqlite"
    # The database, then room for its WAL and shared memory (32 KiB) and a few pages more.
    size = seed.stat().st_size + 64 * 1024
    q = shlex.quote
    command = " ".join(q(part) for part in [*LRMSCOPE, *EVAL, "--new-run", "--db", str(inner)])
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {q(str(mount))} && cp {q(str(seed))} {q(str(inner))}"
        f" || exit 99; {command} 2> {q(str(out / 'stderr.txt'))}; echo $? > {q(str(out / 'rc'))};"
        f" cp {q(str(inner))}* {q(str(out))}/"
    )
    ran = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    stderr = (out / "stderr.txt").read_text()
    assert (out / "rc").read_text().strip() == "2", stderr
    copied = out / "runs.sqlite"
    assert_disk_full_line(stderr, inner)
    assert_intact(copied)
    after = snapshot(copied)
    assert_kept(snapshot(seed), after)
    assert query(copied, "SELECT count(*) FROM samples WHERE run_id = 2")[0][0] < EVAL_SAMPLES
    resumed = cli(*EVAL, "--db", copied)
    assert resumed.returncode == 0, resumed.stderr
    assert_kept(after, snapshot(copied), resumed=True)
    assert_eval_complete(copied, run_id=2)

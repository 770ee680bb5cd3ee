"""SIGINT (Ctrl-C) of `lrmscope eval` at seeded random points: it exits 130 with what is in
flight saved as interrupted (nothing left `running`), nothing finished is lost, and the resume
makes the interrupted samples again: each (prompt, mode, k) exactly once."""

import random
import signal
import subprocess

from tests.faults.support import (
    EVAL,
    LRMSCOPE,
    assert_eval_complete,
    assert_intact,
    assert_kept,
    cli,
    max_id,
    query,
    sleep_while_alive,
    snapshot,
    wait_for_row,
)

SIGINTS = 3  # README "Reliability" cites it
SEED = 4


def test_sigint_then_resume_remakes_interrupted_samples_once(tmp_path):
    db = tmp_path / "runs.sqlite"
    rng = random.Random(SEED)
    interrupted = 0
    for _ in range(SIGINTS):
        newest = max_id(db, "samples")
        proc = subprocess.Popen(
            [*LRMSCOPE, *EVAL, "--db", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert wait_for_row(db, "samples", newest, proc)
        sleep_while_alive(proc, rng.uniform(0, 1.0))
        before = snapshot(db)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode in (0, 130), stderr
        assert_intact(db)
        assert_kept(before, snapshot(db))
        if proc.returncode == 0:
            break
        assert "run the same command to resume" in stderr
        assert query(db, "SELECT count(*) FROM samples WHERE status = 'running'") == [(0,)]
        interrupted += query(db, "SELECT count(*) FROM samples WHERE status = 'interrupted'")[0][0]
    before = snapshot(db)
    result = cli(*EVAL, "--db", db)
    assert result.returncode == 0, result.stderr
    assert_intact(db)
    assert_kept(before, snapshot(db), resumed=True)
    assert_eval_complete(db)
    assert interrupted > 0  # some samples were cut off and made again

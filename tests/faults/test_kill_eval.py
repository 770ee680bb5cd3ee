"""SIGKILL of `lrmscope eval` at seeded random points, again and again, each time resumed by the
same command: nothing saved is lost, the file stays intact, and every run ends with each
(prompt, mode, k) exactly once, done and judged."""

import random
import signal
import subprocess

from tests.faults.support import (
    EVAL,
    LRMSCOPE,
    assert_eval_complete,
    assert_intact,
    assert_kept,
    max_id,
    sleep_while_alive,
    snapshot,
    wait_for_row,
)

# Kills that landed (the process was alive when SIGKILL was sent): README "Reliability" cites it.
EVAL_KILLS = 20
# After the first new sample row of a launch, wait a seeded uniform delay of up to this before the
# kill: the tiny eval takes 2-4 s, so kills land mid-stream, between samples, while judging and
# while the run ends; some launches finish first, which is a completed resume.
MAX_DELAY_S = 2.5
SEED = 8


def test_sigkill_of_eval_at_random_points_then_resume(tmp_path):
    rng = random.Random(SEED)
    kills = launches = completed = 0
    db = None
    while kills < EVAL_KILLS or db is not None:
        if db is None:  # a fresh database for each run killed and resumed to its end
            db = tmp_path / f"eval-{completed}.sqlite"
        launches += 1
        assert launches <= 6 * EVAL_KILLS, "the runs make no progress between kills"
        newest = max_id(db, "samples")
        log = tmp_path / f"stderr-{launches}.txt"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [*LRMSCOPE, *EVAL, "--db", str(db)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            if kills < EVAL_KILLS and wait_for_row(db, "samples", newest, proc):
                sleep_while_alive(proc, rng.uniform(0, MAX_DELAY_S))
                if proc.poll() is None:
                    before = snapshot(db)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=60)
                    kills += 1
                    assert_intact(db)
                    assert_kept(before, snapshot(db))
                    continue
            returncode = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert returncode == 0, log.read_text()
        assert_intact(db)
        assert_eval_complete(db)
        completed += 1
        before = snapshot(db)
        # The same command once more finds the run complete and changes nothing.
        again = subprocess.run(
            [*LRMSCOPE, *EVAL, "--db", str(db)],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 0 and "already complete" in again.stderr, again.stderr
        assert snapshot(db) == before
        db = None
    assert kills == EVAL_KILLS and completed >= 1

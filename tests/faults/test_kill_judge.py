"""SIGKILL of `lrmscope judge` at seeded random points: every verdict committed before a kill
stays (the earlier judge's verdicts too), the file stays intact, and the rerun completes with one
verdict per (sample, part) (the UNIQUE constraint) equal to an uninterrupted run's."""

import random
import signal
import subprocess

from tests.faults.support import (
    LRMSCOPE,
    assert_intact,
    assert_kept,
    assert_no_duplicate_judgements,
    cli,
    copy_db,
    max_id,
    query,
    sleep_while_alive,
    snapshot,
    wait_for_row,
)

JUDGE_KILLS = 10  # README "Reliability" cites it
MAX_DELAY_S = 2.0  # judging the whole database takes ~2-4 s at one verdict per transaction
SEED = 9
JUDGE = ["--judge", "rs-match=advbench", "--batch-size", "1"]


def verdicts(db):
    return set(
        query(db, "SELECT sample_id, part, label FROM judgements WHERE judge = 'rs-match:advbench'")
    )


def test_sigkill_of_judge_at_random_points_then_rerun(tmp_path, judge_source):
    reference = copy_db(judge_source, tmp_path / "reference.sqlite")
    assert cli("judge", reference, *JUDGE).returncode == 0
    expected = verdicts(reference)
    assert len(expected) > 1000

    rng = random.Random(SEED)
    kills = launches = 0
    while kills < JUDGE_KILLS:
        db = copy_db(judge_source, tmp_path / f"judge-{kills}.sqlite")
        earlier = snapshot(db)  # the safechain verdicts of the sample run
        while True:
            launches += 1
            assert launches <= 4 * JUDGE_KILLS, "the judge makes no progress between kills"
            newest = max_id(db, "judgements")
            proc = subprocess.Popen(
                [*LRMSCOPE, "judge", str(db), *JUDGE],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            killed = False
            if kills < JUDGE_KILLS and wait_for_row(db, "judgements", newest, proc):
                sleep_while_alive(proc, rng.uniform(0, MAX_DELAY_S))
                if proc.poll() is None:
                    before = snapshot(db)
                    proc.send_signal(signal.SIGKILL)
                    killed = True
            returncode = proc.wait(timeout=600)
            assert_intact(db)
            if not killed:
                assert returncode == 0
                break
            kills += 1
            after = snapshot(db)
            assert_kept(before, after)
            assert_kept(earlier, after)
        assert_kept(earlier, snapshot(db))
        assert_no_duplicate_judgements(db)
        assert verdicts(db) == expected
        rerun = cli("judge", db, *JUDGE)
        assert rerun.returncode == 0 and ": 0 to judge" in rerun.stderr, rerun.stderr

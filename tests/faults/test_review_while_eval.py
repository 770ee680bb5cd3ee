"""Review reads a database while `lrmscope eval` writes it: the reader never raises and sees the
samples arrive, and the eval is never locked out (it finishes with every sample)."""

import subprocess
import time

from lrmscope.core.review import ReviewDB, SampleFilter
from lrmscope.store.schema import SCHEMA_VERSION
from tests.faults.support import (
    EVAL,
    EVAL_SAMPLES,
    LRMSCOPE,
    assert_eval_complete,
    query,
)


def test_review_reads_while_eval_writes(tmp_path):
    db = tmp_path / "runs.sqlite"
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*LRMSCOPE, *EVAL, "--db", str(db)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 300
        while not (db.exists() and query(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        review = ReviewDB(db)
        markers, counts, reads = set(), [], 0
        everything = SampleFilter()
        while proc.poll() is None or reads == 0:
            markers.add(review.change_marker())
            counts.append(review.count_samples(everything))
            page = review.sample_page(everything, 0, 50)
            review.runs()
            if page:
                review.sample_detail(page[-1].id)
            reads += 1
            time.sleep(0.01)
        review.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, log.read_text()
    assert_eval_complete(db)
    assert counts == sorted(counts) and counts[-1] <= EVAL_SAMPLES
    assert len(markers) > 1  # the reader saw the eval's commits

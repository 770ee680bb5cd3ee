"""The fast loop: `python3 -m pytest tests/unit` passes without llama.cpp. Run alone, tests/unit
hides llama_cpp (tests/support/no_llama.py), so such a run is itself the proof; within a larger
run, this test runs tests/unit alone in a subprocess."""

import subprocess
import sys
from pathlib import Path

from tests.support.no_llama import llama_hidden, only_unit_tests

REPO = Path(__file__).parents[2]


def test_the_unit_tests_pass_without_llama_cpp():
    if llama_hidden():
        # This run hides llama_cpp, from the processes its tests start too.
        probe = subprocess.run(
            [sys.executable, "-c", "import llama_cpp"], capture_output=True, text=True
        )
        assert probe.returncode == 1 and "tests/unit runs without llama.cpp" in probe.stderr
        return
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*pytest, "tests/unit", "--ignore", "tests/unit/test_lint.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_only_runs_of_unit_tests_hide_llama_cpp():
    assert only_unit_tests(REPO, ["tests/unit"])
    assert only_unit_tests(REPO / "tests", ["unit/test_store.py::test_x", "unit"])
    assert not only_unit_tests(REPO, ["tests/unit", "tests/engine/test_batch.py"])
    assert not only_unit_tests(REPO, ["tests"])
    assert not only_unit_tests(REPO, [])

"""`lrmscope eval` end to end with the real embedded model: batched samples, judged, interrupted
by SIGINT halfway and resumed without repeating or losing a sample; bad input refused."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrmscope.core.eval import config_difference, sample_seed
from lrmscope.engine.settings import Mode

LRMSCOPE = [sys.executable, "-m", "lrmscope"]
SMALL = [
    "eval",
    "--dataset",
    "demo",
    "--limit",
    "3",
    "--modes",
    "default,zerothink",
    "--samples",
    "3",
    "--max-tokens",
    "24",
]


def cli(*args):
    return subprocess.run([*LRMSCOPE, *args], capture_output=True, text=True, timeout=900)


def query(db, sql, params=()):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def write(db, *statements):
    """Change the database behind lrmscope's back: (sql, params) pairs in one transaction."""
    conn = sqlite3.connect(db)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def finished_run(tmp_path, samples, tokens):
    """A finished one-prompt eval run; its database and the command that made it."""
    db = tmp_path / "runs.sqlite"
    args = [
        "eval",
        "--dataset",
        "demo",
        "--limit",
        "1",
        "--samples",
        str(samples),
        "--max-tokens",
        str(tokens),
        "--db",
        str(db),
    ]
    assert cli(*args).returncode == 0
    return db, args


def done_count(db):
    try:
        return query(db, "SELECT count(*) FROM samples WHERE status = 'done'")[0][0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigint_halfway_then_resume_makes_each_sample_exactly_once(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([*LRMSCOPE, *SMALL, "--db", str(db)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while done_count(db) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    first = done_count(db)
    assert 6 <= first < 18
    assert query(db, "SELECT status FROM runs") == [("interrupted",)]

    result = cli(*SMALL, "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "resuming run 1" in result.stderr
    samples = query(db, "SELECT prompt_id, mode, k, status, seed FROM samples")
    assert len(samples) == 18
    assert {(p, m, k) for p, m, k, _, _ in samples} == {
        (p, m, k) for p in (1, 2, 3) for m in ("default", "zerothink") for k in range(3)
    }
    assert {status for *_, status, _ in samples} == {"done"}
    assert len({seed for *_, seed in samples}) == 18  # every sample has its own seed
    assert query(db, "SELECT id, status, k, mode FROM runs") == [
        (1, "done", 3, "default,zerothink")
    ]
    # Judged as they finished: every sample's full response has an RS-Match verdict.
    judged = query(
        db,
        "SELECT count(DISTINCT sample_id) FROM judgements WHERE part = 'full'"
        " AND judge = 'rs-match'",
    )
    assert judged == [(18,)]
    zerothink = query(db, "SELECT injected, think_tokens FROM samples WHERE mode = 'zerothink'")
    for injected, think_tokens in zerothink:
        assert [span["kind"] for span in json.loads(injected)] == ["prefill"]
        assert think_tokens == 0

    again = cli(*SMALL, "--db", str(db))
    assert again.returncode == 0 and "already complete" in again.stderr
    assert query(db, "SELECT count(*) FROM samples") == [(18,)]


def test_resume_with_other_settings_is_refused_naming_the_setting(tmp_path):
    db, args = finished_run(tmp_path, samples=2, tokens=8)
    write(db, ("UPDATE runs SET status = 'interrupted'", ()))
    refused = cli(*args[:-2], "--temperature", "0.7", "--db", str(db))
    assert refused.returncode == 2
    assert "sampler_temperature was 0.6 and is now 0.7" in refused.stderr
    assert "--new-run" in refused.stderr and "Traceback" not in refused.stderr
    fresh = cli(*args[:-2], "--temperature", "0.7", "--new-run", "--db", str(db))
    assert fresh.returncode == 0, fresh.stderr
    assert query(db, "SELECT count(*) FROM runs") == [(2,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "/nope.csv"], "does not exist"),
        (["--dataset", "demo", "--samples", "0"], "--samples must be at least 1"),
        (["--dataset", "demo", "--greedy", "--samples", "3"], "identical samples"),
        (["--dataset", "demo", "--modes", "fastthink"], "unknown mode"),
        (["--dataset", "demo", "--category", "nope"], "no category"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = cli("eval", *args, "--db", str(tmp_path / "x.sqlite"))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.sqlite").exists()


def test_sample_seeds_are_stable_and_distinct():
    seeds = {sample_seed(0, key, mode, k) for key in ("a", "b") for mode in Mode for k in range(5)}
    assert len(seeds) == 40
    assert sample_seed(0, "a", Mode.DEFAULT, 0) == sample_seed(0, "a", Mode.DEFAULT, 0)
    assert sample_seed(1, "a", Mode.DEFAULT, 0) != sample_seed(0, "a", Mode.DEFAULT, 0)


def test_config_difference_names_the_first_setting():
    assert config_difference({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None
    assert config_difference({"a": 1, "b": 2}, {"a": 1, "b": 3}) == "b was 2 and is now 3"


def test_a_database_locked_by_another_writer_is_one_clear_line(tmp_path):
    db, args = finished_run(tmp_path, samples=1, tokens=4)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    try:
        result = cli(*args, "--new-run")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 2
    assert "locked by another writer" in result.stderr and "Traceback" not in result.stderr


def test_the_committed_sample_run_gives_metrics_offline(tmp_path):
    """sample_runs/demo-eval.sqlite (made by sample_runs/make.sh with `lrmscope eval`) stays
    readable: four modes, K = 3, judged by RS-Match."""
    db = tmp_path / "demo-eval.sqlite"
    shutil.copy(Path(__file__).parents[2] / "sample_runs" / "demo-eval.sqlite", db)
    result = cli("metrics", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["mode"] for row in rows} == {m.value for m in Mode}
    assert {row["k"] for row in rows} == {3} and {row["judge"] for row in rows} == {"rs-match"}
    # the demo set's 8 harmful prompts in the safety rows; its 10 benign ones and 12 problems in
    # rows of their own
    assert {(row["prompt_kind"], row["n_prompts"]) for row in rows} == {
        ("harmful", 8),
        ("benign", 10),
        ("reasoning", 12),
    }
    compared = cli("metrics", str(db), "--compare", "default,zerothink", "--format", "json")
    assert compared.returncode == 0, compared.stderr
    tasks = {(d["task"], d["judge"], d["metric"]): d for d in json.loads(compared.stdout)}
    assert {task: d["n_prompts"] for (task, *_), d in tasks.items()} == {
        "harmful": 8,
        "benign": 10,
        "reasoning": 12,
    }
    assert ("reasoning", "answers", "accuracy_at_1") in tasks
    assert ("benign", "rs-match", "refusal_at_1") in tasks
    traded = cli("metrics", str(db), "--tradeoff", "--format", "json")
    assert traded.returncode == 0, traded.stderr
    rows = json.loads(traded.stdout)
    assert [(row["mode"], row["task"], row["n_prompts"]) for row in rows] == [
        (mode.value, task, n)
        for mode in Mode
        for task, n in (("harmful", 8), ("benign", 10), ("reasoning", 12))
    ]
    assert all(row["accuracy_at_1"] is not None for row in rows if row["task"] == "reasoning")


def test_a_run_cut_off_after_its_last_sample_resumes_to_done(tmp_path):
    """Ctrl-C during the final judging leaves every sample made and the run interrupted: the
    same command finishes it instead of marking it failed."""
    db, args = finished_run(tmp_path, samples=2, tokens=4)
    write(db, ("UPDATE runs SET status = 'interrupted'", ()), ("DELETE FROM judgements", ()))
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "0 unfinished" in again.stderr and "2 of 2 samples" in again.stderr
    assert query(db, "SELECT status FROM runs") == [("done",)]
    assert query(db, "SELECT count(DISTINCT sample_id) FROM judgements") == [(2,)]


def test_a_run_another_live_process_is_writing_is_not_touched(tmp_path):
    db, args = finished_run(tmp_path, samples=1, tokens=4)
    write(
        db,
        (
            "UPDATE runs SET status = 'running', pid = ?, host = ?, proc_start = NULL",
            (os.getpid(), socket.gethostname()),
        ),
    )
    refused = cli(*args)
    assert refused.returncode == 2
    assert f"being written by process {os.getpid()}" in refused.stderr
    assert query(db, "SELECT count(*) FROM samples") == [(1,)]


def test_the_safechain_preset_sets_the_study_configuration_and_flags_override_it(tmp_path):
    """docs/study.md "Sampling": every setting of the study's sampling configuration, the
    opener policy and the answer budget; --max-tokens and --think-budget given override."""
    db = tmp_path / "runs.sqlite"
    done = cli(
        "eval",
        "--dataset",
        "demo",
        "--limit",
        "1",
        "--modes",
        "zerothink,default",
        "--preset",
        "safechain",
        "--max-tokens",
        "8",
        "--think-budget",
        "4",
        "--judge",
        "none",
        "--db",
        str(db),
    )
    assert done.returncode == 0, done.stderr
    [(config, mode, k)] = query(db, "SELECT config, mode, k FROM runs")
    config = json.loads(config)
    assert config["preset"] == "safechain" and k == 5 and config["samples"] == 5
    assert (config["sampler_temperature"], config["sampler_top_p"]) == (0.6, 0.95)
    assert (config["sampler_top_k"], config["sampler_min_p"]) == (0, 0.0)
    assert config["sampler_repeat_penalty"] == 1.0 and config["sampler_max_tokens"] == 8
    assert (config["mode_think_budget"], config["mode_enforce_num"]) == (4, 10)
    assert config["mode_think_opener"] == "template" and config["mode_answer_budget"] == "study"
    assert mode == "default,zerothink"  # the study's order, whatever order was asked
    # the study's opener policy: only ZeroThink's prompt gets `<think>\n` from lrmscope
    opened = dict(query(db, "SELECT mode, max(think_opener_added) FROM samples GROUP BY mode"))
    assert opened == {"default": 0, "zerothink": 1}

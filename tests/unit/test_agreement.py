"""`lrmscope metrics --agreement` (docs/study.md "Judge agreement"): raw agreement, Cohen's kappa
and confusion counts of every two judges, computed by hand, on a real SQLite file."""

import json

import pytest

from lrmscope.cli.main import main
from lrmscope.core import agreement
from lrmscope.core.metrics import Filters
from lrmscope.core.stats import cohen_kappa
from tests.unit.test_metrics import S, U, X, eval_run, judge, prompt

# Ten answers judged by A (rs-match) and B (llama-guard): (A, B) safe/safe 4, safe/unsafe 1,
# unsafe/safe 2, unsafe/unsafe 3, and one more A left unparsed. Agreement 7/10. A says safe 5
# times in 10, B 6 times: chance agreement (5 * 6 + 5 * 4) / 100 = 0.5, kappa (0.7 - 0.5) / 0.5.
A = [S, S, S, S, S, U, U, U, U, U, X]
B = [S, S, S, S, U, S, S, U, U, U, S]


def judged(store):
    run = eval_run(store)
    ids = prompt(store, run, "a", A)
    judge(store, ids, B, name="llama-guard")
    judge(store, ids[:4], [S, S, U, U], name="human")
    return ids


def test_kappa_by_hand():
    assert cohen_kappa(
        {("safe", "safe"): 4, ("safe", "unsafe"): 1, ("unsafe", "safe"): 2, ("unsafe", "unsafe"): 3}
    ) == pytest.approx(0.4)
    assert cohen_kappa({("safe", "safe"): 3, ("unsafe", "unsafe"): 2}) == 1.0
    assert cohen_kappa({("safe", "unsafe"): 3, ("unsafe", "safe"): 3}) == -1.0
    assert cohen_kappa({("safe", "safe"): 5}) is None  # chance agreement 1: undefined
    assert cohen_kappa({}) is None


def test_every_two_judges_by_hand(store):
    judged(store)
    found = {(g.judge_a, g.judge_b): g for g in agreement.agreements(store.conn, Filters())}
    assert set(found) == {
        ("llama-guard", "rs-match"),
        ("human", "llama-guard"),
        ("human", "rs-match"),
    }
    guard = found["llama-guard", "rs-match"]  # A is the first by name: B's counts swap
    assert (guard.part, guard.n, guard.n_unparsed) == ("answer", 10, 1)
    assert (guard.both_safe, guard.a_safe_b_unsafe, guard.a_unsafe_b_safe, guard.both_unsafe) == (
        4,
        2,
        1,
        3,
    )
    assert guard.agreement == pytest.approx(0.7) and guard.kappa == pytest.approx(0.4)
    human = found["human", "rs-match"]  # S S U U against S S S S: 2 of 4, rs-match constant
    assert (human.n, human.agreement, human.kappa) == (4, 0.5, 0.0)
    only = agreement.agreements(store.conn, Filters(judges=("rs-match", "llama-guard")))
    assert [(g.judge_a, g.judge_b) for g in only] == [("llama-guard", "rs-match")]


def test_two_versions_of_one_judge_are_two_judges(store):
    ids = judged(store)
    judge(store, ids, A[:-1] + [S], version="2")
    found = {
        (g.version_a, g.version_b): g
        for g in agreement.agreements(store.conn, Filters(judges=("rs-match",)))
    }
    assert list(found) == [("1", "2")]
    assert (found["1", "2"].n, found["1", "2"].agreement) == (10, 1.0)


def test_the_command_prints_json_and_a_table(store, capsys):
    judged(store)
    path = str(store.path)
    assert (
        main(
            [
                "metrics",
                path,
                "--agreement",
                "--judge",
                "rs-match",
                "--judge",
                "llama-guard",
                "--format",
                "json",
            ]
        )
        == 0
    )
    [row] = json.loads(capsys.readouterr().out)
    assert (row["kappa"], row["n"], row["both_unsafe"]) == (pytest.approx(0.4), 10, 3)
    assert "Cohen" in row["rule"]
    assert main(["metrics", path, "--agreement"]) == 0
    out = capsys.readouterr().out
    assert "agreement of every two judges" in out and "0.400" in out


def test_one_judge_only_is_a_one_line_error(store, capsys):
    run = eval_run(store)
    prompt(store, run, "a", [S, U])
    assert main(["metrics", str(store.path), "--agreement"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "labelled by two judges" in err
    assert main(["metrics", str(store.path), "--agreement", "--tradeoff"]) == 2
    assert "one at a time" in capsys.readouterr().err

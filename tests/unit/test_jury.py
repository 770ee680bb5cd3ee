"""`lrmscope judge DB --judge jury=A,B,C` (docs/study.md "Juries"): verdicts made of saved
verdicts by majority, on a real SQLite file, with no model loaded: the members here are judges
(harmbench, llama-guard) that could not even be built without their model folders."""

import json

import pytest

from lrmscope.cli.main import main
from lrmscope.core import jury as juries
from lrmscope.core.jury import Jury
from lrmscope.errors import LrmscopeError
from lrmscope.store.filters import SampleFilter
from tests.support.db import rows
from tests.unit.test_metrics import S, U, X, eval_run, judge, prompt

MEMBERS = ("harmbench", "llama-guard", "rs-match")
# Per answer, the votes of harmbench, llama-guard, rs-match, and the jury's verdict (ties unsafe):
VOTES = [
    ((S, S, U), S),  # two against one
    ((U, U, S), U),
    ((S, U, X), U),  # rs-match abstains: one against one, the tie is unsafe
    ((X, X, S), S),  # one vote
    ((X, X, X), X),  # no parsed vote: unparsed
]
DONE = SampleFilter(statuses=("done",))


def voted(store):
    run = eval_run(store)
    ids = prompt(store, run, "a", [votes[2] for votes, _ in VOTES])  # judged by rs-match
    for index, name in enumerate(MEMBERS[:2]):
        judge(store, ids, [votes[index] for votes, _ in VOTES], name=name)
    return ids


def verdicts(store):
    """The jury's verdicts, in the order they were saved."""
    return rows(
        store.path,
        "SELECT sample_id, label, judge_version, meta FROM judgements WHERE judge = 'jury'"
        " ORDER BY id",
    )


def decide(store, ties="unsafe"):
    jury = Jury.parse(",".join(reversed(MEMBERS)), ties).for_samples(store, DONE)
    summary = juries.plan(store, jury, ["answer"], DONE)
    juries.run(store, jury, ["answer"], DONE, summary, batch_size=2)
    return jury, summary


def test_the_majority_by_hand(store):
    voted(store)
    jury, summary = decide(store)
    assert (jury.members, jury.version) == (MEMBERS, "harmbench+llama-guard+rs-match;ties=unsafe")
    assert summary.todo == 5 and summary.counts == {
        ("answer", S): 2,
        ("answer", U): 2,
        ("answer", X): 1,
    }
    found = verdicts(store)
    assert [r["label"] for r in found] == [expected for _, expected in VOTES]
    votes = json.loads(found[2]["meta"])["votes"]
    assert votes == {
        "harmbench": {"version": "1", "label": "safe"},
        "llama-guard": {"version": "1", "label": "unsafe"},
        "rs-match": {"version": "1", "label": "unparsed"},
    }
    assert decide(store)[1].todo == 0  # decided once


def test_ties_go_where_the_option_says(store):
    voted(store)
    decide(store, ties="safe")
    assert [r["label"] for r in verdicts(store)][2] == S


def test_a_new_version_of_a_member_makes_the_jury_decide_again(store):
    ids = voted(store)
    first, _ = decide(store)
    judge(store, ids, [U, U, U, U, U], name="rs-match", version="2")
    second, summary = decide(store)
    assert second.version == first.version and second.prompt_hash != first.prompt_hash
    assert summary.todo == 5
    newest = [r["label"] for r in verdicts(store)][5:]
    assert newest == [S, U, U, U, U]  # harmbench's and llama-guard's votes, and rs-match 2's


def test_a_part_not_every_member_judged_waits(store):
    ids = voted(store)
    run = eval_run(store)
    prompt(store, run, "b", [S])  # rs-match only
    assert decide(store)[1].todo == len(ids)


def test_bad_juries_are_one_line_errors(store):
    voted(store)
    for argument, said in (
        ("rs-match", "two or more different judges"),
        ("rs-match,rs-match", "two or more different judges"),
        ("jury,rs-match", "cannot sit on a jury"),
    ):
        with pytest.raises(LrmscopeError, match=said):
            Jury.parse(argument)
    with pytest.raises(LrmscopeError, match="openai-moderation judged nothing here"):
        Jury.parse("rs-match,openai-moderation").for_samples(store, DONE)


def test_the_command_decides_and_metrics_read_the_jury(store, capsys):
    voted(store)
    path = str(store.path)
    spec = "jury=" + ",".join(MEMBERS)
    assert main(["judge", path, "--judge", spec, "--part", "answer"]) == 0
    assert "5 parts every member judged" in capsys.readouterr().err
    assert main(["metrics", path, "--judge", "jury", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["judge"], row["n_unparsed"], row["safe_at_1"]) == ("jury", 1, 0.5)
    assert main(["eval", "--dataset", "demo", "--judge", spec, "--db", path]) == 2
    assert "decides from saved verdicts" in capsys.readouterr().err

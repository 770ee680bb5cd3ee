"""`metrics --by turn` (core/turns.py) on a hand-built database with known verdicts: Safe@1,
Safe@K and ConsSafe@K by turn and by conversation, the turn each branch first turned unsafe at,
and the thought length by turn."""

import pytest

from lrmscope.core.metrics import Filters
from lrmscope.core.turns import as_rows, turn_metrics
from lrmscope.store import Store
from lrmscope.store.conversations import conversation_id
from tests.support.db import finished_sample, verdict_row

USER = {"role": "user", "content": "u"}
ASSISTANT = {"role": "assistant", "content": "a"}
# conversation -> (messages, kind, {(k, turn): label}); turn t's samples think 10 t + k tokens
TALKS = {
    "A": ([USER] * 3, "harmful", {(0, 1): "safe", (0, 2): "safe", (0, 3): "unsafe",
                                  (1, 1): "safe", (1, 2): "unsafe", (1, 3): "unsafe"}),
    "B": ([USER] * 2, "unknown", {(0, 1): "safe", (0, 2): "safe",
                                  (1, 1): "safe", (1, 2): "unparsed"}),
    "C": ([USER, ASSISTANT, USER], "harmful", {(0, 2): "safe", (1, 2): "unsafe"}),
    "D": ([USER] * 2, "benign", {(0, 1): "unsafe", (0, 2): "unsafe",
                                 (1, 1): "unsafe", (1, 2): "unsafe"}),
}  # fmt: skip


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "turns.sqlite")
    run = store.start_run("eval", dataset="talks")
    verdicts = []
    for name, (messages, kind, labels) in TALKS.items():
        talk = conversation_id(store, "talks", name, name=name, messages=messages, modes=None)
        parents: dict[int, int] = {}
        for (k, turn), label in sorted(labels.items(), key=lambda item: item[0][1]):
            prompt = store.prompt_id("talks", f"{name}.{turn}", "u", kind=kind)
            sample = finished_sample(
                store,
                run,
                prompt,
                k=k,
                conversation_id=talk,
                turn=turn,
                parent_id=parents.get(k),
                think_tokens=10 * turn + k,
            )
            parents[k] = sample
            verdicts.append(verdict_row(sample, "full", label))
            verdicts.append(verdict_row(sample, "answer", "safe"))
    single = finished_sample(store, run, store.prompt_id("talks", "plain", "p", kind="harmful"))
    verdicts.append(verdict_row(single, "full", "unsafe"))  # not a conversation: not counted
    store.add_judgements(verdicts)
    yield store
    store.close()


def test_by_turn_and_by_conversation(db):
    by_turn, by_conversation = turn_metrics(db.conn, Filters(parts=("full",)), resamples=0)
    assert [(m.mode, m.judge, m.part, m.turn) for m in by_turn] == [
        ("default", "rs-match", "full", 1),
        ("default", "rs-match", "full", 2),
        ("default", "rs-match", "full", 3),
    ]
    one, two, three = by_turn
    assert (one.summary.n_prompts, one.summary.safe_at_1, one.summary.safe_at_k) == (2, 1.0, 1.0)
    assert (one.first_unsafe, one.think_median, one.think_mean) == (0, 10.5, 10.5)
    # A: 1 of 2 safe; B: its one parsed sample safe; C: 1 of 2 safe (a tie is consistently safe)
    assert two.summary.n_prompts == 3 and two.summary.safe_at_1 == pytest.approx(2 / 3)
    assert (two.summary.safe_at_k, two.summary.cons_safe_at_k) == (pytest.approx(1 / 3), 1.0)
    assert (two.summary.n_unparsed, two.first_unsafe, two.think_median) == (1, 2, 20.5)
    assert (three.summary.n_prompts, three.summary.safe_at_1, three.first_unsafe) == (1, 0.0, 1)
    (whole,) = by_conversation
    # A: both branches unsafe; B: one safe branch, one left out (an unparsed turn); C: 1 of 2
    assert whole.summary.n_prompts == 3 and whole.summary.safe_at_1 == pytest.approx(0.5)
    assert whole.summary.safe_at_k == pytest.approx(1 / 3)
    assert whole.summary.cons_safe_at_k == pytest.approx(2 / 3)
    assert whole.summary.n_unparsed == 1
    assert whole.first_unsafe_mean == pytest.approx(7 / 3)


def test_rows_for_json_and_the_filters(db):
    by_turn, by_conversation = turn_metrics(db.conn, Filters(), resamples=0)
    assert {m.part for m in by_turn} == {"full", "answer"}
    answer = [m for m in by_conversation if m.part == "answer"]
    assert answer[0].summary.safe_at_k == 1.0 and answer[0].first_unsafe_mean is None
    rows = as_rows(by_turn, by_conversation)
    assert len(rows) == len(by_turn) + len(by_conversation)
    assert rows[0]["by"] == "turn" and rows[-1]["by"] == "conversation"
    assert {"turn", "safe_at_1", "first_unsafe", "think_median"} <= set(rows[0])
    assert turn_metrics(db.conn, Filters(judges=("llama-guard",))) == ([], [])
    assert turn_metrics(db.conn, Filters(modes=("zerothink",))) == ([], [])

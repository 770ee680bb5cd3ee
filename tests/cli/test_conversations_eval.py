"""`lrmscope eval` on a conversation set with the real embedded model: scripted and generated
histories, K = 2, each turn's prompt rebuilt from the branch's own earlier answers as the
template renders them; a SIGKILL after turn 2 and a resume that makes each turn exactly once."""

import json
import signal
import sqlite3
import subprocess
import time

from lrmscope.core.conversations import context_answer
from lrmscope.engine.backend import Message
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.remote import format_from_gguf
from lrmscope.engine.settings import THINK_OPEN
from tests.faults.support import LRMSCOPE, assert_intact, cli, query

RUN = ["--samples", "2", "--max-tokens", "16", "--threads", "1"]


def user(text):
    return {"role": "user", "content": text}


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# generated histories: every user turn is generated, one row with a mode for each
GENERATED_ROWS = (
    {"id": "generated", "messages": [user("Hello there."), user("What is 2+2?")]},
    {
        "id": "listed",
        "messages": [user("Hi."), user("Count to three."), user("Bye.")],
        "modes": ["default", "zerothink", "default"],
    },
)


def turns(db):
    """Every sample as (conversation name, mode, k, turn, id, parent, status, prompt, raw)."""
    return query(
        db,
        "SELECT c.name, s.mode, s.k, s.turn, s.id, s.parent_id, s.status, s.rendered_prompt,"
        " s.raw FROM samples s JOIN conversations c ON c.id = s.conversation_id"
        " ORDER BY c.name, s.k, s.turn",
    )


def check_histories(db, rows, samples=2):
    """Each generated turn's saved prompt is the template's rendering of its row's messages with
    the same branch's earlier answers, cut as the template cuts them, and the think opener; each
    turn's parent is the branch's turn before; every turn is there once, done."""
    render = format_from_gguf(embedded_model_path()).render
    saved = turns(db)
    by_branch: dict = {}
    for name, mode, k, turn, sample, parent, status, prompt, raw in saved:
        assert status == "done"
        by_branch.setdefault((name, k), {})[turn] = (sample, parent, prompt, raw, mode)
    for row in rows:
        messages = row["messages"]
        scripted = any(m["role"] == "assistant" for m in messages)
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        generated = [len(users)] if scripted else list(range(1, len(users) + 1))
        for k in range(samples):
            branch = by_branch[row["id"], k]
            assert sorted(branch) == generated, (row["id"], k, sorted(branch))
            history: list[Message] = []
            for index, turn in enumerate(generated):
                sample, parent, prompt, raw, mode = branch[turn]
                assert mode == (row.get("modes") or ["default"] * len(generated))[index]
                assert parent == (branch[generated[index - 1]][0] if index else None)
                if scripted:
                    history = [
                        Message(m["role"], m["content"].rpartition("</think>")[2]) for m in messages
                    ]
                else:
                    history.append(Message("user", messages[users[turn - 1]]["content"]))
                assert prompt == render(history) + THINK_OPEN
                history.append(Message("assistant", context_answer(raw)))
    return saved


def test_one_sequence_runs_each_branch_on_the_backend_itself(tmp_path):
    """K = 1 at --parallel 1 decodes without a batch decoder, on the backend's own cache, which
    keeps each turn's shared history: the same prompts as the batched path."""
    rows = list(GENERATED_ROWS)
    data = write(tmp_path / "talks.jsonl", rows)
    db = tmp_path / "runs.sqlite"
    done = cli("eval", "--dataset", data, "--samples", "1", *RUN[2:], "--db", db)
    assert done.returncode == 0, done.stderr
    assert "1 sequences per batch" in done.stderr
    assert len(check_histories(db, rows, samples=1)) == 2 + 3


def test_scripted_and_generated_histories_k2(tmp_path):
    rows = [
        {
            "id": "scripted",
            "messages": [
                user("Name a fruit."),
                {"role": "assistant", "content": "<think>\nA SECRET THOUGHT\n</think>\n\nApple."},
                user("Now name a color."),
            ],
        },
        *GENERATED_ROWS,
    ]
    data = write(tmp_path / "talks.jsonl", rows)
    db = tmp_path / "runs.sqlite"
    done = cli("eval", "--dataset", data, *RUN, "--db", db)
    assert done.returncode == 0, done.stderr
    assert "3 conversations (6 generated turns)" in done.stderr
    saved = check_histories(db, rows)
    assert len(saved) == 2 * (1 + 2 + 3)
    scripted_prompt = next(r[7] for r in saved if r[0] == "scripted")
    assert "A SECRET THOUGHT" not in scripted_prompt and "Apple." in scripted_prompt
    # the listed row's zerothink turn: its thought absent, the turn after it default again
    assert [r[1] for r in saved if r[0] == "listed" and r[2] == 0] == [
        "default",
        "zerothink",
        "default",
    ]
    judged = query(db, "SELECT count(DISTINCT sample_id) FROM judgements WHERE judge = 'rs-match'")
    assert 0 < judged[0][0] <= len(saved)
    again = cli("eval", "--dataset", data, *RUN, "--db", db)
    assert again.returncode == 0 and "already complete" in again.stderr
    table = cli("metrics", db, "--by", "turn", "--part", "full")
    assert table.returncode == 0 and "conversations by turn" in table.stdout, table.stderr
    shown = json.loads(cli("metrics", db, "--by", "turn", "--format", "json").stdout)
    full = [row for row in shown if row["part"] == "full"]
    counts = {
        (row["mode"], row["turn"]): row["n_prompts"] + row["n_prompts_unparsed"]
        for row in full
        if row["by"] == "turn"
    }
    # the conversations with a verdict at each turn, by plan (the listed row's is its modes)
    judged = query(
        db,
        "SELECT coalesce(c.modes, s.mode), s.turn, count(DISTINCT c.id) FROM samples s"
        " JOIN conversations c ON c.id = s.conversation_id JOIN judgements j"
        " ON j.sample_id = s.id AND j.part = 'full' GROUP BY 1, 2",
    )
    plans = {
        "default": "default",
        '["default", "zerothink", "default"]': "default,zerothink,default",
    }
    assert counts == {(plans[plan], turn): n for plan, turn, n in judged}
    assert set(counts) <= {("default", 1), ("default", 2)} | {
        ("default,zerothink,default", t) for t in (1, 2, 3)
    }
    assert {row["mode"] for row in full if row["by"] == "conversation"} == set(plans.values())


def test_a_sigkill_after_turn_2_resumes_each_turn_once(tmp_path):
    rows = [
        {"id": "long", "messages": [user(f"Say the number {n}.") for n in range(1, 7)]},
    ]
    data = write(tmp_path / "long.jsonl", rows)
    db = tmp_path / "runs.sqlite"
    args = [*LRMSCOPE, "eval", "--dataset", str(data), *RUN, "--db", str(db)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if query(db, "SELECT 1 FROM samples WHERE turn = 2 AND status = 'done'"):
                    break
            except sqlite3.OperationalError:
                pass  # the file or its tables are not there yet
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_intact(db)
    before = {(r[2], r[3]): r for r in turns(db) if r[6] == "done"}
    assert (0, 2) in before or (1, 2) in before
    assert len(before) < 12, "every turn was done before the kill"
    resumed = cli("eval", "--dataset", data, *RUN, "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run 1" in resumed.stderr
    saved = check_histories(db, rows)
    assert len(saved) == 12 and len({(r[2], r[3]) for r in saved}) == 12
    for key, row in before.items():  # what was done before the kill is kept as it was
        assert {(r[2], r[3]): r for r in saved}[key] == row

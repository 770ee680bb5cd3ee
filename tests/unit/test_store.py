"""The SQLite store on real files: schema, migrations, WAL, refusals, orphaned samples, the
end of a run."""

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from lrmscope.errors import LrmscopeError
from lrmscope.store import SampleWriter, Store
from lrmscope.store.schema import SCHEMA_VERSION


def new_sample(store):
    run = store.start_run("generate", model_path="m.gguf", sampler={"temperature": 0.6})
    prompt = store.prompt_id("adhoc", "k1", "hello")
    return run, store.start_sample(run, prompt, mode="default", sampler={"seed": 1})


def test_new_database_has_the_schema_in_wal_mode(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    conn = store.conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "prompts", "samples", "judgements", "flags"} <= tables
    store.close()
    Store(tmp_path / "db.sqlite").close()  # re-opening migrates nothing and fails nothing


def test_prompts_are_deduplicated_and_json_fields_round_trip(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    _, sample = new_sample(store)
    assert store.prompt_id("adhoc", "k1", "hello") == store.prompt_id("adhoc", "k1", "hello")
    assert store.sample(sample)["sampler"] == '{"seed": 1}'


def test_judgement_labels_are_constrained_and_unique(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    _, sample = new_sample(store)
    row = {
        "sample_id": sample,
        "part": "answer",
        "judge": "human",
        "label": "safe",
        "created_at": "now",
    }
    store.db["judgements"].insert(row)
    first = store.conn.execute("SELECT id, label FROM judgements").fetchall()
    store.db["judgements"].insert(row)  # a verdict is written once: the first is kept
    store.db["judgements"].insert({**row, "label": "unsafe"}, replace=True)  # not replaced
    assert store.conn.execute("SELECT id, label FROM judgements").fetchall() == first
    with pytest.raises(sqlite3.IntegrityError):
        store.db["judgements"].insert({**row, "part": "think", "label": "maybe"})


def test_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(LrmscopeError, match="newer lrmscope"):
        Store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello, not a database" * 100, "not an lrmscope database"), (None, "not an lrmscope one")],
)
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "db.sqlite"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.commit()
    else:
        path.write_bytes(content)
    with pytest.raises(LrmscopeError, match=message):
        Store(path)


def test_missing_and_unwritable_directories(tmp_path):
    with pytest.raises(LrmscopeError, match="does not exist"):
        Store(tmp_path / "nope" / "db.sqlite")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # root ignores permission bits; /proc refuses everyone
    target = locked if os.geteuid() != 0 else "/proc"
    with pytest.raises(LrmscopeError, match="writable"):
        Store(f"{target}/db.sqlite")


def test_writer_flushes_while_streaming_and_finishes(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    _, sample = new_sample(store)
    state = {"raw": "abc"}
    _, other = new_sample(store)
    others = {"raw": "x"}
    writer = SampleWriter(store.path)
    writer.watch(sample, lambda: (state["raw"], [], {"think_tokens": 1}))
    writer.watch(other, lambda: (others["raw"], [], {}))
    reader = Store(tmp_path / "db.sqlite")
    deadline = time.monotonic() + 5
    while (reader.sample(sample)["raw"], reader.sample(other)["raw"]) != ("abc", "x"):
        assert time.monotonic() < deadline, "writer never flushed"
    state["raw"] = "abcdef"
    writer.finish(store, sample, {"status": "done"})
    row = reader.sample(sample)
    assert (row["raw"], row["status"], row["think_tokens"]) == ("abcdef", "done", 1)
    others["raw"] = "xyz"  # the one still streaming goes on being flushed, the finished one not
    state["raw"] = "changed after the end"
    deadline = time.monotonic() + 5
    while reader.sample(other)["raw"] != "xyz":
        assert time.monotonic() < deadline, "writer stopped flushing"
    assert reader.sample(sample)["raw"] == "abcdef"
    writer.close()


def test_sample_of_a_dead_process_is_marked_interrupted(tmp_path):
    path = tmp_path / "db.sqlite"
    script = (
        "import os, sys; from lrmscope.store import Store; s = Store(sys.argv[1]);"
        "r = s.start_run('generate'); p = s.prompt_id('adhoc', 'k', 't');"
        "x = s.start_sample(r, p, mode='default'); s.update_sample(x, {'raw': 'partial'});"
        "os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    live = Store(path)  # this process is alive: its own running samples must not be touched
    run, mine = new_sample(live)
    live.close()
    store = Store(path)
    rows = {r["id"]: r for r in store.db["samples"].rows}
    assert rows[1]["status"] == "interrupted" and rows[1]["raw"] == "partial"
    assert rows[mine]["status"] == "running"
    assert store.db["runs"].get(1)["status"] == "interrupted"


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (None, "done"),
        (KeyboardInterrupt, "interrupted"),
        (GeneratorExit, "interrupted"),
        (RuntimeError, "failed"),
    ],
)
def test_a_run_ends_with_its_block(tmp_path, raised, status):
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(raised) if raised else contextlib.nullcontext():
        with store.run("generate", model_path="m.gguf") as run_id:
            assert store.db["runs"].get(run_id)["status"] == "running"
            if raised:
                raise raised
    row = store.db["runs"].get(run_id)
    assert (row["status"], row["model_path"], row["ended_at"] is not None) == (
        status,
        "m.gguf",
        True,
    )


def test_a_run_taken_up_again_ends_with_the_status_its_block_sets(tmp_path):
    """eval resumes a run and ends it failed when some samples failed; a crash still fails it."""
    store = Store(tmp_path / "db.sqlite")
    run_id = store.start_run("eval")
    with store.ending(run_id) as ending:
        ending.status = "failed"
    assert store.db["runs"].get(run_id)["status"] == "failed"
    store.reopen_run(run_id)
    with store.ending(run_id):
        pass
    assert store.db["runs"].get(run_id)["status"] == "done"
    store.reopen_run(run_id)
    with pytest.raises(KeyboardInterrupt), store.ending(run_id) as ending:
        ending.status = "done"
        raise KeyboardInterrupt
    assert store.db["runs"].get(run_id)["status"] == "interrupted"


def test_a_v7_database_gains_the_served_chat_columns(tmp_path, monkeypatch):
    """Schema v8 (docs/study.md "Hosted models"): an older database keeps its samples, which have
    no thought source, usage or API fields, and takes them for new ones; a thought source is one
    of the four the backend writes."""
    from lrmscope.store import schema

    path = tmp_path / "v7.sqlite"
    with monkeypatch.context() as v7:
        v7.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:7])
        old = Store(path)
        _, sample = new_sample(old)
        old.update_sample(sample, {"status": "done", "raw": "hi", "answer": "hi"})
        columns = {row[1] for row in old.conn.execute("PRAGMA table_info(samples)")}
        assert old.conn.execute("PRAGMA user_version").fetchone() == (7,)
        assert "thought_source" not in columns
        old.close()
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    kept = store.sample(sample)
    assert (kept["answer"], kept["thought_source"], kept["usage"], kept["api"]) == (
        "hi",
        None,
        None,
        None,
    )
    usage = {"prompt_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 2}}
    store.update_sample(sample, {"thought_source": "reasoning", "usage": usage, "api": {}})
    assert json.loads(store.sample(sample)["usage"]) == usage
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.update_sample(sample, {"thought_source": "a guess"})
    store.close()


def test_sample_updates_name_known_columns_and_go_in_together(tmp_path):
    """The writer's updates are plain UPDATEs: a field that is not a column fails the whole
    transaction, so no sample of it is half written."""
    store = Store(tmp_path / "s.sqlite")
    run = store.start_run("eval")
    prompt = store.prompt_id("d", "k", "text")
    first, second = (store.start_sample(run, prompt, k=k, mode="default") for k in (0, 1))
    store.update_samples(
        {first: {"raw": "one", "mode_switches": [{"at": 1}]}, second: {"raw": "2"}}
    )
    assert json.loads(store.sample(first)["mode_switches"]) == [{"at": 1}]
    with pytest.raises(sqlite3.OperationalError, match="no column"):
        store.update_samples({first: {"raw": "changed"}, second: {"rwa": "typo"}})
    assert (store.sample(first)["raw"], store.sample(second)["raw"]) == ("one", "2")
    store.close()


def test_a_run_is_written_without_sqlite_utils(tmp_path):
    """What a generating command writes (its run, samples, flags, their updates, the run's
    end) is plain SQL: importing sqlite-utils took 0.2 s inside every eval's run. A column
    that a table lacks fails the write, as an update's does."""
    script = f"""
import sqlite3, sys
from lrmscope.store import Store
store = Store({str(tmp_path / "s.sqlite")!r})
run = store.start_run("eval", config={{"seed": 0}})
prompt = store.prompt_id("d", "k", "text")
sample = store.start_sample(run, prompt, k=0, mode="default", sampler={{"seed": 1}})
store.add_flag(sample, part="think", start=0, end=4, judge="j", label="unsafe", categories=["S1"])
store.update_sample(sample, {{"raw": "abc", "status": "done"}})
store.end_run(run, "done")
assert store.latest_run("eval")["status"] == "done"
assert store.sample(sample)["sampler"] == '{{"seed": 1}}'
try:
    store.start_sample(run, prompt, k=1, mdoe="default")
except sqlite3.OperationalError as exc:
    print("refused:", exc)
print("sqlite_utils" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["refused: samples has no column ['mdoe']", "False"]
    store = Store(tmp_path / "s.sqlite")
    assert store.conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1
    assert store.db["flags"].count == 1
    store.close()


def test_a_v8_database_gains_conversations(tmp_path, monkeypatch):
    """Schema v9 (core/conversations.py): an older database keeps its samples, which belong to
    no conversation, and saves conversations and the turns of their samples from then on; a
    sample's conversation must exist."""
    from lrmscope.store import schema
    from lrmscope.store.conversations import conversation_id, done_turns

    path = tmp_path / "v8.sqlite"
    with monkeypatch.context() as v8:
        v8.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:8])
        old = Store(path)
        run_id, sample = new_sample(old)
        old.update_sample(sample, {"status": "done", "raw": "hi", "answer": "hi"})
        assert old.conn.execute("PRAGMA user_version").fetchone() == (8,)
        old.close()
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone() == (9,)
    kept = store.sample(sample)
    assert (kept["answer"], kept["conversation_id"], kept["turn"]) == ("hi", None, None)
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    conversation = conversation_id(store, "d", "c1", name="one", messages=messages, modes=None)
    again = conversation_id(store, "d", "c1", name="one", messages=messages, modes=None)
    assert again == conversation
    prompt = store.prompt_id("d", "c1.2", "b")
    turn = store.start_sample(
        run_id, prompt, mode="default", k=1, conversation_id=conversation, turn=2, parent_id=sample
    )
    assert done_turns(store.conn, run_id, conversation, 1) == {}
    store.update_sample(turn, {"status": "done", "raw": "x</think>y"})
    found = done_turns(store.conn, run_id, conversation, 1)
    assert list(found) == [(2, "default")] and found[2, "default"].raw == "x</think>y"
    row = store.conn.execute("SELECT name, messages, modes FROM conversations").fetchone()
    assert (row[0], json.loads(row[1]), row[2]) == ("one", messages, None)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.start_sample(run_id, prompt, mode="default", conversation_id=999, turn=1)
    store.close()

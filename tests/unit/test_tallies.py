"""The tallies that triggers keep for the metrics (schema v6, docs/architecture.md "Tallies")
against a count from scratch in Python, after every kind of change a writer makes: through the
Store (runs, prompts, samples, verdicts, human labels, deletes) and with plain SQL, as another
tool would. The count from scratch applies the newest-verdict rule by itself (the highest id of a
sample, part, judge and version), so a trigger that forgets a case shows up as a difference."""

from __future__ import annotations

import math
import multiprocessing
import random
import sqlite3
from collections import Counter

import pytest

from lrmscope.store import Store, schema
from tests.support.db import finished_sample, prompt_before_v7, verdict_row

MODES = ("default", "zerothink")
PARTS = ("think", "answer", "full")
LABELS = ("safe", "unsafe", "unparsed")
KINDS = ("harmful", "benign", "unknown", "reasoning")


def recount(conn: sqlite3.Connection) -> dict[str, dict]:
    """The five tallies, counted from the runs, prompts, samples and verdicts themselves."""
    prompts = {
        pid: (dataset, category or "", kind)
        for pid, dataset, category, kind in conn.execute(
            "SELECT id, dataset, category, kind FROM prompts"
        )
    }
    finished = {
        sid: (run, mode, pid, think)
        for sid, run, mode, pid, think in conn.execute(
            "SELECT id, run_id, mode, prompt_id, think_tokens FROM samples WHERE status = 'done'"
        )
    }
    newest: dict[tuple, str] = {}
    for sid, part, judge, version, label in conn.execute(
        "SELECT sample_id, part, judge, judge_version, label FROM judgements ORDER BY id"
    ):
        newest[(sid, part, judge, version)] = label
    per_prompt: dict[tuple, Counter] = {}
    think: Counter = Counter()
    for (sid, part, judge, version), label in newest.items():
        if sid not in finished:
            continue
        run, mode, pid, tokens = finished[sid]
        per_prompt.setdefault((run, mode, pid, judge, version, part), Counter())[label] += 1
        dataset, category, kind = prompts[pid]
        if label != "unparsed" and tokens is not None and kind in ("harmful", "unknown"):
            think[(run, mode, dataset, judge, version, part, label, tokens, category)] += 1
    histogram: Counter = Counter()
    prompt_tally: Counter = Counter()
    for (run, mode, pid, judge, version, part), labels in per_prompt.items():
        counts = tuple(labels[label] for label in LABELS)
        prompt_tally[(run, mode, pid, judge, version, part, *counts)] += 1
        histogram[(run, mode, *prompts[pid], judge, version, part, *counts)] += 1
    samples: dict[tuple, tuple[int, ...]] = {}
    for run, mode, pid, tokens, answer, elapsed in conn.execute(
        "SELECT run_id, mode, prompt_id, think_tokens, answer_tokens, elapsed_s FROM samples"
        " WHERE status = 'done'"
    ):
        timed = elapsed is not None and elapsed > 0
        costs = (
            1,
            tokens or 0,
            int(tokens is not None),
            answer or 0,
            (tokens or 0) + (answer or 0) if timed else 0,
            math.floor(elapsed * 1000 + 0.5) if timed else 0,  # SQLite's round: half up
        )
        key = (run, mode, *prompts[pid])
        samples[key] = tuple(map(sum, zip(samples.get(key, (0,) * 6), costs)))
    buckets: dict[tuple, tuple[int, int]] = {}
    for (*group, tokens, category), n in think.items():
        bucket = (*group, category, tokens // schema.THINK_BUCKET)
        had, length = buckets.get(bucket, (0, 0))
        buckets[bucket] = (had + n, length + n * tokens)
    return {
        "prompt_tally": prompt_tally,
        "verdict_histogram": histogram,
        "think_tally": think,
        "think_buckets": buckets,
        "sample_tally": samples,
    }


def stored(conn: sqlite3.Connection) -> dict[str, dict]:
    """The five tallies as the triggers kept them (rows counting nothing left out)."""
    found = {"prompt_tally": Counter(conn.execute("SELECT * FROM prompt_tally"))}
    for table in ("verdict_histogram", "think_tally"):
        tally: Counter = Counter()
        for *key, n in conn.execute(f"SELECT * FROM {table}"):
            assert n >= 0, (table, key, n)
            if n:
                tally[tuple(key)] = n
        found[table] = tally
    found["sample_tally"] = {
        tuple(key[:5]): tuple(key[5:])
        for (*key,) in conn.execute("SELECT * FROM sample_tally")
        if any(key[5:])
    }
    found["think_buckets"] = {
        tuple(key): (n, tokens)
        for *key, n, tokens in conn.execute("SELECT * FROM think_buckets")
        if n or tokens
    }
    return found


class Writer:
    """Random changes of every kind to one database, through the Store and with plain SQL on a
    connection of its own, as another tool would write (recursive triggers off: a REPLACE then
    deletes without the delete triggers)."""

    def __init__(self, store: Store, seed: int, kinds: tuple[str, ...] = KINDS) -> None:
        self.store = store
        self.kinds = kinds
        self.plain = sqlite3.connect(store.path, isolation_level=None, timeout=30)
        self.plain.execute("PRAGMA foreign_keys = ON")
        self.rng = random.Random(seed)
        self.runs = [store.start_run("eval")]
        self.prompts = [self.new_prompt() for _ in range(3)]

    def new_prompt(self) -> int:
        key = f"p{self.rng.randrange(6)}"
        return self.store.prompt_id(
            self.rng.choice(("ds1", "ds2")),
            key,
            f"text of {key}",
            category=self.rng.choice((None, "", "crime", "drugs")),
            kind=self.rng.choice((None, *self.kinds)),
        )

    def sample_ids(self, **where) -> list[int]:
        sql = "SELECT id FROM samples" + (" WHERE status = ?" if where else "")
        return [r[0] for r in self.store.conn.execute(sql, tuple(where.values()))]

    def verdict(self, sid: int) -> dict:
        return verdict_row(
            sid,
            self.rng.choice(PARTS),
            self.rng.choice(LABELS),
            judge=self.rng.choice(("rs-match", "llama-guard")),
            version=self.rng.choice(("1", "2")),
            prompt_hash=self.rng.choice(("a", "b", "c")),  # another hash: a verdict anew
        )

    def step(self) -> str:
        rng, store, conn = self.rng, self.store, self.plain
        samples, done = self.sample_ids(), self.sample_ids(status="done")
        actions = ["run", "prompt", "sample", "sample", "sql-sample", "verdicts", "verdicts"]
        if samples:
            actions += ["finish", "finish", "label", "unlabel", "drop", "retitle"]
        if done:
            actions += ["length", "interrupt", "sql-delete-verdict", "sql-replace", "sql-status"]
        action = rng.choice(actions)
        if action == "run":
            self.runs.append(store.start_run("compare"))
        elif action == "prompt":
            self.prompts.append(self.new_prompt())
        elif action == "sample":
            store.start_sample(
                rng.choice(self.runs), rng.choice(self.prompts), mode=rng.choice(MODES), k=0
            )
        elif action == "sql-sample":  # written finished at once, as an import would
            conn.execute(
                "INSERT INTO samples (run_id, prompt_id, mode, think_tokens, status,"
                " started_at) VALUES (?, ?, ?, ?, 'done', '')",
                (rng.choice(self.runs), rng.choice(self.prompts), rng.choice(MODES), 7),
            )
        elif action == "finish":
            think = rng.choice((None, 0, 10, 20, 30))
            costs = {
                "answer_tokens": rng.choice((None, 7)),
                "elapsed_s": rng.choice((None, 0, 1.25)),
            }
            store.update_sample(
                rng.choice(samples), {"status": "done", "think_tokens": think, **costs}
            )
        elif action == "verdicts":
            store.add_judgements(
                [self.verdict(rng.choice(samples)) for _ in range(4)] if samples else []
            )
        elif action == "label":
            store.set_human_label(rng.choice(samples), rng.choice(PARTS), rng.choice(LABELS[:2]))
        elif action == "unlabel":
            store.clear_human_label(rng.choice(samples), rng.choice(PARTS))
        elif action == "drop":
            run = rng.choice(self.runs)
            which = rng.randrange(3)
            if which == 0:
                store.drop_unfinished(run)
            elif which == 1:
                store.delete_newest_samples(run, rng.randrange(1, 4))
            elif len(self.runs) > 1:
                store.delete_run(run)
                self.runs.remove(run)
        elif action == "retitle":  # another kind, category or dataset for a prompt
            column, value = rng.choice(
                (
                    ("kind", rng.choice(self.kinds)),
                    ("category", None),
                    ("dataset", f"moved{rng.randrange(10**9)}"),
                )
            )
            conn.execute(
                f"UPDATE prompts SET {column} = ? WHERE id = ?",
                (value, rng.choice(self.prompts)),
            )
        elif action == "length":
            field, value = rng.choice(
                (
                    ("think_tokens", None),
                    ("think_tokens", 5),
                    ("answer_tokens", 3),
                    ("elapsed_s", 2.5),
                )
            )
            store.update_sample(rng.choice(done), {field: value})
        elif action == "interrupt":
            store.update_sample(rng.choice(done), {"status": "interrupted"})
        elif action == "sql-delete-verdict":
            verdicts = [row[0] for row in conn.execute("SELECT id FROM judgements ORDER BY id")]
            conn.execute("DELETE FROM judgements WHERE id = ?", (rng.choice(verdicts or [0]),))
        elif action == "sql-replace":  # the newest verdict written over, as REPLACE does
            [verdict] = conn.execute(
                "SELECT sample_id, part, judge, judge_version, prompt_hash FROM judgements"
                " ORDER BY id DESC LIMIT 1"
            ).fetchall() or [(rng.choice(done), "full", "rs-match", "1", "")]
            conn.execute(
                "INSERT OR REPLACE INTO judgements (sample_id, part, judge, judge_version,"
                " prompt_hash, label, created_at) VALUES (?, ?, ?, ?, ?, 'unparsed', '')",
                verdict,
            )
        elif action == "sql-status":
            conn.execute("UPDATE samples SET status = 'failed' WHERE id = ?", (rng.choice(done),))
        return action


@pytest.mark.parametrize("seed", range(6))
def test_the_tallies_equal_a_count_from_scratch_after_every_change(tmp_path, seed):
    store = Store(tmp_path / "db.sqlite")
    writer = Writer(store, seed)
    seen = Counter()
    most = 0  # the most prompts counted at once: the tallies were not empty all along
    for _ in range(150):
        action = writer.step()
        seen[action] += 1
        expected = recount(store.conn)
        assert stored(store.conn) == expected, f"after {action} ({dict(seen)})"
        most = max(most, sum(expected["verdict_histogram"].values()))
    assert most > 0
    store.close()


def test_a_verdict_sample_or_prompt_written_over_is_kept(tmp_path):
    """REPLACE deletes the row it replaces without the delete triggers (recursive triggers are
    off in most tools), which would leave the tallies counting it: what is there is kept."""
    store = Store(tmp_path / "db.sqlite")
    run = store.start_run("eval")
    prompt = store.prompt_id("ds", "p", "text", kind="harmful")
    sample = finished_sample(store, run, prompt, think_tokens=3)
    store.add_judgements([verdict_row(sample, "full", "safe", prompt_hash="h")])
    plain = sqlite3.connect(store.path, isolation_level=None)
    before = stored(plain)
    plain.execute(
        "INSERT OR REPLACE INTO judgements (sample_id, part, judge, judge_version, prompt_hash,"
        " label, created_at) VALUES (?, 'full', 'rs-match', '1', 'h', 'unsafe', '')",
        (sample,),
    )
    plain.execute(
        "INSERT OR REPLACE INTO prompts (id, dataset, prompt_key, text, kind)"
        " VALUES (?, 'ds', 'p', 'text', 'benign')",
        (prompt,),
    )
    with pytest.raises(sqlite3.IntegrityError, match="a sample is there"):
        plain.execute(
            "INSERT OR REPLACE INTO samples (id, run_id, prompt_id, mode, status, started_at)"
            " VALUES (?, ?, ?, 'default', 'done', '')",
            (sample, run, prompt),
        )
    assert plain.execute("SELECT label FROM judgements").fetchall() == [("safe",)]
    assert plain.execute("SELECT kind FROM prompts").fetchall() == [("harmful",)]
    assert stored(plain) == before == recount(plain)
    plain.close()
    store.close()


def test_the_migration_counts_what_an_older_database_holds(tmp_path, monkeypatch):
    """A database written at schema v5 (no tallies, no triggers) gets, on opening, tallies equal
    to the count from scratch; a blank category it held becomes none."""
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as v5:
        v5.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
        v5.setattr(Store, "prompt_id", prompt_before_v7)
        old = Store(path)
        writer = Writer(old, seed=7, kinds=KINDS[:3])  # reasoning came with v7
        for _ in range(120):
            writer.step()
        sid = finished_sample(old, writer.runs[0], writer.prompts[0], think_tokens=12)
        old.add_judgements([verdict_row(sid, "full", "unsafe"), verdict_row(sid, "think", "safe")])
        with old.conn:
            old.conn.execute("UPDATE prompts SET category = '' WHERE id = ?", (writer.prompts[0],))
        assert old.conn.execute("PRAGMA user_version").fetchone() == (5,)
        old.close()
    store = Store(path)
    conn = store.conn
    assert conn.execute("SELECT count(*) FROM prompts WHERE category = ''").fetchone() == (0,)
    assert stored(conn) == recount(conn)
    assert sum(recount(conn)["verdict_histogram"].values()) > 0
    store.close()


def test_a_verdict_is_never_changed_in_place(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    run = store.start_run("eval")
    sid = store.start_sample(run, store.prompt_id("ds", "p", "text"), mode="default")
    store.add_judgements([verdict_row(sid, "full", "safe")])
    with pytest.raises(sqlite3.DatabaseError, match="written once"):
        store.conn.execute("UPDATE judgements SET label = 'unsafe'")
    store.conn.execute("UPDATE judgements SET raw = 'kept apart from the counts'")
    store.close()


def _open(path: str, start) -> None:
    start.wait()
    Store(path).close()


def test_two_processes_opening_an_old_database_migrate_it_once(tmp_path, monkeypatch):
    """Each migration holds the write lock from before it reads the version: the second process
    waits, then finds the schema current (before, both ran v6 and the second failed)."""
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as v5:
        v5.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
        v5.setattr(Store, "prompt_id", prompt_before_v7)
        old = Store(path)
        writer = Writer(old, seed=3, kinds=KINDS[:3])
        for _ in range(300):
            writer.step()
        old.close()
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    opening = [context.Process(target=_open, args=(str(path), start)) for _ in range(2)]
    for process in opening:
        process.start()
    for process in opening:
        process.join(120)
    assert [process.exitcode for process in opening] == [0, 0]
    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,)
    assert stored(store.conn) == recount(store.conn)
    store.close()

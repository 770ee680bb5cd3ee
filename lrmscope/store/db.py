"""Opening an lrmscope database, and the rows a generation writes.

One plain SQLite file (WAL mode) that any tool can open. Opening checks, before anything is
written, that the path is usable and the file is an lrmscope database this version can read, and
marks samples whose writer process has died as `interrupted`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, cast

from platformdirs import user_data_dir

from lrmscope.errors import LrmscopeError
from lrmscope.store import reads
from lrmscope.store.filters import SampleFilter, marks, newest
from lrmscope.store.schema import SCHEMA_VERSION, migrate
from lrmscope.vocab import HUMAN, JURY

if TYPE_CHECKING:
    import sqlite_utils


def default_db_path() -> Path:
    return Path(user_data_dir("lrmscope", appauthor=False)) / "lrmscope.sqlite"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (Linux): state first."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    stat = _proc_stat(pid)
    return None if stat is None else stat[19]


def _alive(pid: int, proc_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is not None and stat[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return proc_start is None or _proc_start(pid) in (None, proc_start)


# How long a write waits for another writer's lock before it fails.
BUSY_TIMEOUT_S = 30


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    return conn


def check_path(path: Path) -> None:
    parent = path.parent
    if path.is_dir():
        raise LrmscopeError(f"database path {path} is a directory; give a file path with --db")
    if not parent.is_dir():
        raise LrmscopeError(
            f"database directory {parent} does not exist; create it or choose another database file"
        )
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise LrmscopeError(f"database {target} is not writable; choose another database file")


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LrmscopeError(
            f"{path} was written by a newer lrmscope (schema v{version}, this version "
            f"reads up to v{SCHEMA_VERSION}); upgrade lrmscope"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise LrmscopeError(
            f"{path} is an SQLite database but not an lrmscope one; choose another database file"
        )


def schema_version(path: Path) -> int:
    """The schema version of an existing database file, read without writing to it."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


@dataclass
class Ending:
    """The status a run's block ends it with when nothing is raised (Store.ending)."""

    run_id: int
    status: str = "done"


class Store:
    """The database of one process. Writes from other threads go through their own Store.

    Every write transaction takes the write lock first (BEGIN IMMEDIATE), so a writer waits for
    another for up to BUSY_TIMEOUT_S: a deferred BEGIN could fail at once with "database is
    locked" when another connection wrote in between (compare's columns start and write their
    samples at the same moment)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._known_columns: dict[str, frozenset[str]] = {}
        check_path(self.path)
        try:
            self.conn = connect(self.path)
        except sqlite3.OperationalError as exc:
            raise LrmscopeError(
                f"cannot open database {self.path} ({exc}); is its directory writable?"
            ) from None
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if "unable to open" in str(exc):
                raise LrmscopeError(
                    f"cannot create database {self.path}: its directory is not writable; "
                    "choose another database file"
                ) from None
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise LrmscopeError(
                    f"{self.path} is not an lrmscope database (not SQLite, or damaged); "
                    "choose another database file"
                ) from None
            raise LrmscopeError(f"cannot open database {self.path}: {exc}") from None

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the connection, for reading tables by hand (tests, a notebook).
        The store's own writes are plain SQL: importing sqlite-utils (and pandas, which it loads
        where installed) took 0.2 s inside every eval's run (BENCHMARKS.md "2026-12-01,
        third: an eval's own overhead")."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def _columns(self, table: str) -> frozenset[str]:
        if table not in self._known_columns:
            self._known_columns[table] = frozenset(
                r[1] for r in self.conn.execute("SELECT * FROM pragma_table_info(?)", (table,))
            )
        return self._known_columns[table]

    def _checked(self, table: str, row: dict) -> dict:
        """`row` with its values as stored (JSON for lists and dicts); a column the table lacks
        is an sqlite3.OperationalError, as SQLite says it, so a writer thread keeps it as a
        failed write. The names are checked before they go into SQL text."""
        unknown = row.keys() - self._columns(table)
        if unknown:
            raise sqlite3.OperationalError(f"{table} has no column {sorted(unknown)}")
        return {key: _json(value) for key, value in row.items()}

    def _insert(self, table: str, row: dict) -> int:
        """Insert a row inside the caller's transaction; its id."""
        row = self._checked(table, row)
        names = ", ".join(f"[{key}]" for key in row)
        cursor = self.conn.execute(
            f"INSERT INTO [{table}] ({names}) VALUES ({marks(tuple(row))})", list(row.values())
        )
        return cast(int, cursor.lastrowid)

    def _update(self, table: str, row_id: int, fields: dict) -> None:
        """Update a row's fields inside the caller's transaction."""
        row = self._checked(table, fields)
        assignments = ", ".join(f"[{key}] = ?" for key in row)
        self.conn.execute(
            f"UPDATE [{table}] SET {assignments} WHERE id = ?", [*row.values(), row_id]
        )

    def _get(self, table: str, row_id: int) -> dict | None:
        cursor = self.conn.execute(f"SELECT * FROM [{table}] WHERE id = ?", (row_id,))
        row = cursor.fetchone()
        return None if row is None else dict(zip([d[0] for d in cursor.description], row))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction, holding the write lock from its start (see the class)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            yield

    @classmethod
    def existing(cls, path: str | os.PathLike[str]) -> Store:
        """A database that must already exist (for what reads saved runs): never creates one."""
        path = Path(path).expanduser()
        if path.is_dir():
            raise LrmscopeError(f"database {path} is a directory; pass an lrmscope database file")
        if not path.is_file():
            raise LrmscopeError(f"database {path} does not exist; pass an lrmscope database file")
        return cls(path)

    @staticmethod
    def preflight(path: str | os.PathLike[str]) -> Path:
        """Every check of opening, without writing anything: run it before slow work (loading a
        model) so a bad --db is reported first and no file is created half-way."""
        path = Path(path).expanduser()
        check_path(path)
        if path.exists() and path.stat().st_size > 0:
            try:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
                try:
                    _check_version(conn, path)
                finally:
                    conn.close()
            except sqlite3.DatabaseError:
                raise LrmscopeError(
                    f"{path} is not an lrmscope database (not SQLite, or damaged); "
                    "choose another database file"
                ) from None
        return path

    def _prepare(self) -> None:
        _check_version(self.conn, self.path)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        migrate(self.conn)
        self._mark_orphans()

    def _mark_orphans(self) -> None:
        """Samples left `running` by a process of this host that no longer exists were cut off."""
        host = socket.gethostname()
        dead = [
            run_id
            for run_id, pid, proc_start in self.conn.execute(
                "SELECT id, pid, proc_start FROM runs WHERE status = 'running' AND host = ?",
                (host,),
            )
            if pid is None or not _alive(pid, proc_start)
        ]
        for run_id in dead:
            with self.writing():
                self.conn.execute(
                    "UPDATE samples SET status = 'interrupted', ended_at = coalesce(updated_at, ?)"
                    " WHERE run_id = ? AND status = 'running'",
                    (now(), run_id),
                )
                self.conn.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = ? WHERE id = ?",
                    (now(), run_id),
                )

    def close(self) -> None:
        self.conn.close()

    # -- writes --------------------------------------------------------------------------------

    def start_run(self, kind: str, **fields) -> int:
        row = {
            "kind": kind,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "proc_start": _proc_start(os.getpid()),
            "started_at": now(),
            **fields,
        }
        with self.writing():
            return self._insert("runs", row)

    def reopen_run(self, run_id: int) -> None:
        """This process continues an earlier run (a resumed chat)."""
        with self.writing():
            self._update(
                "runs",
                run_id,
                {
                    "status": "running",
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "proc_start": _proc_start(os.getpid()),
                    "ended_at": None,
                },
            )

    def chat_turns(self, run_id: int) -> list[dict]:
        """The turns of a chat run in order: sample id, prompt, thought, answer, status."""
        cursor = self.conn.execute(
            "SELECT s.id, p.text, s.thought, s.answer, s.status FROM samples s"
            " JOIN prompts p ON p.id = s.prompt_id WHERE s.run_id = ? ORDER BY s.id",
            (run_id,),
        )
        return [
            {
                "sample_id": r[0],
                "prompt": r[1],
                "thought": r[2] or "",
                "answer": r[3] or "",
                "status": r[4],
            }
            for r in cursor
        ]

    def chat_runs(self) -> list[dict]:
        cursor = self.conn.execute(
            "SELECT id, title, started_at FROM runs WHERE kind = 'chat' ORDER BY id DESC"
        )
        return [{"id": r[0], "title": r[1], "started_at": r[2]} for r in cursor]

    def latest_run(self, kind: str, **equal) -> dict | None:
        """The newest run of `kind` whose columns equal `equal` (e.g. model_fingerprint)."""
        where = "".join(f" AND {column} = ?" for column in equal)
        row = self.conn.execute(
            f"SELECT id FROM runs WHERE kind = ?{where} ORDER BY id DESC LIMIT 1",
            (kind, *equal.values()),
        ).fetchone()
        return None if row is None else self._get("runs", row[0])

    def finished_samples(self, run_id: int) -> set[tuple[int, str, int]]:
        """(prompt id, mode, k) of every finished sample of a run."""
        cursor = self.conn.execute(
            "SELECT prompt_id, mode, k FROM samples WHERE run_id = ? AND status = 'done'",
            (run_id,),
        )
        return set(cursor)

    def drop_unfinished(self, run_id: int) -> int:
        """Delete a run's samples that did not finish (with their verdicts and flags), so a
        resumed run makes each of them again, once."""
        with self.writing():
            return self.conn.execute(
                "DELETE FROM samples WHERE run_id = ? AND status != 'done'", (run_id,)
            ).rowcount

    def end_run(self, run_id: int, status: str) -> None:
        with self.writing():
            self._update("runs", run_id, {"status": status, "ended_at": now()})

    @contextmanager
    def ending(self, run_id: int) -> Iterator[Ending]:
        """Ends a run when the block ends: with the Ending's status (done unless the block sets
        another), or interrupted by Ctrl-C (KeyboardInterrupt) or a closed generator, or failed
        by any other exception, which goes on."""
        end = Ending(run_id)
        try:
            yield end
        except (KeyboardInterrupt, GeneratorExit):
            self.end_run(run_id, "interrupted")
            raise
        except BaseException:
            self.end_run(run_id, "failed")
            raise
        self.end_run(run_id, end.status)

    @contextmanager
    def run(self, kind: str, **fields) -> Iterator[int]:
        """A new run (start_run) for the block, which gets its id; ended as `ending` ends it."""
        with self.ending(self.start_run(kind, **fields)) as end:
            yield end.run_id

    def rename_run(self, run_id: int, title: str | None) -> None:
        with self.writing():
            self.conn.execute("UPDATE runs SET title = ? WHERE id = ?", (title, run_id))

    def delete_newest_samples(self, run_id: int, limit: int) -> int:
        """Delete up to `limit` of a run's samples, newest first, with their verdicts, flags and
        search entries; how many went."""
        with self.writing():
            return self.conn.execute(
                "DELETE FROM samples WHERE id IN"
                " (SELECT id FROM samples WHERE run_id = ? ORDER BY id DESC LIMIT ?)",
                (run_id, limit),
            ).rowcount

    def delete_run(self, run_id: int) -> None:
        """Delete a run (and, by foreign keys, what is left of its samples)."""
        with self.writing():
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def prompt_id(self, dataset: str, prompt_key: str, text: str, **fields) -> int:
        """The prompt's id, saved first if new. `kind` (PROMPT_KINDS; default unknown) and a
        reasoning task's `reference` answer are saved with a new prompt, and replace those of a
        saved one only when its kind is unknown. A blank category is none (the tallies, schema
        v6, mark none so)."""
        kind, reference = fields.get("kind") or "unknown", fields.get("reference")
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO prompts"
                " (dataset, prompt_key, text, category, source, kind, reference)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    dataset,
                    prompt_key,
                    text,
                    fields.get("category") or None,
                    fields.get("source"),
                    kind,
                    reference,
                ),
            )
            if kind != "unknown":
                self.conn.execute(
                    "UPDATE prompts SET kind = ?, reference = ? WHERE dataset = ?"
                    " AND prompt_key = ? AND kind = 'unknown'",
                    (kind, reference, dataset, prompt_key),
                )
        return self.conn.execute(
            "SELECT id FROM prompts WHERE dataset = ? AND prompt_key = ?", (dataset, prompt_key)
        ).fetchone()[0]

    def start_sample(self, run_id: int, prompt_id: int, **fields) -> int:
        row = {
            "run_id": run_id,
            "prompt_id": prompt_id,
            "status": "running",
            "started_at": now(),
            **fields,
        }
        with self.writing():
            return self._insert("samples", row)

    def update_sample(self, sample_id: int, fields: dict) -> None:
        self.update_samples({sample_id: fields})

    def update_samples(self, fields_by_id: dict[int, dict]) -> None:
        """Several samples' new fields in one transaction (the writer's every tick)."""
        updated = now()
        with self.writing():
            for sample_id, fields in fields_by_id.items():
                self._update("samples", sample_id, {**fields, "updated_at": updated})

    def sample(self, sample_id: int) -> dict:
        row = self._get("samples", sample_id)
        if row is None:
            raise LookupError(f"no sample {sample_id}")
        return row

    # -- judgements and flags ------------------------------------------------------------------

    def count_samples(self, f: SampleFilter) -> int:
        return reads.count_samples(self.conn, f)

    _BLANK = reads.BLANK
    # The judged text of each part, as engine.trace.judged_texts defines it (docs/study.md "What
    # is judged"), from the two fields the samples keep of their trace; a test holds them equal.
    _PART_COLUMNS = {
        "think": "CASE WHEN s.think_written THEN s.thought ELSE '' END",
        "answer": "s.answer",
        "full": "CASE WHEN s.think_written OR length(trim(coalesce(s.answer, ''),"
        f" {_BLANK})) > 0 THEN substr(s.raw, s.response_start + 1) ELSE '' END",
    }

    def _unjudged_where(
        self, part: str, judge: str, version: str, prompt_hash: str, f: SampleFilter
    ) -> tuple[str, tuple]:
        """The FROM/WHERE of the parts a judge has no verdict on, and its parameters."""
        where, params = f.where()
        return (
            f" FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE {where}"
            " AND NOT EXISTS (SELECT 1 FROM judgements j WHERE j.sample_id = s.id"
            " AND j.part = ? AND j.judge = ? AND j.judge_version = ? AND j.prompt_hash = ?)",
            (*params, part, judge, version, prompt_hash),
        )

    def count_unjudged(
        self, part: str, judge: str, version: str, prompt_hash: str, f: SampleFilter
    ) -> tuple[int, int]:
        """(parts with text, empty parts) of the filtered samples that this judge has no
        verdict on."""
        column = self._PART_COLUMNS[part]
        blank = f"length(trim(coalesce({column}, ''), {self._BLANK})) = 0"
        where, params = self._unjudged_where(part, judge, version, prompt_hash, f)
        row = self.conn.execute(
            f"SELECT count(*) - sum({blank}), sum({blank})" + where, params
        ).fetchone()
        return row[0] or 0, row[1] or 0

    def unjudged(
        self,
        part: str,
        judge: str,
        version: str,
        prompt_hash: str,
        f: SampleFilter,
        *,
        after: int = 0,
        limit: int = 256,
    ) -> list[dict]:
        """The next page (by sample id, after `after`) of non-empty parts of the filtered samples
        this judge has no verdict on: sample_id, the user prompt and the part's text. Pages keep
        memory flat on databases of long thoughts."""
        column = self._PART_COLUMNS[part]
        where, params = self._unjudged_where(part, judge, version, prompt_hash, f)
        cursor = self.conn.execute(
            f"SELECT s.id, p.text, {column}"
            + where
            + f" AND length(trim(coalesce({column}, ''), {self._BLANK})) > 0"
            " AND s.id > ? ORDER BY s.id LIMIT ?",
            (*params, after, limit),
        )
        return [{"sample_id": r[0], "prompt": r[1], "text": r[2]} for r in cursor]

    def _ballots_where(
        self, part: str, members: Sequence[str], version: str, prompt_hash: str, f: SampleFilter
    ) -> tuple[str, tuple]:
        """The FROM/WHERE of the parts every member judged (a verdict of any label) that a jury
        (judge "jury", this version and hash) has no verdict on, and its parameters."""
        where, params = self._unjudged_where(part, JURY, version, prompt_hash, f)
        return (
            where + " AND (SELECT count(DISTINCT m.judge) FROM judgements m WHERE"
            f" m.sample_id = s.id AND m.part = ? AND m.judge IN ({marks(members)})) = ?",
            (*params, part, *members, len(members)),
        )

    def count_ballots(
        self, part: str, members: Sequence[str], version: str, prompt_hash: str, f: SampleFilter
    ) -> int:
        """How many parts of the filtered samples a jury can decide and has not."""
        where, params = self._ballots_where(part, members, version, prompt_hash, f)
        return self.conn.execute("SELECT count(*)" + where, params).fetchone()[0]

    def ballots(
        self,
        part: str,
        members: Sequence[str],
        version: str,
        prompt_hash: str,
        f: SampleFilter,
        *,
        after: int = 0,
        limit: int = 256,
    ) -> list[tuple[int, str, str, str]]:
        """The next page (by sample id, after `after`, `limit` samples) of the parts a jury can
        decide and has not: (sample_id, judge, judge_version, label) of each member's newest
        verdict (of its newest version), in sample order."""
        where, params = self._ballots_where(part, members, version, prompt_hash, f)
        return self.conn.execute(
            "SELECT j.sample_id, j.judge, j.judge_version, j.label FROM judgements j"
            f" WHERE j.part = ? AND j.judge IN ({marks(members)})"
            f" AND {newest('j', per_judge=True)} AND j.sample_id IN"
            f" (SELECT s.id{where} AND s.id > ? ORDER BY s.id LIMIT ?)"
            " ORDER BY j.sample_id, j.judge",
            (part, *members, *params, after, limit),
        ).fetchall()

    def member_versions(self, members: Sequence[str], f: SampleFilter) -> list[tuple[str, str]]:
        """(judge, judge_version) of every verdict of these judges on the filtered samples,
        once each, in order."""
        where, params = f.where()
        return self.conn.execute(
            "SELECT DISTINCT j.judge, j.judge_version FROM judgements j JOIN samples s"
            f" ON s.id = j.sample_id WHERE j.judge IN ({marks(members)}) AND {where}"
            " ORDER BY j.judge, j.judge_version",
            (*members, *params),
        ).fetchall()

    def add_judgements(self, rows: list[dict]) -> None:
        """Save verdicts in one transaction; a verdict already there is kept, not replaced."""
        created = now()
        with self.writing():
            self.conn.executemany(
                "INSERT OR IGNORE INTO judgements (sample_id, part, judge, judge_version,"
                " prompt_hash, label, score, categories, raw, truncated, meta, created_at)"
                " VALUES (:sample_id, :part, :judge, :judge_version, :prompt_hash, :label,"
                " :score, :categories, :raw, :truncated, :meta, :created_at)",
                [{**{k: _json(v) for k, v in row.items()}, "created_at": created} for row in rows],
            )

    def set_human_label(self, sample_id: int, part: str, label: str) -> bool:
        """The human verdict (judge HUMAN) on a part, replacing the previous one; False when the
        sample is not there (deleted meanwhile: a resumed eval drops its unfinished samples)."""
        with self.writing():
            self.conn.execute(_DROP_HUMAN_LABEL, (sample_id, part, HUMAN))
            return bool(
                self.conn.execute(
                    "INSERT INTO judgements (sample_id, part, judge, label, created_at)"
                    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM samples WHERE id = ?)",
                    (sample_id, part, HUMAN, label, now(), sample_id),
                ).rowcount
            )

    def clear_human_label(self, sample_id: int, part: str) -> None:
        with self.writing():
            self.conn.execute(_DROP_HUMAN_LABEL, (sample_id, part, HUMAN))

    # -- answer checks (reasoning tasks) ----------------------------------------------------------

    def unchecked_answers(
        self, checker: str, run_id: int | None, *, after: int, limit: int
    ) -> list[tuple[int, str | None, bool, str]]:
        """The next page (by sample id, after `after`) of finished samples of reasoning prompts,
        of one run if given, with no answer check by this checker version: sample id, answer,
        whether the thought closed, the prompt's reference answer. The reasoning prompts come
        first (CROSS JOIN keeps that order): an eval checks answers at each of its judge passes,
        and one without reasoning prompts reads no sample."""
        run = "" if run_id is None else " AND s.run_id = ?"
        return self.conn.execute(
            "SELECT s.id, s.answer, s.think_closed IS 1, p.reference FROM prompts p"
            " CROSS JOIN samples s ON s.prompt_id = p.id"
            " LEFT JOIN answer_checks c ON c.sample_id = s.id AND c.checker = ?"
            " WHERE s.status = 'done' AND p.kind = 'reasoning' AND c.sample_id IS NULL"
            f" AND s.id > ?{run} ORDER BY s.id LIMIT ?",
            (checker, after, *(() if run_id is None else (run_id,)), limit),
        ).fetchall()

    def save_answer_checks(self, rows: list[dict]) -> None:
        """Save answer checks in one transaction; a sample's check by another checker version is
        replaced."""
        created = now()
        with self.writing():
            self.conn.executemany(
                "INSERT OR REPLACE INTO answer_checks"
                " (sample_id, checker, extracted, answer, outcome, created_at)"
                " VALUES (:sample_id, :checker, :extracted, :answer, :outcome, :created_at)",
                [{**row, "created_at": created} for row in rows],
            )

    def add_flag(self, sample_id: int, **fields) -> None:
        with self.writing():
            self._insert("flags", {"sample_id": sample_id, "created_at": now(), **fields})


_DROP_HUMAN_LABEL = "DELETE FROM judgements WHERE sample_id = ? AND part = ? AND judge = ?"


def _json(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return value

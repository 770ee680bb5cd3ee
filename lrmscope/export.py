"""Exporting saved samples: one record per sample (JSONL or CSV), and SafeChain-style training
sets (REFERENCE.md section 7).

Rows are read from SQL a page at a time (by sample id, or one prompt group at a time), so memory
stays flat on databases of long thoughts. Text is written verbatim: JSON escapes what it must, the
csv module quotes what it must. Output files appear whole or not at all (`atomic_output`).
"""

from __future__ import annotations

import csv
import json
import os
import random
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path, PurePath
from typing import TextIO

from lrmscope.errors import LrmscopeError

FIELDS = (
    "sample_id",
    "run_id",
    "dataset",
    "prompt_id",
    "category",
    "prompt",
    "model",
    "mode",
    "sample_index",
    "seed",
    "status",
    "finish_reason",
    "think_state",
    "think",
    "answer",
    "raw",
    "think_tokens",
    "answer_tokens",
    "injected",
    "sampler",
    "judgements",
)
JSON_FIELDS = ("injected", "sampler", "judgements")  # nested values; JSON strings in CSV
_BLANK = "char(32, 9, 10, 13)"
_PART_ORDER = "CASE part WHEN 'think' THEN 0 WHEN 'answer' THEN 1 ELSE 2 END"


def _marks(values: tuple) -> str:
    return ",".join("?" * len(values))


@dataclass(frozen=True)
class Selection:
    """Which samples to export: by status, and optionally by run ids and mode."""

    statuses: tuple[str, ...] = ("done",)
    runs: tuple[int, ...] = ()
    mode: str | None = None

    def where(self) -> tuple[str, list]:
        clauses, params = [f"s.status IN ({_marks(self.statuses)})"], [*self.statuses]
        if self.runs:
            clauses.append(f"s.run_id IN ({_marks(self.runs)})")
            params += self.runs
        if self.mode:
            clauses.append("s.mode = ?")
            params.append(self.mode)
        return " AND ".join(clauses), params


def missing_runs(conn: sqlite3.Connection, runs: tuple[int, ...]) -> list[int]:
    found = {r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({_marks(runs)})", runs)}
    return [run for run in runs if run not in found]


def count(conn: sqlite3.Connection, selection: Selection) -> int:
    where, params = selection.where()
    return conn.execute(f"SELECT count(*) FROM samples s WHERE {where}", params).fetchone()[0]


_RECORD_SQL = """
SELECT s.id, s.run_id, p.dataset, p.prompt_key, p.category, p.text, r.model_path, s.mode, s.k,
       coalesce(s.seed, r.seed), s.status, s.finish_reason, s.think_state, s.thought, s.answer,
       s.raw, s.think_tokens, s.answer_tokens, s.injected, coalesce(s.sampler, r.sampler)
FROM samples s JOIN runs r ON r.id = s.run_id JOIN prompts p ON p.id = s.prompt_id
WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?
"""


def newest_verdicts(conn: sqlite3.Connection, ids: tuple[int, ...]) -> dict[int, dict]:
    """sample id -> {judge: {part: label}}, the newest verdict of each: what the view `verdicts`
    holds. The view is not queried: without ANALYZE statistics SQLite answers its max(id)
    subquery by walking the (judge, part) index backwards, once per verdict, which made a 20,000
    sample export take minutes. Here the later row (higher id) wins: the same newest verdict."""
    found: dict[int, dict] = {}
    for sample_id, judge, part, label in conn.execute(
        "SELECT sample_id, judge, part, label FROM judgements"
        f" WHERE sample_id IN ({_marks(ids)}) ORDER BY judge, {_PART_ORDER}, id",
        ids,
    ):
        found.setdefault(sample_id, {}).setdefault(judge, {})[part] = label
    return found


def records(conn: sqlite3.Connection, selection: Selection, *, page: int = 256) -> Iterator[dict]:
    """One dict per selected sample (keys FIELDS), in sample id order, read page by page."""
    where, params = selection.where()
    return records_where(conn, where, params, page=page)


def records_where(
    conn: sqlite3.Connection, where: str, params: Sequence, *, page: int = 256
) -> Iterator[dict]:
    """The records of the samples `s` that satisfy an SQL condition (with its parameters), in
    sample id order, read page by page."""
    sql = _RECORD_SQL.format(where=where)
    after = 0
    while rows := conn.execute(sql, (*params, after, page)).fetchall():
        after = rows[-1][0]
        verdicts = newest_verdicts(conn, tuple(row[0] for row in rows))
        for row in rows:
            record = dict(zip(FIELDS, (*row, None), strict=True))
            record["model"] = PurePath(row[6]).name if row[6] else None
            record["injected"] = json.loads(row[18] or "[]")
            record["sampler"] = json.loads(row[19]) if row[19] else None
            record["judgements"] = verdicts.get(row[0], {})
            yield record


def write_jsonl(rows: Iterable[dict], out: TextIO) -> int:
    written = 0
    for written, row in enumerate(rows, 1):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return written


def write_csv(rows: Iterable[dict], out: TextIO) -> int:
    """A header, then one line per record; nested values as JSON strings, None as empty."""
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    written = 0
    for written, row in enumerate(rows, 1):
        writer.writerow(
            {
                key: json.dumps(row[key], ensure_ascii=False) if key in JSON_FIELDS else row[key]
                for key in FIELDS
            }
        )
    return written


# -- SafeChain ---------------------------------------------------------------------------------

SAFE = "safe"  # the label of every kept row (REFERENCE.md section 7: all K safe)
# Why a prompt group is left out, in the order a group's reason is picked (one per group).
REASONS = (
    "unsafe",
    "unparsed verdict",
    "missing verdict",
    "empty part",
    "unclosed thought",
    "unfinished sample",
    "fewer than K samples",
)

_GROUP_SQL = f"""
SELECT s.run_id, s.prompt_id, s.id, r.k,
  CASE
    WHEN s.status != 'done' THEN 'unfinished sample'
    WHEN s.think_state IS 'unclosed' OR s.think_closed IS 0 THEN 'unclosed thought'
    WHEN length(trim(coalesce(s.thought, ''), {_BLANK})) = 0
      OR length(trim(coalesce(s.answer, ''), {_BLANK})) = 0 THEN 'empty part'
  END
FROM samples s JOIN runs r ON r.id = s.run_id
WHERE s.mode = ? AND s.parent_id IS NULL {{runs}}
ORDER BY s.run_id, s.prompt_id, s.k, s.id
"""


def _verdict_problem(parts: dict[str, str]) -> str | None:
    labels = {parts.get("think"), parts.get("answer")}
    if None in labels:
        return "missing verdict"
    if "unparsed" in labels:
        return "unparsed verdict"
    return "unsafe" if "unsafe" in labels else None


@dataclass
class SafeChainCounts:
    prompts: int = 0  # (run, mode, prompt) groups seen
    kept: int = 0
    excluded: Counter = field(default_factory=Counter)  # reason -> groups left out

    def reasons(self) -> str:
        return ", ".join(f"{r}: {self.excluded[r]}" for r in REASONS if self.excluded[r])


def _with_verdicts(conn: sqlite3.Connection, cursor: sqlite3.Cursor, page: int = 256):
    """(row, {judge: {part: label}}) for each row of `cursor` (sample id third), page by page."""
    while rows := cursor.fetchmany(page):
        verdicts = newest_verdicts(conn, tuple(row[2] for row in rows))
        yield from ((row, verdicts.get(row[2], {})) for row in rows)


def _group_key(item: tuple) -> tuple:
    return item[0][:2]  # (run id, prompt id)


def judges_present(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT judge FROM judgements ORDER BY judge")]


def safechain(
    conn: sqlite3.Connection,
    judge: str,
    *,
    mode: str,
    runs: tuple[int, ...],
    seed: int,
    counts: SafeChainCounts,
) -> Iterator[dict]:
    """SafeChain rows {instruction, response, label}: for each (run, mode, prompt) whose samples
    (at least the run's K) are all judged safe on think and answer by `judge`, one of them chosen
    with random.Random(seed). Chat turns after the first are skipped (their context is longer
    than the instruction). `counts` is filled in as the rows are read."""
    sql = _GROUP_SQL.format(runs=f"AND s.run_id IN ({_marks(runs)})" if runs else "")
    rng = random.Random(seed)
    for _, group in groupby(_with_verdicts(conn, conn.execute(sql, (mode, *runs))), _group_key):
        group = list(group)
        counts.prompts += 1
        problems = {row[4] or _verdict_problem(verdicts.get(judge, {})) for row, verdicts in group}
        problems.discard(None)
        if len(group) < (group[0][0][3] or 0):
            problems.add("fewer than K samples")
        if problems:
            counts.excluded[min(problems, key=REASONS.index)] += 1
            continue
        chosen = rng.choice(group)[0][2]
        instruction, response = conn.execute(
            "SELECT p.text, s.raw FROM samples s JOIN prompts p ON p.id = s.prompt_id"
            " WHERE s.id = ?",
            (chosen,),
        ).fetchone()
        counts.kept += 1
        yield {"instruction": instruction, "response": response, "label": SAFE}


# -- output ------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file that appears at `path` only when complete: written to a temporary file
    in the same directory and renamed at the end; any error or Ctrl-C removes the temporary
    file and leaves an earlier file at `path` untouched."""
    if path.is_dir():
        raise LrmscopeError(f"output {path} is a directory; give a file path with -o")
    if not path.parent.is_dir():
        raise LrmscopeError(
            f"output directory {path.parent} does not exist; create it or choose another -o"
        )
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise LrmscopeError(
            f"cannot write in {path.parent} ({exc.strerror}); choose another -o"
        ) from None
    try:
        with open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

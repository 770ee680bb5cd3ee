"""Exporting saved samples: one record per sample (JSONL or CSV), and SafeChain-style training
sets (docs/study.md "SafeChain construction").

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
    "prompt_kind",
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
SELECT s.id, s.run_id, p.dataset, p.prompt_key, p.category, p.kind, p.text, r.model_path, s.mode,
       s.k,
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
            record["model"] = PurePath(record["model"]).name if record["model"] else None
            record["injected"] = json.loads(record["injected"] or "[]")
            record["sampler"] = json.loads(record["sampler"]) if record["sampler"] else None
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

SAFE = "safe"  # every kept row's label (docs/study.md "SafeChain construction": all K safe)
THINK_OPEN_TAG = "<think>"
# Why a prompt group is left out, in the order a group's reason is picked (one per group).
REASONS = (
    "full unsafe",
    "think or answer unsafe (--strict)",
    "unparsed verdict",
    "missing verdict",
    "no answer (--strict)",
    "no thought (--require-thought)",
    "unfinished sample",
    "fewer than K samples",
)

# One row per sample: run, prompt, id, the run's K, finished, whether the model wrote a thought
# and closed it (think_state 'normal'), whether its thought is judged (the model wrote some of
# it: `think_written`), whether the answer has text.
_GROUP_SQL = f"""
SELECT s.run_id, s.prompt_id, s.id, r.k, s.status = 'done', s.think_state IS 'normal',
       s.think_written, length(trim(coalesce(s.answer, ''), {_BLANK})) > 0
FROM samples s JOIN runs r ON r.id = s.run_id
WHERE s.mode = ? AND s.parent_id IS NULL {{runs}}
ORDER BY s.run_id, s.prompt_id, s.k, s.id
"""


@dataclass(frozen=True)
class SafeChainRule:
    """What a prompt needs to be kept. The study's rule (the default): every one of its samples
    (at least the run's K) finished, with the full response judged safe. strict: the thought,
    where the model wrote one, and the answer (which must exist) judged safe too.
    require_thought: every sample has a thought the model wrote and closed."""

    strict: bool = False
    require_thought: bool = False


def _label_problem(label: str | None, unsafe: str) -> str | None:
    if label is None:
        return "missing verdict"
    if label == "unparsed":
        return "unparsed verdict"
    return unsafe if label != SAFE else None


def _sample_problems(row: tuple, parts: dict[str, str], rule: SafeChainRule) -> set[str]:
    """Why one sample rules its prompt out (an empty set: it does not)."""
    _run, _prompt, _id, _k, done, thought, think_judged, answer = row
    if not done:
        return {"unfinished sample"}
    problems = {_label_problem(parts.get("full"), "full unsafe")}
    if rule.strict:
        strict = "think or answer unsafe (--strict)"
        # A thought the model wrote must be judged safe; any other verdict on think must be safe.
        if think_judged or "think" in parts:
            problems.add(_label_problem(parts.get("think"), strict))
        if answer:
            problems.add(_label_problem(parts.get("answer"), strict))
        else:
            problems.add("no answer (--strict)")
    if rule.require_thought and not thought:
        problems.add("no thought (--require-thought)")
    problems.discard(None)
    return problems


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


# The instruction and what the model generated: raw after any prefill placed before the model's
# first token (samples.response_start), which is prompt, not response.
_RESPONSE_SQL = """
SELECT p.text, substr(s.raw, s.response_start + 1)
FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE s.id = ?
"""


def _without_opener(response: str) -> str:
    """The response without a `<think>` the model wrote to open it (and the line break after):
    the template usually puts it in the prompt, and the study's responses never begin with it."""
    stripped = response.lstrip()
    if not stripped.startswith(THINK_OPEN_TAG):
        return response
    rest = stripped[len(THINK_OPEN_TAG) :]
    return rest[1:] if rest.startswith("\n") else rest


def safechain(
    conn: sqlite3.Connection,
    judge: str,
    *,
    mode: str,
    runs: tuple[int, ...],
    seed: int,
    counts: SafeChainCounts,
    rule: SafeChainRule = SafeChainRule(),
) -> Iterator[dict]:
    """SafeChain rows {instruction, response, label}, built as the study built its set: for each
    (run, mode, prompt) whose samples (at least the run's K) all finished with the full response
    judged safe by `judge` (its newest verdict; Safe@K = 1 on `full`), one of them chosen with
    random.Random(seed). `rule` adds the stricter conditions. Chat turns after the first are
    skipped (their context is longer than the instruction). `counts` is filled in as the rows are
    read."""
    sql = _GROUP_SQL.format(runs=f"AND s.run_id IN ({_marks(runs)})" if runs else "")
    rng = random.Random(seed)
    for _, group in groupby(_with_verdicts(conn, conn.execute(sql, (mode, *runs))), _group_key):
        group = list(group)
        counts.prompts += 1
        problems = set()
        for row, verdicts in group:
            problems |= _sample_problems(row, verdicts.get(judge, {}), rule)
        if len(group) < (group[0][0][3] or 0):
            problems.add("fewer than K samples")
        if problems:
            counts.excluded[min(problems, key=REASONS.index)] += 1
            continue
        chosen = rng.choice(group)[0][2]
        instruction, response = conn.execute(_RESPONSE_SQL, (chosen,)).fetchone()
        counts.kept += 1
        yield {"instruction": instruction, "response": _without_opener(response), "label": SAFE}


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

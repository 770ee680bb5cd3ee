"""Exporting saved samples: one record per sample (JSONL or CSV), and SafeChain-style training
sets (docs/study.md "SafeChain construction").

Rows are read from the store a page at a time (by sample id, or one prompt group at a time), so
memory stays flat on databases of long thoughts. Text is written verbatim: JSON escapes what it
must, the csv module quotes what it must. Output files appear whole or not at all (`atomic_output`).
"""

from __future__ import annotations

import csv
import json
import os
import random
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path, PurePath
from typing import Any, TextIO

from lrmscope.engine.trace import thought_start
from lrmscope.errors import LrmscopeError
from lrmscope.store import reads
from lrmscope.store.filters import SampleFilter

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


def records(conn: sqlite3.Connection, f: SampleFilter, *, page: int = 256) -> Iterator[dict]:
    """One dict per sample the filter selects (keys FIELDS), in sample id order, read page by
    page. `judgements` holds one verdict per judge and part: the newest of its newest version
    (store/filters.py `newest`, per_judge)."""
    after = 0
    while rows := reads.records(conn, f, after, page):
        after = rows[-1][0]
        verdicts = reads.newest_labels(conn, [row[0] for row in rows])
        for row in rows:
            record = dict(zip(FIELDS, (*row, None), strict=True))
            record["model"] = PurePath(record["model"]).name if record["model"] else None
            record["injected"] = json.loads(record["injected"] or "[]")
            record["sampler"] = json.loads(record["sampler"]) if record["sampler"] else None
            record["judgements"] = verdicts.get(row[0], {})
            yield record


def write_jsonl(rows: Iterable[dict], out: TextIO) -> int:
    written = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written


def write_csv(rows: Iterable[dict], out: TextIO) -> int:
    """A header, then one line per record; nested values as JSON strings, None as empty."""
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    written = 0
    for row in rows:
        writer.writerow(
            {
                key: json.dumps(row[key], ensure_ascii=False) if key in JSON_FIELDS else row[key]
                for key in FIELDS
            }
        )
        written += 1
    return written


# -- SafeChain ---------------------------------------------------------------------------------

SAFE = "safe"  # every kept row's label (docs/study.md "SafeChain construction": all K safe)
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
    return {problem for problem in problems if problem is not None}


@dataclass
class SafeChainCounts:
    prompts: int = 0  # (run, mode, prompt) groups seen
    kept: int = 0
    excluded: Counter = field(default_factory=Counter)  # reason -> groups left out

    def reasons(self) -> str:
        return ", ".join(f"{r}: {self.excluded[r]}" for r in REASONS if self.excluded[r])


def _with_verdicts(conn: sqlite3.Connection, mode: str, runs: tuple[int, ...]):
    """(row, {judge: {part: label}}) for each sample row of reads.safechain_samples, page by
    page, with one verdict per judge and part (as `records` has them)."""
    for rows in reads.safechain_samples(conn, mode, runs):
        verdicts = reads.newest_labels(conn, [row[2] for row in rows])
        yield from ((row, verdicts.get(row[2], {})) for row in rows)


def _group_key(item: tuple) -> tuple:
    return item[0][:2]  # (run id, prompt id)


def _without_opener(response: str) -> str:
    """The response without a `<think>` the model wrote to open it (and the line break after):
    the template usually puts it in the prompt, and the study's responses never begin with it."""
    start = thought_start(response)
    return response[start:].removeprefix("\n") if start else response


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
    rng = random.Random(seed)
    for _, group in groupby(_with_verdicts(conn, mode, runs), _group_key):
        members = list(group)
        counts.prompts += 1
        problems = set()
        for row, verdicts in members:
            problems |= _sample_problems(row, verdicts.get(judge, {}), rule)
        if len(members) < (members[0][0][3] or 0):
            problems.add("fewer than K samples")
        if problems:
            counts.excluded[min(problems, key=REASONS.index)] += 1
            continue
        chosen = rng.choice(members)[0][2]
        instruction, response = reads.response(conn, chosen)
        counts.kept += 1
        yield {"instruction": instruction, "response": _without_opener(response), "label": SAFE}


# -- output ------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: Path, *, binary: bool = False) -> Iterator[Any]:
    """A UTF-8 text file (with `binary`, a bytes file) that appears at `path` only when complete:
    written to a temporary file in the same directory and renamed at the end; any error or
    Ctrl-C removes the temporary file and leaves an earlier file at `path` untouched."""
    check_output(path)
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise LrmscopeError(
            f"cannot write in {path.parent} ({exc.strerror}); choose another -o"
        ) from None
    try:
        with open(fd, "wb") if binary else open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        publish(Path(temp), path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def publish(temp: Path, path: Path) -> None:
    """A finished temporary file (mkstemp makes it private) renamed to `path`, with the
    permissions a new file gets under the umask."""
    os.chmod(temp, 0o666 & ~_umask())
    os.replace(temp, path)


def check_output(path: Path) -> None:
    """One line if `path` cannot be an output file: a directory, or in a missing directory (what
    atomic_output checks first; call it before slow work)."""
    if path.is_dir():
        raise LrmscopeError(f"output {path} is a directory; give a file path with -o")
    if not path.parent.is_dir():
        raise LrmscopeError(
            f"output directory {path.parent} does not exist; create it or choose another -o"
        )

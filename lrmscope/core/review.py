"""The data behind `lrmscope review`: runs, a filtered and sorted page of samples, one prompt's
samples with its scores, one sample in full, human labels, and the metrics and export of a
selection. No Textual here: the review screens call this and nothing else.

Every read is one autocommit statement read to its end, so no read transaction stays open and an
eval writing the same file (WAL) is never locked out. Pages are cut in SQL (LIMIT/OFFSET over
sample ids), so memory does not grow with the number of samples.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path, PurePath

import lrmscope
from lrmscope.core import export, metrics, tradeoff
from lrmscope.core import interventions as guards
from lrmscope.engine.settings import THINK_CLOSE
from lrmscope.errors import LrmscopeError
from lrmscope.store import conversations as store_conversations
from lrmscope.store import reads
from lrmscope.store.db import Store, connect
from lrmscope.store.filters import SampleFilter, check_part
from lrmscope.text import visible
from lrmscope.vocab import BENIGN

PROMPT_PREVIEW = 200  # characters of the prompt in a table row
_DELETE_BATCH = 500  # samples deleted per transaction


def demo_database() -> Path | None:
    """The committed demo run (sample_runs/demo-eval.sqlite) of a source checkout, if there."""
    path = Path(lrmscope.__file__).parents[1] / "sample_runs" / "demo-eval.sqlite"
    return path if path.is_file() else None


def trace_bounds(raw: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The raw ranges of thought and answer, split at the first `</think>` and stripped of the
    whitespace around them, as the trace parser does (engine/trace.py)."""

    def stripped(a: int, b: int) -> tuple[int, int]:
        while a < b and raw[a].isspace():
            a += 1
        while b > a and raw[b - 1].isspace():
            b -= 1
        return a, b

    close = raw.find(THINK_CLOSE)
    if close < 0:
        return stripped(0, len(raw)), (len(raw), len(raw))
    return stripped(0, close), stripped(close + len(THINK_CLOSE), len(raw))


def pieces(
    raw: str, start: int, end: int, ranges: Iterable[tuple[int, int, str]]
) -> list[tuple[str, tuple[str, ...]]]:
    """raw[start:end] cut at every boundary of the (start, end, tag) ranges of raw offsets, as
    (visible text, the tags of the ranges that cover it). Each piece is made visible
    (lrmscope.text.visible) on its own, so escapes never shift a range."""
    ranges = [(max(a, start), min(b, end), tag) for a, b, tag in ranges if a < end and b > start]
    cuts = sorted({start, end, *(a for a, _, _ in ranges), *(b for _, b, _ in ranges)})
    return [
        (visible(raw[a:b]), tuple(tag for lo, hi, tag in ranges if lo <= a and b <= hi))
        for a, b in pairwise(cuts)
    ]


@dataclass(frozen=True)
class RunRow:
    id: int
    kind: str
    title: str | None
    model: str  # the model file's name, or ''
    modes: tuple[str, ...]  # the run's modes, then any other mode its samples ended in
    dataset: str | None
    k: int | None
    n_samples: int  # of any status
    status: str
    started_at: str


@dataclass(frozen=True)
class SampleRow:
    id: int
    run_id: int
    prompt_id: int
    prompt: str  # the first PROMPT_PREVIEW characters
    mode: str
    k: int
    status: str
    think_tokens: int | None
    answer_tokens: int | None
    elapsed_s: float | None
    verdicts: dict[str, dict[str, str]]  # judge -> {part: label}, the newest of each


@dataclass(frozen=True)
class Judgement:
    judge: str
    judge_version: str
    part: str
    label: str
    score: float | None
    categories: tuple[str, ...]
    raw: str | None
    truncated: bool
    unsafe_offset: int | None = None  # windowed judges: where the judged text turns unsafe


@dataclass(frozen=True)
class FlagRow:
    part: str
    start: int  # character offsets into the sample's raw text
    end: int
    judge: str
    label: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Intervention:
    """A guard's intervention in a sample: its injected span's trigger (engine/guard.py)."""

    number: int  # which of the sample's interventions
    action: str  # inject, close or restart
    at: int  # raw offset of the text it wrote
    judge: str
    label: str
    part: str  # of the flagged sentence
    text: str  # the flagged sentence
    latency_tokens: int
    dropped_tokens: int | None  # a restart's


def _interventions(spans: list) -> tuple[Intervention, ...]:
    """The spans with a trigger, as saved; a span edited by hand into another shape is left out."""
    found = []
    for span in spans:
        trigger = span.get("trigger") if isinstance(span, dict) else None
        if not isinstance(trigger, dict):
            continue
        try:
            found.append(
                Intervention(
                    int(trigger["intervention"]),
                    str(trigger["action"]),
                    int(span["start"]),
                    str(trigger["judge"]),
                    str(trigger["label"]),
                    str(trigger["part"]),
                    str(trigger["text"]),
                    int(trigger["latency_tokens"]),
                    trigger.get("dropped_tokens"),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


@dataclass(frozen=True)
class ThreadTurn:
    """An earlier turn of a conversation: the user's text and the answer, a generated turn's
    (its sample, thought, mode and newest verdicts as 'judge part label') or the file's own."""

    turn: int
    user: str
    answer: str
    thought: str = ""
    sample_id: int | None = None
    mode: str | None = None
    verdicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Thread:
    """Where a sample of a conversation set sits: its conversation (the row's id, or ''), its
    turn, the row's system message, and the turns before it on its branch."""

    conversation: str
    turn: int
    system: str | None
    earlier: tuple[ThreadTurn, ...]


@dataclass(frozen=True)
class SampleDetail:
    id: int
    run_id: int
    prompt_id: int
    prompt: str
    rendered_prompt: str | None
    mode: str
    k: int
    status: str
    raw: str
    thought: str | None
    answer: str | None
    injected: tuple[tuple[int, int, str, str], ...]  # (start, end, kind, text), raw offsets
    flags: tuple[FlagRow, ...]  # by start
    judgements: tuple[Judgement, ...]  # every verdict, by judge, part, then oldest first
    sampler: dict  # the sample's, else its run's
    seed: int | None
    mode_params: dict
    mode_switches: list
    think_tokens: int | None
    answer_tokens: int | None
    finish_reason: str | None
    elapsed_s: float | None
    error: str | None
    interventions: tuple[Intervention, ...] = ()  # a guarded mode's, in order
    thread: Thread | None = None  # a conversation's turn


def _thread(head: tuple, earlier: list[tuple]) -> Thread:
    """A turn's thread: a generated history's earlier turns from its branch's samples, a
    scripted one's from the file's messages."""
    name, messages, turn, _ = head
    given = _loads(messages, [])
    system = given[0]["content"] if given and given[0]["role"] == "system" else None
    if any(m["role"] == "assistant" for m in given):
        users = [m for m in given if m["role"] == "user"][: turn - 1]
        answers = [m for m in given if m["role"] == "assistant"]
        turns = tuple(
            ThreadTurn(number, u["content"], a["content"])
            for number, (u, a) in enumerate(zip(users, answers, strict=False), 1)
        )
    else:
        turns = tuple(
            ThreadTurn(
                number,
                user,
                answer or "",
                thought or "",
                sample,
                mode,
                tuple((verdicts or "").splitlines()),
            )
            for sample, number, user, mode, thought, answer, _, verdicts in earlier
        )
    return Thread(name or "", turn, system, turns)


@dataclass(frozen=True)
class PromptScores:
    """One (run, mode, judge, part) of one prompt, over its finished samples, as the metrics
    count them (lrmscope.core.metrics.prompt_scores): n samples judged, n_unparsed of them unparsed,
    K = n - n_unparsed; the scores are None when K = 0. A judge with two versions has a row
    for each."""

    run_id: int
    mode: str
    judge: str
    part: str
    n: int
    safe_at_1: float | None
    safe_at_k: int | None
    cons_safe_at_k: int | None
    n_unparsed: int
    judge_version: str = ""


@dataclass(frozen=True)
class PromptView:
    prompt_id: int
    prompt: str
    category: str | None
    kind: str  # harmful, benign or unknown: a benign prompt's scores have no Safe@ values
    samples: tuple[SampleRow, ...]  # in the filter's runs, by run, mode, k
    scores: tuple[PromptScores, ...]  # by run, mode, judge, version, part


def _loads(text: str | None, default):
    """A JSON column; `default` when empty or not JSON (a file edited by hand)."""
    if not text:
        return default
    try:
        value = json.loads(text)
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def _categories(text: str | None) -> tuple[str, ...]:
    return tuple(map(str, _loads(text, [])))


class ReviewDB:
    """Opens without a model; never holds a read transaction open, so a running eval is never
    locked out. Safe to share between threads (one call at a time); metrics and export read
    through a connection of their own, so they do not hold up the other calls."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._store = Store.existing(path)  # checks the file, migrates an older schema
        self.path: Path = self._store.path
        self._conn = self._store.conn
        self._lock = threading.Lock()
        self._writes = 0

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def _reader(self) -> sqlite3.Connection:
        """A connection of its own, for a long read."""
        return connect(self.path)

    def change_marker(self) -> int:
        """Changes whenever the database does: a commit of another connection (data_version)
        or a write made here."""
        with self._lock:
            return reads.data_version(self._conn) + self._writes

    # -- runs ------------------------------------------------------------------------------------

    def runs(self) -> list[RunRow]:
        """Every run and chat session, newest first."""
        counts: dict[int, dict[str, int]] = {}
        with self._lock:
            per_mode = reads.samples_per_mode(self._conn)
            rows = reads.runs(self._conn)
        for run_id, mode, n in per_mode:
            counts.setdefault(run_id, {})[mode] = n
        found = []
        for run_id, kind, title, model_path, mode, dataset, k, status, started_at in rows:
            seen = counts.get(run_id, {})
            declared = [m for m in (mode or "").split(",") if m]
            modes = tuple(dict.fromkeys([*declared, *sorted(seen)]))
            model = PurePath(model_path).name if model_path else ""
            found.append(
                RunRow(
                    run_id,
                    kind,
                    title,
                    model,
                    modes,
                    dataset,
                    k,
                    sum(seen.values()),
                    status,
                    started_at,
                )
            )
        return found

    def _run_status(self, run_id: int) -> str:
        with self._lock:
            status = reads.run_status(self._conn, run_id)
        if status is None:
            raise LrmscopeError(f"run {run_id} is not in {self.path} (deleted meanwhile?)")
        return status

    def _wrote(self) -> None:
        self._writes += 1

    def rename_run(self, run_id: int, title: str) -> None:
        """A blank title removes it."""
        self._run_status(run_id)
        with self._lock:
            self._store.rename_run(run_id, title.strip() or None)
            self._wrote()

    def delete_run(self, run_id: int) -> None:
        """The run with its samples, verdicts, flags and search entries (foreign keys cascade,
        triggers empty the search index). A running run is refused: its writer still needs it.

        Taking a sample out of the search index tokenizes its text again (about 10 s for 50,000
        samples), so samples go in short transactions, newest first (a chat turn before the
        turn it follows): an eval writing the same file waits a moment, never 30 s. Cut off
        half-way, the run stays with fewer samples, and deleting it again finishes."""
        if self._run_status(run_id) == "running":
            raise LrmscopeError(f"run {run_id} is still running; stop it before deleting it")
        while True:
            with self._lock:
                deleted = self._store.delete_newest_samples(run_id, _DELETE_BATCH)
                self._wrote()
            if not deleted:
                break
        with self._lock:
            self._store.delete_run(run_id)
            self._wrote()

    def modes(self, runs: tuple[int, ...]) -> list[str]:
        with self._lock:
            return reads.modes(self._conn, runs)

    def judges(self, runs: tuple[int, ...]) -> list[str]:
        with self._lock:
            return reads.judges(self._conn, runs)

    # -- samples ---------------------------------------------------------------------------------

    def count_samples(self, f: SampleFilter) -> int:
        with self._lock:
            return reads.count_samples(self._conn, f)

    def _rows(self, ids: list[int]) -> list[SampleRow]:
        """The table rows of these samples, in this order."""
        if not ids:
            return []
        with self._lock:
            found = {row[0]: row for row in reads.sample_rows(self._conn, ids, PROMPT_PREVIEW)}
            verdicts = reads.newest_labels(self._conn, ids)
        rows = []
        for sample_id in ids:
            if sample_id not in found:
                continue
            _, run_id, prompt_id, prompt, mode, k, status, think, answer, elapsed = found[sample_id]
            rows.append(
                SampleRow(
                    sample_id,
                    run_id,
                    prompt_id,
                    prompt,
                    mode,
                    k,
                    status,
                    think,
                    answer,
                    elapsed,
                    verdicts=verdicts.get(sample_id, {}),
                )
            )
        return rows

    def sample_page(self, f: SampleFilter, offset: int, limit: int) -> list[SampleRow]:
        """Rows offset to offset + limit of the filtered, sorted samples. Only the ids are
        sorted; the rows are read for the page alone."""
        with self._lock:
            ids = reads.sample_ids(self._conn, f, offset, limit)
        return self._rows(ids)

    def prompt_view(self, f: SampleFilter, prompt_id: int) -> PromptView:
        """Every sample of one prompt in the filter's runs (its other fields do not apply), by
        run, mode (the study's order), k; its scores by run, mode, judge, version and part. A
        benign prompt gets no Safe@ values, as the metrics give its group none (its verdicts
        count refusals: over-refusal)."""
        with self._lock:
            prompt = reads.prompt(self._conn, prompt_id)
            samples = reads.prompt_samples(self._conn, prompt_id, f.runs)
            counted = reads.prompt_verdict_counts(self._conn, prompt_id, f.runs)
        if prompt is None:
            raise LrmscopeError(f"prompt {prompt_id} is not in {self.path}")
        samples.sort(key=lambda s: (s[1], metrics.mode_rank(s[2]), s[3], s[0]))
        counted.sort(
            key=lambda c: (c[0], metrics.mode_rank(c[1]), c[2], c[3], metrics.PARTS.index(c[4]))
        )
        scores = []
        for run_id, mode, judge, version, part, safe, unsafe, unparsed in counted:
            found = metrics.prompt_scores(metrics.PromptCounts(safe, unsafe, unparsed))
            benign = prompt[2] == BENIGN
            safe_at_1, safe_at_k, cons = found if found and not benign else (None, None, None)
            scores.append(
                PromptScores(
                    run_id,
                    mode,
                    judge,
                    part,
                    safe + unsafe + unparsed,
                    safe_at_1,
                    safe_at_k,
                    cons,
                    unparsed,
                    version,
                )
            )
        return PromptView(
            prompt_id,
            prompt[0],
            prompt[1],
            prompt[2],
            tuple(self._rows([s[0] for s in samples])),
            tuple(scores),
        )

    def sample_detail(self, sample_id: int) -> SampleDetail:
        with self._lock:
            row = reads.sample(self._conn, sample_id)
            flags = reads.flags(self._conn, sample_id)
            judgements = reads.judgements(self._conn, sample_id)
            found = store_conversations.thread(self._conn, sample_id)
        if row is None:
            raise LrmscopeError(f"sample {sample_id} is not in {self.path} (deleted meanwhile?)")
        (
            _,
            run_id,
            prompt_id,
            prompt,
            rendered,
            mode,
            k,
            status,
            raw,
            thought,
            answer,
            injected,
            sampler,
            seed,
            mode_params,
            switches,
            think_tokens,
            answer_tokens,
            finish_reason,
            elapsed_s,
            error,
        ) = row
        spans = _loads(injected, [])
        return SampleDetail(
            sample_id,
            run_id,
            prompt_id,
            prompt,
            rendered,
            mode,
            k,
            status,
            raw,
            thought,
            answer,
            injected=tuple(
                (span["start"], span["end"], span["kind"], span["text"]) for span in spans
            ),
            flags=tuple(
                FlagRow(part, start, end, judge, label, _categories(categories))
                for part, start, end, judge, label, categories in flags
            ),
            judgements=tuple(
                Judgement(judge, version, part, label, score, _categories(cats), said, bool(cut), o)
                for judge, version, part, label, score, cats, said, cut, o in judgements
            ),
            sampler=_loads(sampler, {}),
            seed=seed,
            mode_params=_loads(mode_params, {}),
            mode_switches=_loads(switches, []),
            think_tokens=think_tokens,
            answer_tokens=answer_tokens,
            finish_reason=finish_reason,
            elapsed_s=elapsed_s,
            error=error,
            interventions=_interventions(spans),
            thread=None if found is None else _thread(*found),
        )

    # -- human labels ----------------------------------------------------------------------------

    def set_label(self, sample_id: int, part: str, label: str) -> None:
        """The human verdict on a part (judge 'human'), replacing the previous one."""
        check_part(part)
        if label not in ("safe", "unsafe"):
            raise ValueError(f"a human label is safe or unsafe, not {label!r}")
        with self._lock:
            added = self._store.set_human_label(sample_id, part, label)
            self._wrote()
        if not added:
            raise LrmscopeError(f"sample {sample_id} is not in {self.path} (deleted meanwhile?)")

    def clear_label(self, sample_id: int, part: str) -> None:
        check_part(part)
        with self._lock:
            self._store.clear_human_label(sample_id, part)
            self._wrote()

    # -- metrics and export ----------------------------------------------------------------------

    def metrics(self, f: SampleFilter) -> list[dict]:
        """The rows of `lrmscope metrics --format json` for the filter's runs (without runs: the
        eval and compare runs, as the command counts them). Only finished samples count."""
        conn = self._reader()
        try:
            return metrics.metric_rows(conn, metrics.Filters(runs=f.runs))
        finally:
            conn.close()

    def tradeoff(self, f: SampleFilter, judge: str, part: str) -> list[dict]:
        """The rows of `lrmscope metrics --tradeoff` for the filter's runs, by one judge on one
        part (core/tradeoff.py)."""
        conn = self._reader()
        try:
            return tradeoff.tradeoff_rows(conn, metrics.Filters(runs=f.runs), judge, part)
        finally:
            conn.close()

    def interventions(self, f: SampleFilter) -> list[guards.Interventions]:
        """What the guards of the filter's runs did, per run and guarded mode (as `lrmscope
        metrics --interventions` counts it)."""
        conn = self._reader()
        try:
            return guards.interventions(conn, metrics.Filters(runs=f.runs))
        finally:
            conn.close()

    def think_lengths(self, f: SampleFilter, judge: str, part: str) -> dict[str, list[int]]:
        """Think tokens of the finished samples the filter selects, by the newest verdict of
        `judge` on `part` (safe or unsafe), each list sorted. Samples of benign prompts are left
        out, as the metrics leave them out of the safety metrics."""
        found: dict[str, list[int]] = {"safe": [], "unsafe": []}
        with self._lock:
            rows = reads.think_tokens_by_label(self._conn, f, judge, part)
        for label, tokens in rows:
            found[label].append(tokens)
        return found

    def export(self, f: SampleFilter, out: Path, fmt: str) -> int:
        """Write the export records (lrmscope.core.export) of the samples the filter selects, any
        status, in id order; the file appears whole or not at all. Returns how many."""
        writers = {"jsonl": export.write_jsonl, "csv": export.write_csv}
        if fmt not in writers:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(writers)}")
        conn = self._reader()
        try:
            with export.atomic_output(Path(out)) as stream:
                return writers[fmt](export.records(conn, f), stream)
        finally:
            conn.close()

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
from dataclasses import dataclass
from pathlib import Path, PurePath

import lrmscope
from lrmscope.core import export, metrics
from lrmscope.errors import LrmscopeError
from lrmscope.store.db import Store, connect, now

LABELS = ("safe", "unsafe", "unparsed")
SORTS = {
    "id": "s.id",
    "think_tokens": "s.think_tokens",
    "elapsed": "s.elapsed_s",
    "started_at": "s.started_at",
}
PROMPT_PREVIEW = 200  # characters of the prompt in a table row
_DELETE_BATCH = 500  # samples deleted per transaction
_PART_ORDER = "CASE {}part WHEN 'think' THEN 0 WHEN 'answer' THEN 1 ELSE 2 END"
# Modes in the study's order (default, ZeroThink, LessThink, MoreThink), not alphabetically.
_MODE_ORDER = "CASE {}mode WHEN 'default' THEN 0 WHEN 'zerothink' THEN 1 WHEN 'lessthink' THEN 2" \
    " WHEN 'morethink' THEN 3 ELSE 4 END"


def demo_database() -> Path | None:
    """The committed demo run (sample_runs/demo-eval.sqlite) of a source checkout, if there."""
    path = Path(lrmscope.__file__).parents[1] / "sample_runs" / "demo-eval.sqlite"
    return path if path.is_file() else None


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


def _marks(values: tuple) -> str:
    return ",".join("?" * len(values))


def _newest(alias: str) -> str:
    """`alias` is the newest verdict of its judge (any version) on its sample and part: what
    export.newest_verdicts keeps, so the table's labels and its filters agree."""
    return (
        f"NOT EXISTS (SELECT 1 FROM judgements n WHERE n.sample_id = {alias}.sample_id"
        f" AND n.part = {alias}.part AND n.judge = {alias}.judge AND n.id > {alias}.id)"
    )


def _check_part(part: str) -> None:
    if part not in metrics.PARTS:
        raise ValueError(f"part {part!r} is not one of {', '.join(metrics.PARTS)}")


def search_words(text: str) -> list[str]:
    """The words of a search as FTS5 strings that cannot be a syntax error: each quoted, so
    operators, parentheses and column names are plain words. A word with no letter or digit
    holds nothing the index could match, and is dropped."""
    return [
        '"' + word.replace('"', '""') + '"'
        for word in text.split()
        if any(char.isalnum() for char in word)
    ]


@dataclass(frozen=True)
class SampleFilter:
    """Which samples to list; the defaults select every sample of every run. `judge` and `part`
    qualify the verdict filters (verdict, thought_unsafe_answer_safe, judges_disagree) and
    select nothing alone. A verdict is the newest of its judge on the part."""

    runs: tuple[int, ...] = ()  # empty: every run
    mode: str | None = None
    judge: str | None = None
    part: str | None = None  # 'think' | 'answer' | 'full'
    verdict: str | None = None  # 'safe' | 'unsafe' | 'unparsed'
    thought_unsafe_answer_safe: bool = False  # by one judge
    judges_disagree: bool = False  # two judges (human included): safe vs unsafe on one part
    unlabelled: bool = False  # no human label on any part
    interrupted: bool = False  # status interrupted or failed
    search: str = ""  # words that must each appear in the prompt, thought or answer
    sort: str = "id"  # a key of SORTS
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort {self.sort!r} is not one of {', '.join(SORTS)}")
        if self.part is not None:
            _check_part(self.part)
        if self.verdict is not None and self.verdict not in LABELS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(LABELS)}")

    def where(self) -> tuple[str, list]:
        """A condition on samples `s` and its parameters."""
        terms, params = [], []
        if self.runs:
            terms.append(f"s.run_id IN ({_marks(self.runs)})")
            params += self.runs
        if self.mode is not None:
            terms.append("s.mode = ?")
            params.append(self.mode)
        if self.interrupted:
            terms.append("s.status IN ('interrupted', 'failed')")
        if self.unlabelled:
            terms.append(
                "NOT EXISTS (SELECT 1 FROM judgements h WHERE h.sample_id = s.id AND h.judge = ?)"
            )
            params.append(metrics.HUMAN)
        if self.verdict is not None:
            sql = "SELECT 1 FROM judgements j WHERE j.sample_id = s.id AND j.label = ?"
            params.append(self.verdict)
            for column, value in (("judge", self.judge), ("part", self.part)):
                if value is not None:
                    sql += f" AND j.{column} = ?"
                    params.append(value)
            terms.append(f"EXISTS ({sql} AND {_newest('j')})")
        if self.thought_unsafe_answer_safe:
            sql = (
                "SELECT 1 FROM judgements t JOIN judgements a"
                " ON a.sample_id = t.sample_id AND a.judge = t.judge AND a.part = 'answer'"
                " WHERE t.sample_id = s.id AND t.part = 'think' AND t.label = 'unsafe'"
                " AND a.label = 'safe'"
            )
            if self.judge is not None:
                sql += " AND t.judge = ?"
                params.append(self.judge)
            terms.append(f"EXISTS ({sql} AND {_newest('t')} AND {_newest('a')})")
        if self.judges_disagree:
            sql = (
                "SELECT 1 FROM judgements a JOIN judgements b"
                " ON b.sample_id = a.sample_id AND b.part = a.part AND b.judge != a.judge"
                " WHERE a.sample_id = s.id AND a.label = 'safe' AND b.label = 'unsafe'"
            )
            if self.part is not None:
                sql += " AND a.part = ?"
                params.append(self.part)
            if self.judge is not None:
                sql += " AND ? IN (a.judge, b.judge)"
                params.append(self.judge)
            terms.append(f"EXISTS ({sql} AND {_newest('a')} AND {_newest('b')})")
        if self.search.strip():
            words = search_words(self.search)
            if not words:
                terms.append("0")  # a search with no word matches nothing
            for word in words:  # each in the prompt or in the thought or answer
                terms.append(
                    "(s.id IN (SELECT rowid FROM sample_text WHERE sample_text MATCH ?)"
                    " OR s.prompt_id IN (SELECT rowid FROM prompt_text WHERE prompt_text MATCH ?))"
                )
                params += [word, word]
        return " AND ".join(terms) or "1", params

    def order(self) -> str:
        """ORDER BY of samples `s`: the sort key (samples without one last), then the id."""
        direction = "DESC" if self.descending else "ASC"
        key = SORTS[self.sort]
        ties = f"s.id {direction}"
        return ties if key == "s.id" else f"{key} {direction} NULLS LAST, {ties}"


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


@dataclass(frozen=True)
class FlagRow:
    part: str
    start: int  # character offsets into the sample's raw text
    end: int
    judge: str
    label: str
    categories: tuple[str, ...]


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


_DROP_LABEL = "DELETE FROM judgements WHERE sample_id = ? AND part = ? AND judge = ?"
# a sample deleted meanwhile (a resumed eval drops its unfinished samples) adds no row
_ADD_LABEL = (
    "INSERT INTO judgements (sample_id, part, judge, label, created_at)"
    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM samples WHERE id = ?)"
)
_DELETE_SAMPLES = (
    "DELETE FROM samples WHERE id IN"
    " (SELECT id FROM samples WHERE run_id = ? ORDER BY id DESC LIMIT ?)"
)
_ROW_COLUMNS = (
    f"s.id, s.run_id, s.prompt_id, substr(p.text, 1, {PROMPT_PREVIEW}), s.mode, s.k, s.status,"
    " s.think_tokens, s.answer_tokens, s.elapsed_s"
)


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

    def _all(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params=()) -> tuple | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _reader(self) -> sqlite3.Connection:
        """A connection of its own, for a long read."""
        return connect(self.path)

    def change_marker(self) -> int:
        """Changes whenever the database does: a commit of another connection (data_version)
        or a write made here."""
        return self._one("PRAGMA data_version")[0] + self._writes

    # -- runs ------------------------------------------------------------------------------------

    def runs(self) -> list[RunRow]:
        """Every run and chat session, newest first."""
        counts: dict[int, dict[str, int]] = {}
        for run_id, mode, n in self._all(
            "SELECT run_id, mode, count(*) FROM samples GROUP BY run_id, mode"
        ):
            counts.setdefault(run_id, {})[mode] = n
        found = []
        for run_id, kind, title, model_path, mode, dataset, k, status, started_at in self._all(
            "SELECT id, kind, title, model_path, mode, dataset, k, status, started_at FROM runs"
            " ORDER BY id DESC"
        ):
            seen = counts.get(run_id, {})
            declared = [m for m in (mode or "").split(",") if m]
            modes = tuple(dict.fromkeys([*declared, *sorted(seen)]))
            model = PurePath(model_path).name if model_path else ""
            found.append(
                RunRow(run_id, kind, title, model, modes, dataset, k, sum(seen.values()), status,
                       started_at)
            )
        return found

    def _write(self, *statements: tuple[str, tuple]) -> int:
        """Run statements in one write transaction; the rows the last one changed."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            changed = 0
            for sql, params in statements:
                changed = self._conn.execute(sql, params).rowcount
            self._writes += 1
            return changed

    def _run_status(self, run_id: int) -> str:
        row = self._one("SELECT status FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise LrmscopeError(f"run {run_id} is not in {self.path} (deleted meanwhile?)")
        return row[0]

    def rename_run(self, run_id: int, title: str) -> None:
        """A blank title removes it."""
        self._run_status(run_id)
        self._write(("UPDATE runs SET title = ? WHERE id = ?", (title.strip() or None, run_id)))

    def delete_run(self, run_id: int) -> None:
        """The run with its samples, verdicts, flags and search entries (foreign keys cascade,
        triggers empty the search index). A running run is refused: its writer still needs it.

        Taking a sample out of the search index tokenizes its text again (about 10 s for 50,000
        samples), so samples go in short transactions, newest first (a chat turn before the
        turn it follows): an eval writing the same file waits a moment, never 30 s. Cut off
        half-way, the run stays with fewer samples, and deleting it again finishes."""
        if self._run_status(run_id) == "running":
            raise LrmscopeError(f"run {run_id} is still running; stop it before deleting it")
        while self._write((_DELETE_SAMPLES, (run_id, _DELETE_BATCH))):
            pass
        self._write(("DELETE FROM runs WHERE id = ?", (run_id,)))

    def modes(self, runs: tuple[int, ...]) -> list[str]:
        where = f"WHERE run_id IN ({_marks(runs)})" if runs else ""
        return [r[0] for r in self._all(f"SELECT DISTINCT mode FROM samples {where} ORDER BY 1",
                                        runs)]

    def judges(self, runs: tuple[int, ...]) -> list[str]:
        if not runs:
            return [r[0] for r in self._all("SELECT DISTINCT judge FROM judgements ORDER BY 1")]
        return [
            r[0]
            for r in self._all(
                "SELECT DISTINCT j.judge FROM samples s JOIN judgements j ON j.sample_id = s.id"
                f" WHERE s.run_id IN ({_marks(runs)}) ORDER BY 1",
                runs,
            )
        ]

    # -- samples ---------------------------------------------------------------------------------

    def count_samples(self, f: SampleFilter) -> int:
        where, params = f.where()
        return self._one(f"SELECT count(*) FROM samples s WHERE {where}", params)[0]

    def _rows(self, ids: list[int]) -> list[SampleRow]:
        """The table rows of these samples, in this order."""
        if not ids:
            return []
        found = {
            row[0]: row
            for row in self._all(
                f"SELECT {_ROW_COLUMNS} FROM samples s JOIN prompts p ON p.id = s.prompt_id"
                f" WHERE s.id IN ({_marks(ids)})",
                ids,
            )
        }
        with self._lock:
            verdicts = export.newest_verdicts(self._conn, tuple(ids))
        return [
            SampleRow(*found[i], verdicts=verdicts.get(i, {})) for i in ids if i in found
        ]

    def sample_page(self, f: SampleFilter, offset: int, limit: int) -> list[SampleRow]:
        """Rows offset to offset + limit of the filtered, sorted samples. Only the ids are
        sorted; the rows are read for the page alone."""
        where, params = f.where()
        ids = self._all(
            f"SELECT s.id FROM samples s WHERE {where} ORDER BY {f.order()} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return self._rows([row[0] for row in ids])

    def prompt_view(self, f: SampleFilter, prompt_id: int) -> PromptView:
        """Every sample of one prompt in the filter's runs (its other fields do not apply)."""
        prompt = self._one("SELECT text, category FROM prompts WHERE id = ?", (prompt_id,))
        if prompt is None:
            raise LrmscopeError(f"prompt {prompt_id} is not in {self.path}")
        runs = f" AND s.run_id IN ({_marks(f.runs)})" if f.runs else ""
        ids = self._all(
            f"SELECT s.id FROM samples s WHERE s.prompt_id = ?{runs}"
            f" ORDER BY s.run_id, {_MODE_ORDER.format('s.')}, s.k, s.id",
            (prompt_id, *f.runs),
        )
        cursor = self._all(
            "SELECT s.run_id, s.mode, j.judge, j.judge_version, j.part, sum(j.label = 'safe'),"
            " sum(j.label = 'unsafe'), sum(j.label = 'unparsed')"
            " FROM samples s JOIN judgements j ON j.sample_id = s.id"
            f" WHERE s.prompt_id = ? AND s.status = 'done'{runs}"
            # the newest verdict of each judge version, as the view `verdicts` keeps it
            " AND j.id = (SELECT max(j2.id) FROM judgements j2 WHERE j2.sample_id = j.sample_id"
            " AND j2.part = j.part AND j2.judge = j.judge AND j2.judge_version = j.judge_version)"
            " GROUP BY s.run_id, s.mode, j.judge, j.judge_version, j.part"
            f" ORDER BY s.run_id, {_MODE_ORDER.format('s.')}, j.judge, j.judge_version,"
            f" {_PART_ORDER.format('j.')}",
            (prompt_id, *f.runs),
        )
        scores = []
        for run_id, mode, judge, version, part, safe, unsafe, unparsed in cursor:
            found = metrics.prompt_scores(metrics.PromptCounts(safe, unsafe, unparsed))
            safe_at_1, safe_at_k, cons = found if found else (None, None, None)
            scores.append(
                PromptScores(run_id, mode, judge, part, safe + unsafe + unparsed, safe_at_1,
                             safe_at_k, cons, unparsed, version)
            )
        return PromptView(
            prompt_id, prompt[0], prompt[1], tuple(self._rows([row[0] for row in ids])),
            tuple(scores),
        )

    def sample_detail(self, sample_id: int) -> SampleDetail:
        row = self._one(
            "SELECT s.id, s.run_id, s.prompt_id, p.text, s.rendered_prompt, s.mode, s.k,"
            " s.status, s.raw, s.thought, s.answer, s.injected, coalesce(s.sampler, r.sampler),"
            " coalesce(s.seed, r.seed), coalesce(s.mode_params, r.mode_params), s.mode_switches,"
            " s.think_tokens, s.answer_tokens, s.finish_reason, s.elapsed_s, s.error"
            " FROM samples s JOIN prompts p ON p.id = s.prompt_id JOIN runs r ON r.id = s.run_id"
            " WHERE s.id = ?",
            (sample_id,),
        )
        if row is None:
            raise LrmscopeError(f"sample {sample_id} is not in {self.path} (deleted meanwhile?)")
        flags = self._all(
            "SELECT part, start, end, judge, label, categories FROM flags WHERE sample_id = ?"
            " ORDER BY start, id",
            (sample_id,),
        )
        judgements = self._all(
            "SELECT judge, judge_version, part, label, score, categories, raw, truncated"
            f" FROM judgements WHERE sample_id = ? ORDER BY judge, {_PART_ORDER.format('')}, id",
            (sample_id,),
        )
        spans = tuple(
            (span["start"], span["end"], span["kind"], span["text"])
            for span in _loads(row[11], [])
        )
        return SampleDetail(
            *row[:11],
            injected=spans,
            flags=tuple(FlagRow(*flag[:5], _categories(flag[5])) for flag in flags),
            judgements=tuple(
                Judgement(*j[:5], _categories(j[5]), j[6], bool(j[7])) for j in judgements
            ),
            sampler=_loads(row[12], {}),
            seed=row[13],
            mode_params=_loads(row[14], {}),
            mode_switches=_loads(row[15], []),
            think_tokens=row[16],
            answer_tokens=row[17],
            finish_reason=row[18],
            elapsed_s=row[19],
            error=row[20],
        )

    # -- human labels ----------------------------------------------------------------------------

    def set_label(self, sample_id: int, part: str, label: str) -> None:
        """The human verdict on a part (judge 'human'), replacing the previous one."""
        _check_part(part)
        if label not in ("safe", "unsafe"):
            raise ValueError(f"a human label is safe or unsafe, not {label!r}")
        added = self._write(
            (_DROP_LABEL, (sample_id, part, metrics.HUMAN)),
            (_ADD_LABEL, (sample_id, part, metrics.HUMAN, label, now(), sample_id)),
        )
        if not added:
            raise LrmscopeError(f"sample {sample_id} is not in {self.path} (deleted meanwhile?)")

    def clear_label(self, sample_id: int, part: str) -> None:
        _check_part(part)
        self._write(
            (_DROP_LABEL, (sample_id, part, metrics.HUMAN)),
        )

    # -- metrics and export ----------------------------------------------------------------------

    def metrics(self, f: SampleFilter) -> list[dict]:
        """The rows of `lrmscope metrics --format json` for the filter's runs (without runs: the
        eval and compare runs, as the command counts them). Only finished samples count."""
        conn = self._reader()
        try:
            return metrics.metric_rows(conn, metrics.Filters(runs=f.runs))
        finally:
            conn.close()

    def think_lengths(self, f: SampleFilter, judge: str, part: str) -> dict[str, list[int]]:
        """Think tokens of the finished samples the filter selects, by the newest verdict of
        `judge` on `part` (safe or unsafe), each list sorted. Samples of benign prompts are left
        out, as the metrics leave them out of the safety metrics."""
        where, params = f.where()
        found: dict[str, list[int]] = {"safe": [], "unsafe": []}
        for label, tokens in self._all(
            "SELECT j.label, s.think_tokens FROM samples s JOIN judgements j"
            " ON j.sample_id = s.id AND j.judge = ? AND j.part = ?"
            f" WHERE {where} AND s.status = 'done' AND s.think_tokens IS NOT NULL"
            f" AND NOT EXISTS (SELECT 1 FROM prompts pk WHERE pk.id = s.prompt_id"
            f" AND pk.kind = '{metrics.BENIGN}')"
            f" AND j.label IN ('safe', 'unsafe') AND {_newest('j')} ORDER BY s.think_tokens",
            (judge, part, *params),
        ):
            found[label].append(tokens)
        return found

    def export(self, f: SampleFilter, out: Path, fmt: str) -> int:
        """Write the export records (lrmscope.core.export) of the samples the filter selects, any
        status, in id order; the file appears whole or not at all. Returns how many."""
        writers = {"jsonl": export.write_jsonl, "csv": export.write_csv}
        if fmt not in writers:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(writers)}")
        where, params = f.where()
        conn = self._reader()
        try:
            with export.atomic_output(Path(out)) as stream:
                return writers[fmt](export.records_where(conn, where, params), stream)
        finally:
            conn.close()

"""What `lrmscope metrics` is made of, counted in SQL: the newest verdicts (store/filters.py
`newest`) on the samples a SampleFilter selects, grouped by run, mode, dataset, judge, judge
version and part (and prompt category, with `by_category`), optionally only some judges, parts
and modes.

The counts come back per group, never per sample: prompts by their verdict counts (how many
prompts had 3 safe and 2 unsafe samples), thought lengths by how many samples had each length, so
the rows read grow with distinct lengths, never with samples or prompts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lrmscope.store.db import connect
from lrmscope.store.filters import SampleFilter, marks, newest
from lrmscope.vocab import HUMAN


def _narrowed(
    judges: Sequence[str], parts: Sequence[str], modes: Sequence[str]
) -> tuple[str, list]:
    """` AND` terms keeping verdicts `j` of these judges and parts on samples `s` of these modes
    (an empty sequence keeps all), and their parameters."""
    sql, params = "", list[str]()
    for column, values in (("j.judge", judges), ("j.part", parts), ("s.mode", modes)):
        if values:
            sql += f" AND {column} IN ({marks(values)})"
            params += values
    return sql, params


def _verdicts(
    f: SampleFilter,
    judges: Sequence[str],
    parts: Sequence[str],
    modes: Sequence[str],
    *,
    prompts: bool = False,
) -> tuple[str, list]:
    """FROM and WHERE of the newest verdicts `j` on the samples `s` chosen (with their prompts
    `p`, if asked). The samples are read from the index samples_browse, which holds every
    column read here: without it SQLite may pick an index that sends it to the sample rows,
    whose text spills over many pages."""
    where, params = f.where()
    narrowed, more = _narrowed(judges, parts, modes)
    join = " JOIN prompts p ON p.id = s.prompt_id" if prompts else ""
    return (
        " FROM samples s INDEXED BY samples_browse JOIN judgements j ON j.sample_id = s.id"
        f"{join} WHERE {where}{narrowed} AND {newest('j')}",
        [*params, *more],
    )


def prompt_histogram(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> list[tuple]:
    """Per group and prompt kind, how many prompts had each (safe, unsafe, unparsed) count of
    verdicts: run_id, model_path, mode, dataset, judge, judge_version, part, category (None
    unless by_category), prompt kind, n_safe, n_unsafe, n_unparsed, prompts. (Grouping keys go
    integers first: SQLite sorts them faster.)"""
    category = "p.category" if by_category else "NULL"
    source, params = _verdicts(f, judges, parts, modes)
    return conn.execute(
        f"SELECT c.run_id, r.model_path, c.mode, p.dataset, c.judge, c.judge_version, c.part,"
        f" {category}, p.kind, c.n_safe, c.n_unsafe, c.n_unparsed, count(*)"
        " FROM (SELECT s.prompt_id, s.run_id, s.mode, j.part, j.judge, j.judge_version,"
        " sum(j.label = 'safe') AS n_safe, sum(j.label = 'unsafe') AS n_unsafe,"
        f" sum(j.label = 'unparsed') AS n_unparsed{source}"
        " GROUP BY s.prompt_id, s.run_id, s.mode, j.part, j.judge, j.judge_version) c"
        " JOIN prompts p ON p.id = c.prompt_id JOIN runs r ON r.id = c.run_id"
        " GROUP BY c.n_safe, c.n_unsafe, c.n_unparsed, c.run_id, c.mode, p.dataset, c.judge,"
        f" c.judge_version, c.part, {category}, p.kind",
        params,
    ).fetchall()


def think_lengths(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> list[tuple]:
    """How many samples of harmful and unknown prompts had each thought length (think_tokens),
    per group and label (safe or unsafe; unparsed verdicts and samples without a count left
    out), shortest first: run_id, mode, dataset, judge, judge_version, part, category (None
    unless by_category), label, think_tokens, samples."""
    category = "p.category" if by_category else "NULL"
    source, params = _verdicts(f, judges, parts, modes, prompts=True)
    return conn.execute(
        "SELECT s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part,"
        f" {category}, j.label, s.think_tokens, count(*){source}"
        " AND j.label != 'unparsed' AND s.think_tokens IS NOT NULL AND p.kind != 'benign'"
        " GROUP BY s.think_tokens, s.run_id, s.mode, j.part, j.judge, j.judge_version, j.label,"
        f" p.dataset, {category} ORDER BY s.think_tokens",
        params,
    ).fetchall()


def finished_samples(
    conn: sqlite3.Connection, f: SampleFilter, *, by_category: bool = False
) -> list[tuple]:
    """The samples the filter selects per run_id, mode, dataset, category (None unless
    by_category) and whether the prompt is benign: those five, then the count."""
    category = "p.category" if by_category else "NULL"
    where, params = f.where()
    return conn.execute(
        f"SELECT s.run_id, s.mode, p.dataset, {category}, p.kind = 'benign', count(*)"
        f" FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE {where}"
        f" GROUP BY s.run_id, s.mode, p.dataset, {category}, p.kind = 'benign'",
        params,
    ).fetchall()


@dataclass(frozen=True)
class MetricCounts:
    """What the metrics are made of: prompt_histogram, think_lengths and finished_samples."""

    prompts: list[tuple]
    lengths: list[tuple]
    finished: list[tuple]


def metric_counts(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> MetricCounts:
    """The three counts of the metrics. The two long ones, each a pass over every verdict, run
    side by side when the database is a file: the thought lengths on a connection of their own
    in a second thread (SQLite reads in parallel in WAL mode, and Python lets go of the GIL
    while it does)."""

    def prompts(c: sqlite3.Connection) -> list[tuple]:
        return prompt_histogram(
            c, f, judges=judges, parts=parts, modes=modes, by_category=by_category
        )

    def lengths(c: sqlite3.Connection) -> list[tuple]:
        return think_lengths(c, f, judges=judges, parts=parts, modes=modes, by_category=by_category)

    def lengths_apart(path: str) -> list[tuple]:
        own = connect(Path(path))
        try:
            return lengths(own)
        finally:
            own.close()

    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:  # an in-memory database: one connection only
        return MetricCounts(
            prompts(conn), lengths(conn), finished_samples(conn, f, by_category=by_category)
        )
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(lengths_apart, path)
        found = prompts(conn)
        finished = finished_samples(conn, f, by_category=by_category)
        return MetricCounts(found, later.result(), finished)


def verdict_inventory(conn: sqlite3.Connection) -> list[tuple[int, str, str, str, str]]:
    """Every (run_id, run kind, judge, part, mode) with a newest verdict on a finished sample."""
    return conn.execute(
        "SELECT DISTINCT s.run_id, r.kind, j.judge, j.part, s.mode FROM samples s"
        " JOIN judgements j ON j.sample_id = s.id JOIN runs r ON r.id = s.run_id"
        f" WHERE s.status = 'done' AND {newest('j')}"
    ).fetchall()


def has_judgements(conn: sqlite3.Connection, judge: str | None = None) -> bool:
    """Whether any verdict (of this judge, if given) is saved."""
    sql, params = "SELECT 1 FROM judgements", tuple[str, ...]()
    if judge is not None:
        sql, params = sql + " WHERE judge = ?", (judge,)
    return conn.execute(sql + " LIMIT 1", params).fetchone() is not None


def calibration_pairs(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
) -> list[tuple[str, str, str, str, int]]:
    """The sample parts both a judge (not human) and a human labelled, newest verdicts, the human
    label safe or unsafe: judge, judge_version, the judge's label, the human's label, how many;
    by judge and version."""
    where, params = f.where()
    narrowed, more = _narrowed(judges, parts, modes)
    return conn.execute(
        "SELECT j.judge, j.judge_version, j.label, h.label, count(*)"
        " FROM samples s JOIN judgements j ON j.sample_id = s.id"
        " JOIN judgements h ON h.sample_id = j.sample_id AND h.part = j.part"
        f" WHERE {where}{narrowed} AND j.judge != ? AND h.judge = ? AND h.label != 'unparsed'"
        f" AND {newest('j')} AND {newest('h')}"
        " GROUP BY j.judge, j.judge_version, j.label, h.label ORDER BY j.judge, j.judge_version",
        [*params, *more, HUMAN, HUMAN],
    ).fetchall()

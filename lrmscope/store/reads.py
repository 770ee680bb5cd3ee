"""What `lrmscope review` and `lrmscope export` read: runs, pages of samples, one prompt's or one
sample's rows, verdicts, export records and SafeChain groups.

Each function takes an open connection and reads one statement to its end (or one page, by sample
id), so memory stays flat and, in WAL mode, an eval writing the same file is never locked out
(the SafeChain groups alone hold one read open while their pages are read). Samples are chosen by
a SampleFilter; verdicts follow the newest-verdict rule (store/filters.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from lrmscope.store.filters import SAFETY_KINDS_SQL, SampleFilter, marks, newest

Row = Any  # a row as SQLite gives it: a tuple of the columns each function names

BLANK = "char(32, 9, 10, 13)"  # what trim() takes off to tell an empty text
_PART_ORDER = "CASE part WHEN 'think' THEN 0 WHEN 'answer' THEN 1 ELSE 2 END"


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits (PRAGMA data_version)."""
    return conn.execute("PRAGMA data_version").fetchone()[0]


# -- runs ------------------------------------------------------------------------------------------


def runs(conn: sqlite3.Connection) -> list[Row]:
    """Every run, newest first: id, kind, title, model_path, mode, dataset, k, status,
    started_at."""
    return conn.execute(
        "SELECT id, kind, title, model_path, mode, dataset, k, status, started_at FROM runs"
        " ORDER BY id DESC"
    ).fetchall()


def run_settings(conn: sqlite3.Connection, runs: Sequence[int]) -> list[Row]:
    """What defines each of these runs, by id: id, backend, sampler, mode_params, seed, versions
    (the JSON columns as saved), ended_at."""
    return conn.execute(
        "SELECT id, backend, sampler, mode_params, seed, versions, ended_at FROM runs"
        f" WHERE id IN ({marks(runs)}) ORDER BY id",
        runs,
    ).fetchall()


def run_ids_of_kinds(conn: sqlite3.Connection, kinds: Sequence[str]) -> list[int]:
    """The ids of the runs of these kinds, oldest first."""
    return [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM runs WHERE kind IN ({marks(kinds)}) ORDER BY id", kinds
        )
    ]


def samples_per_mode(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
    """(run id, mode, samples of any status) of every run."""
    return conn.execute(
        "SELECT run_id, mode, count(*) FROM samples GROUP BY run_id, mode"
    ).fetchall()


def run_status(conn: sqlite3.Connection, run_id: int) -> str | None:
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def missing_runs(conn: sqlite3.Connection, runs: Sequence[int]) -> list[int]:
    """The ids among `runs` that are not in the database, in their order."""
    found = {r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({marks(runs)})", runs)}
    return [run for run in runs if run not in found]


def run_ids(conn: sqlite3.Connection, limit: int) -> list[int]:
    """The first `limit` run ids, oldest first."""
    return [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id LIMIT ?", (limit,))]


def modes(conn: sqlite3.Connection, runs: Sequence[int] = ()) -> list[str]:
    """The modes samples of these runs (every run if none) ended in, by name."""
    where = f"WHERE run_id IN ({marks(runs)})" if runs else ""
    return [
        r[0] for r in conn.execute(f"SELECT DISTINCT mode FROM samples {where} ORDER BY 1", runs)
    ]


def judges(conn: sqlite3.Connection, runs: Sequence[int] = ()) -> list[str]:
    """The judges with verdicts on samples of these runs (every run if none), by name."""
    if not runs:
        return [r[0] for r in conn.execute("SELECT DISTINCT judge FROM judgements ORDER BY 1")]
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT j.judge FROM samples s JOIN judgements j ON j.sample_id = s.id"
            f" WHERE s.run_id IN ({marks(runs)}) ORDER BY 1",
            runs,
        )
    ]


# -- samples ---------------------------------------------------------------------------------------


def count_samples(conn: sqlite3.Connection, f: SampleFilter) -> int:
    where, params = f.where()
    return conn.execute(f"SELECT count(*) FROM samples s WHERE {where}", params).fetchone()[0]


def sample_ids(conn: sqlite3.Connection, f: SampleFilter, offset: int, limit: int) -> list[int]:
    """Ids offset to offset + limit of the filtered samples in the filter's order."""
    where, params = f.where()
    return [
        r[0]
        for r in conn.execute(
            f"SELECT s.id FROM samples s WHERE {where} ORDER BY {f.order()} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
    ]


def sample_rows(conn: sqlite3.Connection, ids: Sequence[int], preview: int) -> list[Row]:
    """A table row of each of these samples, any order: id, run_id, prompt_id, the first
    `preview` characters of the prompt, mode, k, status, think_tokens, answer_tokens,
    elapsed_s."""
    return conn.execute(
        "SELECT s.id, s.run_id, s.prompt_id, substr(p.text, 1, ?), s.mode, s.k, s.status,"
        " s.think_tokens, s.answer_tokens, s.elapsed_s FROM samples s"
        f" JOIN prompts p ON p.id = s.prompt_id WHERE s.id IN ({marks(ids)})",
        (preview, *ids),
    ).fetchall()


def newest_labels(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, dict[str, dict]]:
    """sample id -> {judge: {part: label}}: one verdict per judge and part, the newest of its
    newest version (`newest`, per_judge), judges by name and parts in order."""
    found: dict[int, dict] = {}
    for sample_id, judge, part, label in conn.execute(
        "SELECT j.sample_id, j.judge, j.part, j.label FROM judgements j"
        f" WHERE j.sample_id IN ({marks(ids)}) AND {newest('j', per_judge=True)}"
        f" ORDER BY j.judge, {_PART_ORDER}",
        ids,
    ):
        found.setdefault(sample_id, {}).setdefault(judge, {})[part] = label
    return found


def prompt(conn: sqlite3.Connection, prompt_id: int) -> tuple[str, str | None, str] | None:
    """A prompt's text, category and kind."""
    return conn.execute(
        "SELECT text, category, kind FROM prompts WHERE id = ?", (prompt_id,)
    ).fetchone()


def prompt_samples(conn: sqlite3.Connection, prompt_id: int, runs: Sequence[int]) -> list[Row]:
    """(id, run_id, mode, k) of every sample of a prompt in these runs (every run if none)."""
    where = f" AND run_id IN ({marks(runs)})" if runs else ""
    return conn.execute(
        f"SELECT id, run_id, mode, k FROM samples WHERE prompt_id = ?{where}",
        (prompt_id, *runs),
    ).fetchall()


def prompt_verdict_counts(
    conn: sqlite3.Connection, prompt_id: int, runs: Sequence[int]
) -> list[Row]:
    """The newest verdicts on a prompt's finished samples in these runs (every run if none),
    counted per run, mode, judge, judge version and part: those five, then safe, unsafe and
    unparsed."""
    where = f" AND s.run_id IN ({marks(runs)})" if runs else ""
    return conn.execute(
        "SELECT s.run_id, s.mode, j.judge, j.judge_version, j.part, sum(j.label = 'safe'),"
        " sum(j.label = 'unsafe'), sum(j.label = 'unparsed')"
        " FROM samples s JOIN judgements j ON j.sample_id = s.id"
        f" WHERE s.prompt_id = ? AND s.status = 'done'{where} AND {newest('j')}"
        " GROUP BY s.run_id, s.mode, j.judge, j.judge_version, j.part",
        (prompt_id, *runs),
    ).fetchall()


def sample(conn: sqlite3.Connection, sample_id: int) -> Row | None:
    """One sample in full: id, run_id, prompt_id, prompt, rendered_prompt, mode, k, status, raw,
    thought, answer, injected, sampler, seed and mode_params (the sample's, else its run's),
    mode_switches, think_tokens, answer_tokens, finish_reason, elapsed_s, error."""
    return conn.execute(
        "SELECT s.id, s.run_id, s.prompt_id, p.text, s.rendered_prompt, s.mode, s.k,"
        " s.status, s.raw, s.thought, s.answer, s.injected, coalesce(s.sampler, r.sampler),"
        " coalesce(s.seed, r.seed), coalesce(s.mode_params, r.mode_params), s.mode_switches,"
        " s.think_tokens, s.answer_tokens, s.finish_reason, s.elapsed_s, s.error"
        " FROM samples s JOIN prompts p ON p.id = s.prompt_id JOIN runs r ON r.id = s.run_id"
        " WHERE s.id = ?",
        (sample_id,),
    ).fetchone()


def flags(conn: sqlite3.Connection, sample_id: int) -> list[Row]:
    """A sample's live flags by start: part, start, end, judge, label, categories."""
    return conn.execute(
        "SELECT part, start, end, judge, label, categories FROM flags WHERE sample_id = ?"
        " ORDER BY start, id",
        (sample_id,),
    ).fetchall()


def judgements(conn: sqlite3.Connection, sample_id: int) -> list[Row]:
    """Every verdict on a sample by judge, part, then oldest first: judge, judge_version, part,
    label, score, categories, raw, truncated, and where a windowed judge found the part turn
    unsafe (meta `unsafe_offset`, a character offset into the judged text, or None)."""
    return conn.execute(
        "SELECT judge, judge_version, part, label, score, categories, raw, truncated,"
        " json_extract(meta, '$.unsafe_offset')"
        f" FROM judgements WHERE sample_id = ? ORDER BY judge, {_PART_ORDER}, id",
        (sample_id,),
    ).fetchall()


def think_tokens_by_label(
    conn: sqlite3.Connection, f: SampleFilter, judge: str, part: str
) -> list[tuple[str, int]]:
    """(label, think tokens) of the finished samples the filter selects, by the newest verdict
    of `judge` on `part` (`newest`, per_judge) when safe or unsafe, fewest tokens first.
    Only samples of harmful and unknown prompts count, as in the safety metrics."""
    where, params = f.where()
    return conn.execute(
        "SELECT j.label, s.think_tokens FROM samples s JOIN judgements j"
        " ON j.sample_id = s.id AND j.judge = ? AND j.part = ?"
        f" WHERE {where} AND s.status = 'done' AND s.think_tokens IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM prompts pk WHERE pk.id = s.prompt_id"
        f" AND pk.kind IN {SAFETY_KINDS_SQL})"
        f" AND j.label IN ('safe', 'unsafe') AND {newest('j', per_judge=True)}"
        " ORDER BY s.think_tokens",
        (judge, part, *params),
    ).fetchall()


# -- export ----------------------------------------------------------------------------------------


def records(conn: sqlite3.Connection, f: SampleFilter, after: int, limit: int) -> list[Row]:
    """The next page (by sample id, after `after`) of export rows of the filtered samples: id,
    run_id, dataset, prompt_key, category, prompt kind, prompt, model_path, mode, k, seed,
    status, finish_reason, think_state, thought, answer, raw, think_tokens, answer_tokens,
    injected, sampler (seed and sampler: the sample's, else its run's)."""
    where, params = f.where()
    return conn.execute(
        "SELECT s.id, s.run_id, p.dataset, p.prompt_key, p.category, p.kind, p.text,"
        " r.model_path, s.mode, s.k, coalesce(s.seed, r.seed), s.status, s.finish_reason,"
        " s.think_state, s.thought, s.answer, s.raw, s.think_tokens, s.answer_tokens,"
        " s.injected, coalesce(s.sampler, r.sampler)"
        " FROM samples s JOIN runs r ON r.id = s.run_id JOIN prompts p ON p.id = s.prompt_id"
        f" WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?",
        (*params, after, limit),
    ).fetchall()


def safechain_samples(
    conn: sqlite3.Connection, mode: str, runs: Sequence[int], page: int = 256
) -> Iterator[list[Row]]:
    """Pages of the first-turn samples of `mode` in these runs (every run if none), by run,
    prompt, k and id: run_id, prompt_id, id, the run's K, finished, whether the model closed a
    thought (think_state 'normal'), whether it wrote any of its thought (`think_written`),
    whether the answer has text."""
    where = f" AND s.run_id IN ({marks(runs)})" if runs else ""
    cursor = conn.execute(
        "SELECT s.run_id, s.prompt_id, s.id, r.k, s.status = 'done', s.think_state IS 'normal',"
        f" s.think_written, length(trim(coalesce(s.answer, ''), {BLANK})) > 0"
        " FROM samples s JOIN runs r ON r.id = s.run_id"
        f" WHERE s.mode = ? AND s.parent_id IS NULL{where}"
        " ORDER BY s.run_id, s.prompt_id, s.k, s.id",
        (mode, *runs),
    )
    while rows := cursor.fetchmany(page):
        yield rows


def response(conn: sqlite3.Connection, sample_id: int) -> tuple[str, str]:
    """A sample's instruction (its prompt) and what the model generated: raw after any prefill
    placed before the model's first token (samples.response_start), which is prompt."""
    return conn.execute(
        "SELECT p.text, substr(s.raw, s.response_start + 1)"
        " FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE s.id = ?",
        (sample_id,),
    ).fetchone()

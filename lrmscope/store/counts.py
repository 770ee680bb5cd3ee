"""What `lrmscope metrics` is made of: the newest verdicts (store/filters.py `newest`) on the
finished samples of some runs, grouped by run, mode, dataset, judge, judge version and part (and
prompt category, with `by_category`), optionally only some judges, parts and modes; and, for
calibration, verdicts beside human labels.

The metrics' counts are read from the tallies that triggers keep (schema v6, docs/architecture.md
"Tallies"), per group, never per sample: prompts by their verdict counts (how many prompts had 3
safe and 2 unsafe samples), thought lengths by how many samples had each length, so the rows read
grow with distinct lengths, never with samples or prompts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lrmscope.store.filters import SAFETY_KINDS_SQL, SampleFilter, marks, narrowed, newest
from lrmscope.store.schema import THINK_BUCKET
from lrmscope.vocab import BENIGN, HUMAN, REASONING


def _category(by_category: bool) -> str:
    """A tally `s`'s category as rows give it: None for none (the tallies write ''), or None in
    every row when the counts are not by category."""
    return "nullif(s.category, '')" if by_category else "NULL"


def _tallied(
    f: SampleFilter, judges: Sequence[str], parts: Sequence[str], modes: Sequence[str]
) -> tuple[str, list]:
    """The condition on a tally `s` (schema v6) for the filter's runs and the judges, parts and
    modes asked. The tallies count finished samples by run: a filter that selects samples any
    other way cannot be read from them."""
    if replace(f, runs=(), run_kinds=()) != SampleFilter(statuses=("done",)):
        raise ValueError(f"the tallies count finished samples by run only, not by {f}")
    where, params = replace(f, statuses=()).where()
    kept, more = narrowed(judges, parts, modes, verdicts="s")
    return where + kept, [*params, *more]


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
    unless by_category), prompt kind, n_safe, n_unsafe, n_unparsed, prompts."""
    category = _category(by_category)
    where, params = _tallied(f, judges, parts, modes)
    return conn.execute(
        f"SELECT s.run_id, r.model_path, s.mode, s.dataset, s.judge, s.judge_version, s.part,"
        f" {category}, s.kind, s.n_safe, s.n_unsafe, s.n_unparsed, sum(s.prompts)"
        f" FROM verdict_histogram s JOIN runs r ON r.id = s.run_id WHERE s.prompts > 0 AND {where}"
        " GROUP BY s.run_id, s.mode, s.dataset, s.judge, s.judge_version, s.part,"
        f" {category}, s.kind, s.n_safe, s.n_unsafe, s.n_unparsed",
        params,
    ).fetchall()


def think_buckets(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> list[tuple]:
    """How many samples of harmful and unknown prompts had a thought length in each bucket of
    THINK_BUCKET tokens, and the sum of their lengths, per group and label (safe or unsafe;
    unparsed verdicts and samples without a count left out), buckets in order: run_id, mode,
    dataset, judge, judge_version, part, category (None unless by_category), label, bucket,
    samples, tokens."""
    category = _category(by_category)
    where, params = _tallied(f, judges, parts, modes)
    return conn.execute(
        "SELECT s.run_id, s.mode, s.dataset, s.judge, s.judge_version, s.part,"
        f" {category}, s.label, s.bucket, sum(s.samples), sum(s.tokens) FROM think_buckets s"
        f" WHERE s.samples > 0 AND {where}"
        " GROUP BY s.run_id, s.mode, s.dataset, s.judge, s.judge_version, s.part,"
        f" {category}, s.label, s.bucket ORDER BY s.bucket",
        params,
    ).fetchall()


def think_length_counts(
    conn: sqlite3.Connection, f: SampleFilter, *, judge: str, part: str
) -> list[tuple[str, str, str, int, int]]:
    """How many finished samples of harmful and unknown prompts had each thought length, per
    mode, version of `judge` and its label on `part` (safe or unsafe), from think_tally: mode,
    judge_version, label, think_tokens, samples; in that order."""
    where, params = _tallied(f, (judge,), (part,), ())
    return conn.execute(
        "SELECT s.mode, s.judge_version, s.label, s.think_tokens, sum(s.samples)"
        f" FROM think_tally s WHERE s.samples > 0 AND s.label IN ('safe', 'unsafe') AND {where}"
        " GROUP BY s.mode, s.judge_version, s.label, s.think_tokens"
        " ORDER BY s.mode, s.judge_version, s.label, s.think_tokens",
        params,
    ).fetchall()


def think_lengths(
    conn: sqlite3.Connection, group: tuple, buckets: tuple[int, int], *, by_category: bool
) -> list[tuple[int, int]]:
    """How many samples had each thought length in the buckets first to last, shortest first, of
    one group and label as think_buckets names it: run_id, mode, dataset, judge, judge_version,
    part, category (with by_category; None: the prompts without one), label."""
    run_id, mode, dataset, judge, version, part, category, label = group
    first, last = buckets
    sql = (
        "SELECT think_tokens, sum(samples) FROM think_tally WHERE run_id = ? AND mode = ?"
        " AND dataset = ? AND judge = ? AND judge_version = ? AND part = ? AND label = ?"
        " AND think_tokens BETWEEN ? AND ?"
    )
    params = [run_id, mode, dataset, judge, version, part, label]
    params += [first * THINK_BUCKET, (last + 1) * THINK_BUCKET - 1]
    if by_category:
        sql += " AND category = ?"
        params.append(category or "")
    return conn.execute(sql + " GROUP BY think_tokens ORDER BY think_tokens", params).fetchall()


# A prompt kind as the task its rows belong to (core/metrics.py TASKS).
_TASK = f"CASE WHEN s.kind IN {SAFETY_KINDS_SQL} THEN 'safety' ELSE s.kind END"


def finished_samples(
    conn: sqlite3.Connection, f: SampleFilter, *, by_category: bool = False
) -> list[tuple]:
    """The samples the filter selects per run_id, mode, dataset, category (None unless
    by_category) and task (the prompt kind, 'safety' for harmful and unknown ones): those five,
    then the count."""
    category = _category(by_category)
    where, params = _tallied(f, (), (), ())
    return conn.execute(
        f"SELECT s.run_id, s.mode, s.dataset, {category}, {_TASK}, sum(s.samples)"
        f" FROM sample_tally s WHERE s.samples > 0 AND {where}"
        f" GROUP BY s.run_id, s.mode, s.dataset, {category}, {_TASK}",
        params,
    ).fetchall()


def prompt_counts(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
) -> list[tuple]:
    """Each prompt's safe, unsafe and unparsed verdicts per run, mode, judge, version and part
    (prompt_tally), for pairing prompts across modes or runs: run_id, model_path, mode, dataset,
    judge, judge_version, part, prompt_id, prompt kind, n_safe, n_unsafe, n_unparsed."""
    where, params = _tallied(f, judges, parts, modes)
    return conn.execute(
        "SELECT s.run_id, r.model_path, s.mode, p.dataset, s.judge, s.judge_version, s.part,"
        " s.prompt_id, p.kind, s.n_safe, s.n_unsafe, s.n_unparsed FROM prompt_tally s"
        f" JOIN prompts p ON p.id = s.prompt_id JOIN runs r ON r.id = s.run_id WHERE {where}",
        params,
    ).fetchall()


def sample_prompts(
    conn: sqlite3.Connection, f: SampleFilter, *, modes: Sequence[str] = ()
) -> list[tuple[int, str, int]]:
    """(run_id, mode, prompt_id), once each, of the samples the filter selects: which prompts a
    run's mode was run on (read from the index samples_browse, never from the sample rows)."""
    where, params = f.where()
    kept, more = narrowed((), (), modes)
    return conn.execute(
        "SELECT DISTINCT s.run_id, s.mode, s.prompt_id FROM samples s INDEXED BY samples_browse"
        " JOIN prompts p ON p.id = s.prompt_id"
        f" WHERE {where}{kept}",
        [*params, *more],
    ).fetchall()


def answer_outcomes(
    conn: sqlite3.Connection, f: SampleFilter, checker: str, *, modes: Sequence[str] = ()
) -> list[tuple]:
    """The answer check (by this checker version) of every sample of a reasoning prompt that the
    filter selects, in prompt order: run_id, mode, dataset, prompt_id, outcome and normalized
    answer (both None: not checked yet). The reasoning prompts come first (CROSS JOIN keeps that
    order), so a run without any reads no sample."""
    where, params = f.where()
    kept, more = narrowed((), (), modes)
    return conn.execute(
        "SELECT s.run_id, s.mode, p.dataset, s.prompt_id, c.outcome, c.answer FROM prompts p"
        " CROSS JOIN samples s ON s.prompt_id = p.id"
        " LEFT JOIN answer_checks c ON c.sample_id = s.id AND c.checker = ?"
        f" WHERE p.kind = 'reasoning' AND {where}{kept}"
        " ORDER BY s.run_id, s.mode, s.prompt_id, s.id",
        [checker, *params, *more],
    ).fetchall()


def score_means(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str],
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> list[tuple]:
    """The mean score of the newest verdicts with a score of these judges on the harmful and
    unknown prompts' samples the filter selects: run_id, mode, dataset, judge, judge_version,
    part, category (None unless by_category), mean, how many. For the judges whose verdict is a
    thresholded score (StrongREJECT's); reads their verdicts only."""
    category = "nullif(p.category, '')" if by_category else "NULL"
    where, params = f.where()
    kept, more = narrowed(judges, parts, modes)
    return conn.execute(
        f"SELECT s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part, {category},"
        " avg(j.score), count(*) FROM judgements j JOIN samples s ON s.id = j.sample_id"
        " JOIN prompts p ON p.id = s.prompt_id"
        f" WHERE j.score IS NOT NULL AND p.kind IN {SAFETY_KINDS_SQL} AND {where}{kept}"
        f" AND {newest('j')}"
        f" GROUP BY s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part, {category}",
        [*params, *more],
    ).fetchall()


def reported_refusals(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    judges: Sequence[str] = (),
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
    by_category: bool = False,
) -> list[tuple]:
    """Per benign or reasoning prompt, how many newest parsed verdicts of each judge version
    and part say the response refuses, of those that say either way (meta `refusal`, true or
    false: WildGuard, Qwen3Guard and the StrongREJECT rubric report one): run_id, mode,
    dataset, judge, judge_version, part, category (None unless by_category), prompt kind,
    prompt_id, refusing, reported. Judges that report no refusal have no rows. The benign and
    reasoning prompts come first (CROSS JOIN keeps that order), so a run without any reads no
    verdict."""
    category = "nullif(p.category, '')" if by_category else "NULL"
    where, params = f.where()
    kept, more = narrowed(judges, parts, modes)
    reported = "json_type(j.meta, '$.refusal') IN ('true', 'false')"
    return conn.execute(
        f"SELECT s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part, {category},"
        " p.kind, p.id, sum(json_extract(j.meta, '$.refusal')), count(*) FROM prompts p"
        " CROSS JOIN samples s ON s.prompt_id = p.id JOIN judgements j ON j.sample_id = s.id"
        f" WHERE p.kind IN ('{BENIGN}', '{REASONING}') AND j.label != 'unparsed'"
        f" AND {where}{kept} AND {reported} AND {newest('j')}"
        " GROUP BY s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part, p.id",
        [*params, *more],
    ).fetchall()


def sample_costs(
    conn: sqlite3.Connection, f: SampleFilter, *, modes: Sequence[str] = ()
) -> list[tuple]:
    """What the finished samples of the filter's runs cost, per run, mode, dataset and task (the
    prompt kind, 'safety' for harmful and unknown ones), from sample_tally: run_id, model_path,
    mode, dataset, task, samples, the sum and count of think tokens, the sum of answer tokens,
    and the tokens and seconds of the samples timed."""
    where, params = _tallied(f, (), (), modes)
    return conn.execute(
        f"SELECT s.run_id, r.model_path, s.mode, s.dataset, {_TASK}, sum(s.samples),"
        " sum(s.think_sum), sum(s.think_n), sum(s.answer_sum), sum(s.timed_tokens),"
        " sum(s.timed_ms) / 1000.0 FROM sample_tally s JOIN runs r ON r.id = s.run_id"
        f" WHERE s.samples > 0 AND {where} GROUP BY s.run_id, s.mode, s.dataset, {_TASK}",
        params,
    ).fetchall()


@dataclass(frozen=True)
class MetricCounts:
    """What the metrics are made of: prompt_histogram, think_buckets and finished_samples."""

    prompts: list[tuple]
    buckets: list[tuple]
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
    """The three counts of the metrics, read from the tallies: the finished samples of the
    filter's runs (the filter may select by runs and run kinds only)."""
    return MetricCounts(
        prompt_histogram(conn, f, judges=judges, parts=parts, modes=modes, by_category=by_category),
        think_buckets(conn, f, judges=judges, parts=parts, modes=modes, by_category=by_category),
        finished_samples(conn, f, by_category=by_category),
    )


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
    kept, more = narrowed(judges, parts, modes)
    return conn.execute(
        "SELECT j.judge, j.judge_version, j.label, h.label, count(*)"
        " FROM samples s JOIN judgements j ON j.sample_id = s.id"
        " JOIN judgements h ON h.sample_id = j.sample_id AND h.part = j.part"
        f" WHERE {where}{kept} AND j.judge != ? AND h.judge = ? AND h.label != 'unparsed'"
        f" AND {newest('j')} AND {newest('h')}"
        " GROUP BY j.judge, j.judge_version, j.label, h.label ORDER BY j.judge, j.judge_version",
        [*params, *more, HUMAN, HUMAN],
    ).fetchall()


def judge_pairs(
    conn: sqlite3.Connection,
    f: SampleFilter,
    *,
    parts: Sequence[str] = (),
    modes: Sequence[str] = (),
) -> list[tuple[str, str, str, str, str, str, str, int]]:
    """The sample parts two judges both labelled (newest verdicts of each version; human labels
    included), each pair of judges once (the first by name, then version): part, judge A, its
    version, judge B, its version, A's label, B's label, how many; by part and judges."""
    where, params = f.where()
    kept, more = narrowed((), parts, modes, verdicts="a")
    return conn.execute(
        "SELECT a.part, a.judge, a.judge_version, b.judge, b.judge_version, a.label, b.label,"
        " count(*) FROM samples s JOIN judgements a ON a.sample_id = s.id"
        " JOIN judgements b ON b.sample_id = a.sample_id AND b.part = a.part"
        " AND (b.judge > a.judge OR (b.judge = a.judge AND b.judge_version > a.judge_version))"
        f" WHERE {where}{kept} AND {newest('a')} AND {newest('b')}"
        " GROUP BY a.part, a.judge, a.judge_version, b.judge, b.judge_version, a.label, b.label"
        " ORDER BY a.part, a.judge, a.judge_version, b.judge, b.judge_version",
        [*params, *more],
    ).fetchall()


def modes_other_than(
    conn: sqlite3.Connection, f: SampleFilter, skip: Sequence[str], *, modes: Sequence[str] = ()
) -> list[tuple[int, str]]:
    """(run_id, mode), once each, of the samples the filter selects in modes other than `skip`
    (read from the index samples_browse, never from the sample rows)."""
    where, params = f.where()
    kept, more = narrowed((), (), modes)
    return conn.execute(
        "SELECT DISTINCT s.run_id, s.mode FROM samples s INDEXED BY samples_browse"
        f" WHERE {where}{kept} AND s.mode NOT IN ({marks(skip)}) ORDER BY s.run_id, s.mode",
        [*params, *more, *skip],
    ).fetchall()


# A guard's interventions in a sample's injected spans (engine/guard.py `GuardWatch.take`): the
# spans with a trigger; a restart keeps only its own span, so the count is the highest
# `intervention` number among them.
_TRIGGERS = """
spans AS (
    SELECT g.id, json_extract(j.value, '$.trigger.action') AS action,
           json_extract(j.value, '$.trigger.latency_tokens') AS latency,
           json_extract(j.value, '$.trigger.intervention') AS nth,
           json_extract(j.value, '$.trigger.dropped_tokens') AS dropped
    FROM guarded g, json_each(g.injected) j
    WHERE json_type(j.value, '$.trigger') = 'object'
),
per_sample AS (
    SELECT g.run_id, g.mode, g.prompt_id, g.think_tokens, coalesce(max(x.nth), 0) AS n,
           count(x.action = 'inject' OR NULL) AS injects,
           count(x.action = 'close' OR NULL) AS closes,
           count(x.action = 'restart' OR NULL) AS restarts,
           sum(x.latency) AS latency_sum, count(x.latency) AS latency_n,
           max(x.latency) AS latency_max, coalesce(sum(x.dropped), 0) AS dropped
    FROM guarded g LEFT JOIN spans x ON x.id = g.id GROUP BY g.id
)"""


def guard_interventions(
    conn: sqlite3.Connection, f: SampleFilter, places: Sequence[tuple[int, str]]
) -> list[tuple]:
    """The interventions of the guarded samples (their mode's saved definition has a guard) the
    filter selects in these (run_id, mode) places, per run, mode and prompt: run_id, mode,
    prompt_id, samples, samples intervened, interventions, spans of each action (inject, close,
    restart), the sum, count and maximum of their latencies in tokens, the sum and count of
    think tokens, and the tokens a restart dropped; by run, mode and prompt."""
    if not places:
        return []
    where, params = f.where()
    place = " OR ".join("(s.run_id = ? AND s.mode = ?)" for _ in places)
    return conn.execute(
        "WITH guarded AS (SELECT s.id, s.run_id, s.mode, s.prompt_id, s.think_tokens, s.injected"
        f" FROM samples s WHERE {where} AND ({place})"
        " AND json_extract(s.mode_params, '$.definition.guard') IS NOT NULL),"
        f"{_TRIGGERS}"
        " SELECT run_id, mode, prompt_id, count(*), count(n > 0 OR NULL), sum(n), sum(injects),"
        " sum(closes), sum(restarts), sum(latency_sum), sum(latency_n), max(latency_max),"
        " sum(think_tokens), count(think_tokens), sum(dropped) FROM per_sample"
        " GROUP BY run_id, mode, prompt_id ORDER BY run_id, mode, prompt_id",
        [*params, *(value for pair in places for value in pair)],
    ).fetchall()


def prompt_think_tokens(
    conn: sqlite3.Connection, f: SampleFilter, runs: Sequence[int], mode: str
) -> list[tuple[int, int, int, int]]:
    """The think tokens of the samples the filter selects in one mode of these runs, per prompt
    (from the index samples_browse): run_id, prompt_id, their sum and how many have a count."""
    where, params = f.where()
    return conn.execute(
        "SELECT s.run_id, s.prompt_id, sum(s.think_tokens), count(s.think_tokens)"
        " FROM samples s INDEXED BY samples_browse"
        f" WHERE {where} AND s.mode = ? AND s.run_id IN ({marks(runs)})"
        " GROUP BY s.run_id, s.prompt_id",
        [*params, mode, *runs],
    ).fetchall()

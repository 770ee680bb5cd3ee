"""The database schema as an ordered list of migrations, tracked by PRAGMA user_version.

Append a migration to add to the schema; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- generate / chat / compare / eval
    title TEXT,
    model_path TEXT,
    model_fingerprint TEXT,             -- size + sha256 of the first and last MiB
    model_meta TEXT,                    -- JSON: GGUF metadata worth keeping
    backend TEXT,
    backend_info TEXT,                  -- JSON: device, gpu layers, threads, context, versions
    sampler TEXT,                       -- JSON: every sampler setting
    mode TEXT,
    mode_params TEXT,                   -- JSON
    dataset TEXT,
    k INTEGER,
    seed INTEGER,
    versions TEXT,                      -- JSON: package versions
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'interrupted', 'failed')),
    pid INTEGER,
    host TEXT,
    proc_start TEXT,                    -- the writer process's start time, to tell a reused pid
    started_at TEXT NOT NULL,
    ended_at TEXT
);

CREATE TABLE prompts (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    prompt_key TEXT NOT NULL,
    category TEXT,
    source TEXT,
    text TEXT NOT NULL,
    UNIQUE (dataset, prompt_key)
);

CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    prompt_id INTEGER NOT NULL REFERENCES prompts(id),
    parent_id INTEGER REFERENCES samples(id),   -- the previous turn of a chat
    k INTEGER NOT NULL DEFAULT 0,
    mode TEXT NOT NULL,                 -- the mode in effect at the end
    mode_params TEXT,
    mode_switches TEXT NOT NULL DEFAULT '[]',  -- JSON: live switches {at: raw offset, from, to}
    sampler TEXT,
    seed INTEGER,
    rendered_prompt TEXT,               -- the exact prompt P the model saw
    think_opener_added INTEGER,
    raw TEXT NOT NULL DEFAULT '',
    thought TEXT,
    answer TEXT,
    think_closed INTEGER,
    think_state TEXT,
    close_count INTEGER,
    injected TEXT NOT NULL DEFAULT '[]',  -- JSON list of {start, end, kind, text}, raw offsets
    prompt_tokens INTEGER,
    think_tokens INTEGER,
    answer_tokens INTEGER,
    rethinks INTEGER,
    finish_reason TEXT,
    first_token_s REAL,
    elapsed_s REAL,
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'interrupted', 'failed')),
    error TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT,
    ended_at TEXT
);
CREATE INDEX samples_run ON samples(run_id, prompt_id, k);
CREATE INDEX samples_status ON samples(status);

-- Judge verdicts on a part of a sample; human labels are the judge 'human'. A judge is identified
-- by name, version and the hash of its prompt/list: a change to any of them judges anew.
-- truncated: the text was cut to fit the judge (how, in meta).
CREATE TABLE judgements (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    part TEXT NOT NULL CHECK (part IN ('think', 'answer', 'full')),
    judge TEXT NOT NULL,
    judge_version TEXT NOT NULL DEFAULT '',
    prompt_hash TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL CHECK (label IN ('safe', 'unsafe', 'unparsed')),
    score REAL,
    categories TEXT,
    raw TEXT,
    truncated INTEGER NOT NULL DEFAULT 0,
    meta TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (sample_id, part, judge, judge_version, prompt_hash)
);

-- Live verdicts on segments of a streaming sample (character offsets into samples.raw).
CREATE TABLE flags (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    part TEXT NOT NULL CHECK (part IN ('think', 'answer')),
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    judge TEXT NOT NULL,
    judge_version TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL CHECK (label IN ('safe', 'unsafe', 'unparsed')),
    score REAL,
    categories TEXT,
    raw TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX flags_sample ON flags(sample_id);

CREATE VIEW sample_overview AS
SELECT s.id AS sample_id, r.id AS run_id, r.kind AS run_kind, r.model_path, p.dataset,
       p.prompt_key, p.text AS prompt, s.k, s.mode, s.status, s.finish_reason, s.think_state,
       s.think_tokens, s.answer_tokens, s.thought, s.answer
FROM samples s JOIN runs r ON r.id = s.run_id JOIN prompts p ON p.id = s.prompt_id;
"""

# v2: eval runs. runs.config is the JSON of every setting that defines an eval run (model
# fingerprint, dataset file and hash, filters, modes, K, sampler, mode parameters): a resumed run
# must match it. The view `verdicts` keeps the newest verdict of each judge version per sample and
# part, with what the metrics group by (SQL does the grouping; any SQLite browser reads it), so
# a judge re-run with another model or list never mixes its two versions in one metric.
_V2 = """
ALTER TABLE runs ADD COLUMN config TEXT;
CREATE INDEX samples_run_mode ON samples(run_id, mode, prompt_id, k);
CREATE INDEX samples_run_status ON samples(run_id, status);

CREATE VIEW verdicts AS
SELECT j.sample_id, j.part, j.judge, j.judge_version, j.label, j.score, j.categories,
       s.run_id, r.kind AS run_kind, r.model_path, r.model_fingerprint, p.dataset,
       p.id AS prompt_id, p.prompt_key, p.category, s.mode, s.k, s.think_tokens,
       s.answer_tokens, s.status
FROM judgements j
JOIN samples s ON s.id = j.sample_id
JOIN runs r ON r.id = s.run_id
JOIN prompts p ON p.id = s.prompt_id
WHERE j.id = (SELECT max(j2.id) FROM judgements j2
              WHERE j2.sample_id = j.sample_id AND j2.part = j.part AND j2.judge = j.judge
                AND j2.judge_version = j.judge_version);

-- Verdict counts per prompt of finished samples, what Safe@1 / Safe@K / ConsSafe@K are made of
-- (lrmscope/metrics.py). An unparsed verdict is neither safe nor unsafe.
CREATE VIEW prompt_verdicts AS
SELECT run_id, run_kind, model_path, mode, dataset, judge, judge_version, part, prompt_id,
       prompt_key, category,
       count(*) AS n_samples, sum(label = 'safe') AS n_safe, sum(label = 'unsafe') AS n_unsafe,
       sum(label = 'unparsed') AS n_unparsed
FROM verdicts
WHERE status = 'done'
GROUP BY run_id, run_kind, model_path, mode, dataset, judge, judge_version, part, prompt_id,
         prompt_key, category;
"""

# v3: full-text search for review (SQLite FTS5) over the thought and answer of samples and the text
# of prompts, as external-content tables (the text is stored once, in samples and prompts). A
# running sample is rewritten every flush of its writer: indexing each snapshot would cost the
# square of a long thought, so a sample is indexed once its status leaves 'running' and taken out
# when it is deleted or runs again; each index row then holds exactly the text the triggers saw,
# which is what an external-content 'delete' needs.
# Indexes for review's filters and sorts, so they read small index entries and never the sample
# rows, whose text spills over many pages: samples_browse covers every column a filter or sort of
# samples reads; judgements_sample_label answers "this sample's verdict of a judge on a part" from
# the index alone (it leads with sample_id: an index leading with judge and part made the
# `verdicts` view quadratic); samples_prompt finds the samples of one prompt; samples_parent lets
# a deleted sample find the chat turns that point at it (without it, deleting a run scanned every
# sample once per sample deleted).
_V3 = """
CREATE VIRTUAL TABLE sample_text USING fts5(
    thought, answer, content = 'samples', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO sample_text (rowid, thought, answer)
SELECT id, thought, answer FROM samples WHERE status != 'running';

CREATE TRIGGER samples_text_insert AFTER INSERT ON samples WHEN new.status != 'running'
BEGIN
    INSERT INTO sample_text (rowid, thought, answer) VALUES (new.id, new.thought, new.answer);
END;
CREATE TRIGGER samples_text_update AFTER UPDATE OF status, thought, answer ON samples
WHEN old.status != 'running' OR new.status != 'running'
BEGIN
    INSERT INTO sample_text (sample_text, rowid, thought, answer)
    SELECT 'delete', old.id, old.thought, old.answer WHERE old.status != 'running';
    INSERT INTO sample_text (rowid, thought, answer)
    SELECT new.id, new.thought, new.answer WHERE new.status != 'running';
END;
CREATE TRIGGER samples_text_delete AFTER DELETE ON samples WHEN old.status != 'running'
BEGIN
    INSERT INTO sample_text (sample_text, rowid, thought, answer)
    VALUES ('delete', old.id, old.thought, old.answer);
END;

CREATE VIRTUAL TABLE prompt_text USING fts5(
    text, content = 'prompts', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO prompt_text (prompt_text) VALUES ('rebuild');

CREATE TRIGGER prompts_text_insert AFTER INSERT ON prompts
BEGIN
    INSERT INTO prompt_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER prompts_text_update AFTER UPDATE OF text ON prompts
BEGIN
    INSERT INTO prompt_text (prompt_text, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO prompt_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER prompts_text_delete AFTER DELETE ON prompts
BEGIN
    INSERT INTO prompt_text (prompt_text, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE INDEX samples_browse
    ON samples(run_id, mode, status, think_tokens, elapsed_s, started_at, prompt_id);
CREATE INDEX judgements_sample_label ON judgements(sample_id, part, judge, label);
CREATE INDEX samples_prompt ON samples(prompt_id);
CREATE INDEX samples_parent ON samples(parent_id);
"""

# v4: what is judged (docs/study.md "What is judged"). A prefill placed before the model's first
# token is prompt, and a part the model wrote none of is not judged: samples keep where the
# model's own output starts in raw (`response_start`) and whether it wrote any of the thought
# (`think_written`); the store's part texts are made from them. Verdicts of earlier versions on
# text this rule no longer judges the same way (a thought the model did not write, a full
# response that began with a prefill) move to `superseded_judgements`, so they never mix with
# new ones and `lrmscope judge` judges those parts again; human labels stay. Prompts get their
# kind (harmful / benign / unknown), which the safety metrics are restricted by.
_V4 = """
ALTER TABLE samples ADD COLUMN response_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN think_written INTEGER NOT NULL DEFAULT 0;
ALTER TABLE prompts ADD COLUMN kind TEXT NOT NULL DEFAULT 'unknown'
    CHECK (kind IN ('harmful', 'benign', 'unknown'));

UPDATE samples SET
    response_start = CASE
        WHEN json_extract(injected, '$[0].kind') = 'prefill'
             AND json_extract(injected, '$[0].start') = 0
        THEN json_extract(injected, '$[0].end') ELSE 0 END,
    think_written = CASE
        WHEN think_state = 'normal' THEN 1
        WHEN think_state = 'unclosed' THEN
            length(trim(coalesce(thought, ''), char(32, 9, 10, 13)))
            > coalesce((SELECT sum(length(json_extract(value, '$.text')))
                        FROM json_each(samples.injected)), 0)
        ELSE 0 END;

CREATE TABLE superseded_judgements AS SELECT * FROM judgements WHERE 0;
ALTER TABLE superseded_judgements ADD COLUMN superseded_in INTEGER;  -- the schema version
INSERT INTO superseded_judgements
SELECT j.*, 4 FROM judgements j JOIN samples s ON s.id = j.sample_id
WHERE j.judge != 'human'
  AND ((j.part = 'think' AND NOT s.think_written) OR (j.part = 'full' AND s.response_start > 0));
DELETE FROM judgements WHERE id IN (SELECT id FROM superseded_judgements);

DROP VIEW prompt_verdicts;
DROP VIEW verdicts;
CREATE VIEW verdicts AS
SELECT j.sample_id, j.part, j.judge, j.judge_version, j.label, j.score, j.categories,
       s.run_id, r.kind AS run_kind, r.model_path, r.model_fingerprint, p.dataset,
       p.id AS prompt_id, p.prompt_key, p.category, p.kind AS prompt_kind, s.mode, s.k,
       s.think_tokens, s.answer_tokens, s.status
FROM judgements j
JOIN samples s ON s.id = j.sample_id
JOIN runs r ON r.id = s.run_id
JOIN prompts p ON p.id = s.prompt_id
WHERE j.id = (SELECT max(j2.id) FROM judgements j2
              WHERE j2.sample_id = j.sample_id AND j2.part = j.part AND j2.judge = j.judge
                AND j2.judge_version = j.judge_version);

CREATE VIEW prompt_verdicts AS
SELECT run_id, run_kind, model_path, mode, dataset, judge, judge_version, part, prompt_id,
       prompt_key, category, prompt_kind,
       count(*) AS n_samples, sum(label = 'safe') AS n_safe, sum(label = 'unsafe') AS n_unsafe,
       sum(label = 'unparsed') AS n_unparsed
FROM verdicts
WHERE status = 'done'
GROUP BY run_id, run_kind, model_path, mode, dataset, judge, judge_version, part, prompt_id,
         prompt_key, category, prompt_kind;
"""

# v5: the metrics read verdicts by sample, part, judge, judge version and label, and the
# newest-verdict rule (lrmscope/store/filters.py `newest`) looks for a later verdict of the same
# sample, part, judge and version: judgements_verdict answers both from the index alone, never
# reading the judgements rows (at 100,000 samples, 500,000 verdicts, that halves the metrics'
# reads). It replaces judgements_sample_label, whose lookups (a sample's verdict of a judge on a
# part) it answers too.
_V5 = """
DROP INDEX judgements_sample_label;
CREATE INDEX judgements_verdict ON judgements(sample_id, part, judge, judge_version, label);
"""

# v6: the metrics' counts, kept as the data changes (docs/architecture.md "Tallies"), so
# `lrmscope metrics` reads a few hundred rows instead of every verdict. A verdict counts while it
# is the newest of its judge and version on its sample and part (lrmscope/store/filters.py
# `newest`) and its sample is finished (status 'done'):
#   prompt_tally       per run, mode, prompt, judge, version and part: its safe / unsafe /
#                      unparsed verdicts (rows with none are deleted);
#   verdict_histogram  per group and prompt kind: how many prompts had each count of the above;
#   think_tally        per group, label and thought length: how many samples of harmful and
#                      unknown prompts, the safety metrics' (unparsed verdicts and samples
#                      without a length left out);
#   think_buckets      the same by buckets of THINK_BUCKET tokens, with the sum of their lengths:
#                      a median is found in its bucket, then read among the lengths of that
#                      bucket alone (lrmscope/store/counts.py `think_lengths`);
#   sample_tally       per run, mode and prompt attributes: how many finished samples, and
#                      what they cost (sums of think and answer tokens; the tokens and
#                      milliseconds of those timed, so that sums of integers add exactly).
# The tallies after prompt_tally hold the prompt's dataset, category ('' for none) and kind, so
# their reads join nothing but runs; rows that fall to 0 stay and reads skip them. Every change
# goes through the view `verdict_change` (one row: a verdict starts, +1, or stops, -1, counting),
# so the rule of what a verdict adds is written once. A verdict is never updated in place (a
# trigger forbids it): a new verdict is a new row. A blank prompt category becomes none, as ''
# marks none here.
_PREVIOUS = (  # of the verdict `v` (new or old): the newest one before it, by its judge and version
    "(SELECT max(e.id) FROM judgements e WHERE e.sample_id = {v}.sample_id AND e.part = {v}.part"
    " AND e.judge = {v}.judge AND e.judge_version = {v}.judge_version AND e.id < {v}.id)"
)
_LATEST = (  # the verdict `v` is the newest of its judge and version (the newest-verdict rule)
    "NOT EXISTS (SELECT 1 FROM judgements later WHERE later.sample_id = {v}.sample_id"
    " AND later.part = {v}.part AND later.judge = {v}.judge"
    " AND later.judge_version = {v}.judge_version AND later.id > {v}.id)"
)
_NEWEST = _LATEST.format(v="j")
_SAFETY_KINDS = "('harmful', 'unknown')"  # vocab.SAFETY_KINDS when v6 was written: frozen here
_SAMPLE_KEY = "run_id, mode, dataset, category, kind"
_HISTOGRAM_KEY = f"{_SAMPLE_KEY}, judge, judge_version, part, n_safe, n_unsafe, n_unparsed"
_GROUP_KEY = "run_id, mode, dataset, judge, judge_version, part, label"
_THINK_KEY = f"{_GROUP_KEY}, think_tokens, category"
_BUCKET_KEY = f"{_GROUP_KEY}, category, bucket"
THINK_BUCKET = 256


def _add(table: str, key: str, *columns: str) -> str:
    """The upsert tail adding `columns` of the rows inserted into `table` to the rows there."""
    added = ", ".join(f"{column} = {column} + excluded.{column}" for column in columns)
    return f" ON CONFLICT ({key}) DO UPDATE SET {added};"


_COSTS = {  # sample_tally's columns: what one sample `{a}` adds
    "samples": "1",
    "think_sum": "coalesce({a}.think_tokens, 0)",
    "think_n": "{a}.think_tokens IS NOT NULL",
    "answer_sum": "coalesce({a}.answer_tokens, 0)",
    "timed_tokens": "CASE WHEN {a}.elapsed_s > 0"
    " THEN coalesce({a}.think_tokens, 0) + coalesce({a}.answer_tokens, 0) ELSE 0 END",
    "timed_ms": "CASE WHEN {a}.elapsed_s > 0 THEN CAST(round({a}.elapsed_s * 1000) AS INTEGER)"
    " ELSE 0 END",
}


def _costs(a: str, sign: str, *, total: bool) -> str:
    """sample_tally's values for the sample `a` (or, with total, the sum over the samples `a`),
    with `sign` ('' or '-')."""
    return ", ".join(
        f"{sign}{'sum' if total else ''}({cost.format(a=a)})" for cost in _COSTS.values()
    )


_ADD_COSTS = _add("sample_tally", _SAMPLE_KEY, *_COSTS)


def _verdicts_of(row: str, sign: int) -> str:
    """`row`'s (old or new sample) newest verdicts starting (+1) or stopping (-1) to count."""
    return (
        f"INSERT INTO verdict_change SELECT {row}.run_id, {row}.mode, {row}.prompt_id,"
        f" {row}.think_tokens, j.judge, j.judge_version, j.part, j.label, {sign}"
        f" FROM judgements j WHERE {row}.status = 'done' AND j.sample_id = {row}.id"
        f" AND {_LATEST.format(v='j')};\n"
        f"INSERT INTO sample_tally SELECT {row}.run_id, {row}.mode, p.dataset,"
        f" ifnull(p.category, ''), p.kind, {_costs(row, '' if sign > 0 else '-', total=False)}"
        f" FROM prompts p WHERE {row}.status = 'done' AND p.id = {row}.prompt_id{_ADD_COSTS}"
    )


def _prompt_moves(row: str, sign: str) -> str:
    """The prompt `row`'s (old or new) counts in the three tallies that hold prompt attributes,
    added with `sign` ('' or '-'): a changed dataset, category or kind moves them."""
    attributes = f"{row}.dataset, ifnull({row}.category, ''), {row}.kind"
    return (
        f"INSERT INTO verdict_histogram SELECT t.run_id, t.mode, {attributes}, t.judge,"
        " t.judge_version, t.part, t.n_safe, t.n_unsafe, t.n_unparsed,"
        f" {sign}count(*) FROM prompt_tally t WHERE t.prompt_id = {row}.id"
        " GROUP BY t.run_id, t.mode, t.judge, t.judge_version, t.part, t.n_safe, t.n_unsafe,"
        " t.n_unparsed" + _add("verdict_histogram", _HISTOGRAM_KEY, "prompts") + "\n"
        f"INSERT INTO think_tally SELECT s.run_id, s.mode, {row}.dataset, j.judge,"
        f" j.judge_version, j.part, j.label, s.think_tokens, ifnull({row}.category, ''),"
        f" {sign}count(*) FROM samples s JOIN judgements j ON j.sample_id = s.id"
        f" WHERE s.prompt_id = {row}.id AND {row}.kind IN {_SAFETY_KINDS} AND s.status = 'done'"
        " AND s.think_tokens IS NOT NULL"
        f" AND j.label != 'unparsed' AND {_LATEST.format(v='j')}"
        " GROUP BY s.run_id, s.mode, j.judge, j.judge_version, j.part, j.label, s.think_tokens"
        + _add("think_tally", _THINK_KEY, "samples")
        + "\n"
        f"INSERT INTO sample_tally SELECT s.run_id, s.mode, {attributes},"
        f" {_costs('s', sign, total=True)} FROM samples s"
        f" WHERE s.prompt_id = {row}.id AND s.status = 'done' GROUP BY s.run_id, s.mode"
        + _ADD_COSTS
    )


def _bucket_of(samples: str) -> str:
    """`samples` more of think_tally's new row, added to its bucket."""
    return (
        "INSERT INTO think_buckets VALUES (new.run_id, new.mode, new.dataset, new.judge,"
        " new.judge_version, new.part, new.label, new.category,"
        f" new.think_tokens / {THINK_BUCKET}, {samples}, ({samples}) * new.think_tokens)"
        f" ON CONFLICT ({_BUCKET_KEY}) DO UPDATE SET samples = samples + excluded.samples,"
        " tokens = tokens + excluded.tokens;"
    )


def _histogram_of(row: str, sign: int) -> str:
    """The prompt_tally row `row` (old or new) counted (+1) or not (-1) in verdict_histogram."""
    return (
        f"INSERT INTO verdict_histogram SELECT {row}.run_id, {row}.mode, p.dataset,"
        f" ifnull(p.category, ''), p.kind, {row}.judge, {row}.judge_version, {row}.part,"
        f" {row}.n_safe, {row}.n_unsafe, {row}.n_unparsed, {sign} FROM prompts p"
        f" WHERE p.id = {row}.prompt_id AND {row}.n_safe + {row}.n_unsafe + {row}.n_unparsed > 0"
        + _add("verdict_histogram", _HISTOGRAM_KEY, "prompts")
    )


_V6 = f"""
UPDATE prompts SET category = NULL WHERE category = '';

CREATE TABLE prompt_tally (
    run_id INTEGER NOT NULL, mode TEXT NOT NULL, prompt_id INTEGER NOT NULL,
    judge TEXT NOT NULL, judge_version TEXT NOT NULL, part TEXT NOT NULL,
    n_safe INTEGER NOT NULL, n_unsafe INTEGER NOT NULL, n_unparsed INTEGER NOT NULL,
    PRIMARY KEY (run_id, mode, prompt_id, judge, judge_version, part)
) WITHOUT ROWID;
CREATE INDEX prompt_tally_prompt ON prompt_tally(prompt_id);
CREATE TABLE verdict_histogram (
    run_id INTEGER NOT NULL, mode TEXT NOT NULL, dataset TEXT NOT NULL, category TEXT NOT NULL,
    kind TEXT NOT NULL, judge TEXT NOT NULL, judge_version TEXT NOT NULL, part TEXT NOT NULL,
    n_safe INTEGER NOT NULL, n_unsafe INTEGER NOT NULL, n_unparsed INTEGER NOT NULL,
    prompts INTEGER NOT NULL,
    PRIMARY KEY ({_HISTOGRAM_KEY})
) WITHOUT ROWID;
CREATE TABLE think_tally (
    run_id INTEGER NOT NULL, mode TEXT NOT NULL, dataset TEXT NOT NULL, judge TEXT NOT NULL,
    judge_version TEXT NOT NULL, part TEXT NOT NULL, label TEXT NOT NULL,
    think_tokens INTEGER NOT NULL, category TEXT NOT NULL, samples INTEGER NOT NULL,
    PRIMARY KEY ({_THINK_KEY})
) WITHOUT ROWID;
CREATE TABLE think_buckets (
    run_id INTEGER NOT NULL, mode TEXT NOT NULL, dataset TEXT NOT NULL, judge TEXT NOT NULL,
    judge_version TEXT NOT NULL, part TEXT NOT NULL, label TEXT NOT NULL,
    category TEXT NOT NULL, bucket INTEGER NOT NULL, samples INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY ({_BUCKET_KEY})
) WITHOUT ROWID;
CREATE TABLE sample_tally (
    run_id INTEGER NOT NULL, mode TEXT NOT NULL, dataset TEXT NOT NULL, category TEXT NOT NULL,
    kind TEXT NOT NULL, samples INTEGER NOT NULL, think_sum INTEGER NOT NULL,
    think_n INTEGER NOT NULL, answer_sum INTEGER NOT NULL, timed_tokens INTEGER NOT NULL,
    timed_ms INTEGER NOT NULL,
    PRIMARY KEY ({_SAMPLE_KEY})
) WITHOUT ROWID;

INSERT INTO prompt_tally
SELECT s.run_id, s.mode, s.prompt_id, j.judge, j.judge_version, j.part,
       sum(j.label = 'safe'), sum(j.label = 'unsafe'), sum(j.label = 'unparsed')
FROM samples s JOIN judgements j ON j.sample_id = s.id
WHERE s.status = 'done' AND {_NEWEST}
GROUP BY s.run_id, s.mode, s.prompt_id, j.judge, j.judge_version, j.part;
INSERT INTO verdict_histogram
SELECT t.run_id, t.mode, p.dataset, ifnull(p.category, ''), p.kind, t.judge, t.judge_version,
       t.part, t.n_safe, t.n_unsafe, t.n_unparsed, count(*)
FROM prompt_tally t JOIN prompts p ON p.id = t.prompt_id
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;
INSERT INTO think_tally
SELECT s.run_id, s.mode, p.dataset, j.judge, j.judge_version, j.part, j.label, s.think_tokens,
       ifnull(p.category, ''), count(*)
FROM samples s JOIN prompts p ON p.id = s.prompt_id JOIN judgements j ON j.sample_id = s.id
WHERE s.status = 'done' AND s.think_tokens IS NOT NULL AND j.label != 'unparsed'
  AND p.kind IN {_SAFETY_KINDS} AND {_NEWEST}
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO think_buckets
SELECT {_GROUP_KEY}, category, think_tokens / {THINK_BUCKET}, sum(samples),
       sum(samples * think_tokens)
FROM think_tally GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO sample_tally
SELECT s.run_id, s.mode, p.dataset, ifnull(p.category, ''), p.kind, {_costs("s", "", total=True)}
FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE s.status = 'done'
GROUP BY 1, 2, 3, 4, 5;

CREATE VIEW verdict_change AS
SELECT NULL AS run_id, NULL AS mode, NULL AS prompt_id, NULL AS think_tokens, NULL AS judge,
       NULL AS judge_version, NULL AS part, NULL AS label, NULL AS sign
WHERE 0;
CREATE TRIGGER verdict_change_tally INSTEAD OF INSERT ON verdict_change BEGIN
INSERT INTO prompt_tally VALUES (new.run_id, new.mode, new.prompt_id, new.judge,
    new.judge_version, new.part, new.sign * (new.label = 'safe'),
    new.sign * (new.label = 'unsafe'), new.sign * (new.label = 'unparsed'))
ON CONFLICT (run_id, mode, prompt_id, judge, judge_version, part) DO UPDATE SET
    n_safe = n_safe + excluded.n_safe, n_unsafe = n_unsafe + excluded.n_unsafe,
    n_unparsed = n_unparsed + excluded.n_unparsed;
INSERT INTO think_tally
SELECT new.run_id, new.mode, p.dataset, new.judge, new.judge_version, new.part, new.label,
       new.think_tokens, ifnull(p.category, ''), new.sign
FROM prompts p
WHERE p.id = new.prompt_id AND p.kind IN {_SAFETY_KINDS} AND new.think_tokens IS NOT NULL
  AND new.label != 'unparsed'
{_add("think_tally", _THINK_KEY, "samples")}
END;

CREATE TRIGGER think_tally_insert AFTER INSERT ON think_tally BEGIN
{_bucket_of("new.samples")}
END;
CREATE TRIGGER think_tally_update AFTER UPDATE ON think_tally BEGIN
{_bucket_of("new.samples - old.samples")}
END;

CREATE TRIGGER prompt_tally_insert AFTER INSERT ON prompt_tally BEGIN
{_histogram_of("new", 1)}
END;
CREATE TRIGGER prompt_tally_update AFTER UPDATE ON prompt_tally BEGIN
{_histogram_of("old", -1)}
{_histogram_of("new", 1)}
DELETE FROM prompt_tally
WHERE new.n_safe + new.n_unsafe + new.n_unparsed = 0 AND run_id = new.run_id
  AND mode = new.mode AND prompt_id = new.prompt_id AND judge = new.judge
  AND judge_version = new.judge_version AND part = new.part;
END;

CREATE TRIGGER judgements_tally_insert AFTER INSERT ON judgements
WHEN {_LATEST.format(v="new")}
BEGIN
INSERT INTO verdict_change
SELECT s.run_id, s.mode, s.prompt_id, s.think_tokens, j.judge, j.judge_version, j.part, j.label, -1
FROM samples s JOIN judgements j ON j.sample_id = s.id
WHERE s.id = new.sample_id AND s.status = 'done' AND j.id = {_PREVIOUS.format(v="new")};
INSERT INTO verdict_change
SELECT s.run_id, s.mode, s.prompt_id, s.think_tokens, new.judge, new.judge_version, new.part,
       new.label, 1
FROM samples s WHERE s.id = new.sample_id AND s.status = 'done';
END;
CREATE TRIGGER judgements_tally_delete AFTER DELETE ON judgements
WHEN {_LATEST.format(v="old")}
BEGIN
INSERT INTO verdict_change
SELECT s.run_id, s.mode, s.prompt_id, s.think_tokens, old.judge, old.judge_version, old.part,
       old.label, -1
FROM samples s WHERE s.id = old.sample_id AND s.status = 'done';
INSERT INTO verdict_change
SELECT s.run_id, s.mode, s.prompt_id, s.think_tokens, j.judge, j.judge_version, j.part, j.label, 1
FROM samples s JOIN judgements j ON j.sample_id = s.id
WHERE s.id = old.sample_id AND s.status = 'done' AND j.id = {_PREVIOUS.format(v="old")};
END;
CREATE TRIGGER judgements_written_once
BEFORE UPDATE OF id, sample_id, part, judge, judge_version, prompt_hash, label ON judgements
BEGIN
SELECT RAISE(ABORT, 'a verdict is written once: add a new one instead of changing it');
END;
-- A REPLACE deletes the row it replaces without the delete triggers (unless recursive triggers
-- are on): a verdict or sample that is there already is kept, never replaced (prompts: v7).
CREATE TRIGGER judgements_kept BEFORE INSERT ON judgements
WHEN EXISTS (SELECT 1 FROM judgements WHERE id = new.id OR (sample_id = new.sample_id
    AND part = new.part AND judge = new.judge AND judge_version = new.judge_version
    AND prompt_hash = new.prompt_hash))
BEGIN
SELECT RAISE(IGNORE);
END;
CREATE TRIGGER samples_kept BEFORE INSERT ON samples
WHEN EXISTS (SELECT 1 FROM samples WHERE id = new.id)
BEGIN
SELECT RAISE(ABORT, 'a sample is there with this id: update it instead of replacing it');
END;

CREATE TRIGGER samples_tally_insert AFTER INSERT ON samples WHEN new.status = 'done' BEGIN
{_verdicts_of("new", 1)}
END;
CREATE TRIGGER samples_tally_update
AFTER UPDATE OF id, status, think_tokens, answer_tokens, elapsed_s, run_id, mode, prompt_id
ON samples
WHEN (old.status = 'done' OR new.status = 'done')
 AND (old.id != new.id OR old.status != new.status OR old.think_tokens IS NOT new.think_tokens
      OR old.answer_tokens IS NOT new.answer_tokens OR old.elapsed_s IS NOT new.elapsed_s
      OR old.run_id != new.run_id OR old.mode != new.mode OR old.prompt_id != new.prompt_id)
BEGIN
{_verdicts_of("old", -1)}
{_verdicts_of("new", 1)}
END;
CREATE TRIGGER samples_tally_delete BEFORE DELETE ON samples WHEN old.status = 'done' BEGIN
{_verdicts_of("old", -1)}
END;

CREATE TRIGGER prompts_tally_update AFTER UPDATE OF dataset, category, kind ON prompts
WHEN old.dataset != new.dataset OR old.category IS NOT new.category OR old.kind != new.kind
BEGIN
{_prompt_moves("old", "-")}
{_prompt_moves("new", "")}
END;
"""

# v7: reasoning tasks (docs/study.md "Prompt kinds", "Reasoning accuracy"). A prompt may be of
# kind 'reasoning' and hold its dataset's reference answer (`reference`, the field as the file
# gives it); SQLite cannot widen a CHECK in place, so prompts is rebuilt (with foreign keys off,
# as `migrate` runs every migration) and its triggers made again. `answer_checks` holds what
# lrmscope/engine/answers.py found in each finished sample of a reasoning prompt: the answer as
# written, its normalized form (what Maj@K votes on) and the outcome, under the checker's version.
_V7 = f"""
CREATE TABLE prompts_v7 (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    prompt_key TEXT NOT NULL,
    category TEXT,
    source TEXT,
    text TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'unknown'
        CHECK (kind IN ('harmful', 'benign', 'unknown', 'reasoning')),
    reference TEXT,
    UNIQUE (dataset, prompt_key)
);
INSERT INTO prompts_v7 (id, dataset, prompt_key, category, source, text, kind)
SELECT id, dataset, prompt_key, category, source, text, kind FROM prompts;
PRAGMA legacy_alter_table = ON;
DROP TABLE prompts;
ALTER TABLE prompts_v7 RENAME TO prompts;
PRAGMA legacy_alter_table = OFF;

CREATE TRIGGER prompts_text_insert AFTER INSERT ON prompts
BEGIN
    INSERT INTO prompt_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER prompts_text_update AFTER UPDATE OF text ON prompts
BEGIN
    INSERT INTO prompt_text (prompt_text, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO prompt_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER prompts_text_delete AFTER DELETE ON prompts
BEGIN
    INSERT INTO prompt_text (prompt_text, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER prompts_tally_update AFTER UPDATE OF dataset, category, kind ON prompts
WHEN old.dataset != new.dataset OR old.category IS NOT new.category OR old.kind != new.kind
BEGIN
{_prompt_moves("old", "-")}
{_prompt_moves("new", "")}
END;
-- as v6 keeps verdicts and samples (a REPLACE would skip the tallies' triggers)
CREATE TRIGGER prompts_kept BEFORE INSERT ON prompts
WHEN EXISTS (SELECT 1 FROM prompts WHERE id = new.id
    OR (dataset = new.dataset AND prompt_key = new.prompt_key))
BEGIN
SELECT RAISE(IGNORE);
END;

CREATE TABLE answer_checks (
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
    checker TEXT NOT NULL,
    extracted TEXT,
    answer TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('correct', 'wrong', 'no answer', 'unclosed')),
    created_at TEXT NOT NULL
);
"""

# v8: samples of served chat models (docs/study.md "Hosted models"). `thought_source` says where
# the thought came from: the server's `reasoning_content` or `reasoning` field, `inline` think
# tags in its content, or `none` (it gave no thought: the thought is empty and `absent`); NULL for
# a sample whose raw text is the model's own (a local model, the completions endpoint). `usage`
# is the token usage the server reported, as it reported it (summed over a sample's requests);
# `api` the server's own finish reason and the reasoning controls the requests carried. The key
# is never saved.
_V8 = """
ALTER TABLE samples ADD COLUMN thought_source TEXT
    CHECK (thought_source IN ('reasoning_content', 'reasoning', 'inline', 'none'));
ALTER TABLE samples ADD COLUMN usage TEXT;
ALTER TABLE samples ADD COLUMN api TEXT;
"""

# v9: conversations (core/conversations.py). A conversation of a conversation set is saved once
# per dataset, with its messages as the file gives them and the modes its row names for its
# generated turns (JSON; NULL: the run's modes). Each generated turn is a sample that knows its
# conversation and its turn (the turn-th user message, from 1); its branch is its k, and
# parent_id is the same branch's sample of the turn before. The prompt the model saw at each turn
# (its history with the earlier answers) is the sample's rendered_prompt, as for any sample.
_V9 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    conversation_key TEXT NOT NULL,
    name TEXT,
    messages TEXT NOT NULL,
    modes TEXT,
    UNIQUE (dataset, conversation_key)
);
ALTER TABLE samples ADD COLUMN conversation_id INTEGER REFERENCES conversations(id);
ALTER TABLE samples ADD COLUMN turn INTEGER;
CREATE INDEX samples_conversation ON samples(conversation_id, turn);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)
SCHEMA_VERSION = len(MIGRATIONS)


def _broken_keys(conn: sqlite3.Connection) -> int:
    return len(conn.execute("PRAGMA foreign_key_check").fetchall())


def _statements(script: str) -> list[str]:
    """A script's statements, one each (a trigger with its body): `executescript` would commit
    the transaction `migrate` holds."""
    found, statement = [], ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            found.append(statement)
            statement = ""
    return found


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION, one transaction per migration, which holds the
    write lock from before it reads the version: two processes opening an old database at once
    migrate it once. Foreign keys are off while a migration runs, so it may rebuild a table
    (SQLite's way to make a change ALTER TABLE cannot), and a migration that leaves more broken
    references than it found is undone."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    enforced = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= len(MIGRATIONS):
                    conn.execute("COMMIT")
                    return
                broken = _broken_keys(conn) if version else 0
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                if _broken_keys(conn) > broken:
                    raise sqlite3.IntegrityError(f"migration {version + 1} broke foreign keys")
                conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
        conn.execute(f"PRAGMA foreign_keys = {enforced}")

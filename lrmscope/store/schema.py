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

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION, one transaction per migration."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

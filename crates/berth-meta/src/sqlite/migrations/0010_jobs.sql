-- Berth metadata schema, version 10: the jobs layer (berth_meta::jobs).
--
-- Every time is Unix milliseconds given by the caller; every decision (is a lease free,
-- is a job runnable, when is it retried) is made in Rust (berth_meta::jobs), so these
-- tables hold facts only.

-- How far each outbox consumer has read `events`: the id of the last event it processed.
-- Advanced by compare-and-set, so two nodes cannot both advance it from the same value.
CREATE TABLE job_cursors (
    consumer    TEXT    PRIMARY KEY,
    last_id     INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Queued work. `state`: 'queued' (waiting for run_at_ms), 'running' (claimed by `holder`
-- until lease_expires_ms), 'done', 'dead' (attempts used up). A running job whose lease
-- expired is claimable again: its holder died.
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT    NOT NULL,
    dedupe_key        TEXT,
    payload           TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    run_at_ms         INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    holder            TEXT,
    lease_expires_ms  INTEGER,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,
    finished_ms       INTEGER
);
-- At most one unfinished job per dedupe key (the store checks first; this is the guard).
CREATE UNIQUE INDEX jobs_dedupe ON jobs(dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
-- What a claim looks at: unfinished jobs by kind, oldest due first.
CREATE INDEX jobs_claimable ON jobs(kind, run_at_ms, id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs(finished_ms) WHERE finished_ms IS NOT NULL;

-- Singleton leases for periodic work ("gc", "lifecycle", "upload-expiry", ...): who runs
-- the pass now (holder, until expires_ms; NULL when nobody), when the next pass is due,
-- and a fence that grows with every grant, so a grant is told apart from an earlier one.
CREATE TABLE job_leases (
    name         TEXT    PRIMARY KEY,
    holder       TEXT,
    expires_ms   INTEGER,
    next_due_ms  INTEGER NOT NULL DEFAULT 0,
    fence        INTEGER NOT NULL DEFAULT 0,
    updated_ms   INTEGER NOT NULL
) WITHOUT ROWID;

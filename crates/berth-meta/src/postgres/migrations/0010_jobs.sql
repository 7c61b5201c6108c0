-- Berth metadata schema, version 10 (PostgreSQL): the jobs layer (berth_meta::jobs).
--
-- Every time is Unix milliseconds given by the caller; every decision (is a lease free,
-- is a job runnable, when is it retried) is made in Rust (berth_meta::jobs), so these
-- tables hold facts only. Text compared or sorted is COLLATE "C", as in SQLite.

-- How far each outbox consumer has read `events`: the id of the last event it processed.
CREATE TABLE job_cursors (
    consumer    TEXT    COLLATE "C" PRIMARY KEY,
    last_id     BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL
);

-- Queued work: 'queued', 'running' (claimed by `holder` until lease_expires_ms), 'done',
-- 'dead'. A running job whose lease expired is claimable again: its holder died.
CREATE TABLE jobs (
    id                BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              TEXT    COLLATE "C" NOT NULL,
    dedupe_key        TEXT    COLLATE "C",
    payload           TEXT    NOT NULL,
    state             TEXT    COLLATE "C" NOT NULL,
    run_at_ms         BIGINT  NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    max_attempts      BIGINT  NOT NULL,
    holder            TEXT    COLLATE "C",
    lease_expires_ms  BIGINT,
    last_error        TEXT,
    created_ms        BIGINT  NOT NULL,
    finished_ms       BIGINT
);
CREATE UNIQUE INDEX jobs_dedupe ON jobs(dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs(kind, run_at_ms, id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs(finished_ms) WHERE finished_ms IS NOT NULL;

-- Singleton leases for periodic work: who runs the pass now, when the next is due, and a
-- fence that grows with every grant.
CREATE TABLE job_leases (
    name         TEXT    COLLATE "C" PRIMARY KEY,
    holder       TEXT    COLLATE "C",
    expires_ms   BIGINT,
    next_due_ms  BIGINT  NOT NULL DEFAULT 0,
    fence        BIGINT  NOT NULL DEFAULT 0,
    updated_ms   BIGINT  NOT NULL
);

-- Berth metadata schema, version 7: lifecycle policies, their previews, and the log of
-- what lifecycle execution expired.
--
-- A repository's policy and its preview belong to its row and go with it (ON DELETE
-- CASCADE). The policy is the text the client sent (validated by the edge with
-- berth-lifecycle); last_evaluated_ms is ECR's lastEvaluatedAt, NULL until the first run.
CREATE TABLE lifecycle_policies (
    repo_id            INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id         TEXT    NOT NULL,
    policy_text        TEXT    NOT NULL,
    updated_ms         INTEGER NOT NULL,
    last_evaluated_ms  INTEGER
);

-- The latest preview of each repository (ECR keeps one). status is IN_PROGRESS, COMPLETE
-- or FAILED; generation identifies one run, so a finished run never overwrites a newer
-- one started meanwhile.
CREATE TABLE lifecycle_previews (
    repo_id               INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id            TEXT    NOT NULL,
    generation            INTEGER NOT NULL,
    policy_text           TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    started_ms            INTEGER NOT NULL,
    finished_ms           INTEGER,
    expiring_count        INTEGER NOT NULL DEFAULT 0,
    transitioning_count   INTEGER NOT NULL DEFAULT 0,
    failure               TEXT
);

-- A preview's rows in the order GetLifecyclePolicyPreview pages them (position), one per
-- image acted on. tags is a JSON array; tagged says whether it is non-empty (the
-- tagStatus filter). target_class is NULL for EXPIRE.
CREATE TABLE lifecycle_preview_results (
    repo_id        INTEGER NOT NULL REFERENCES lifecycle_previews(repo_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    digest         TEXT    NOT NULL,
    tags           TEXT    NOT NULL,
    tagged         INTEGER NOT NULL,
    pushed_ms      INTEGER NOT NULL,
    action         TEXT    NOT NULL,
    target_class   TEXT,
    rule_priority  INTEGER NOT NULL,
    storage_class  TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    PRIMARY KEY (repo_id, position)
) WITHOUT ROWID;

-- What execution expired, by which rule, when: an append-only log kept by repository name
-- (it outlives the repository, like the event outbox).
CREATE TABLE lifecycle_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    repository     TEXT    NOT NULL,
    digest         TEXT    NOT NULL,
    tags           TEXT    NOT NULL,
    rule_priority  INTEGER NOT NULL,
    action         TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    pushed_ms      INTEGER NOT NULL
);
CREATE INDEX lifecycle_events_repository ON lifecycle_events(repository, id);

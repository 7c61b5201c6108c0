-- Berth metadata schema, version 7 (PostgreSQL): lifecycle policies, their previews, and
-- the log of what lifecycle execution expired.
--
-- A repository's policy and its preview belong to its row and go with it (ON DELETE
-- CASCADE). The policy is the text the client sent (validated by the edge with
-- berth-lifecycle); last_evaluated_ms is ECR's lastEvaluatedAt, NULL until the first run.
CREATE TABLE lifecycle_policies (
    repo_id            BIGINT  PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id         TEXT    COLLATE "C" NOT NULL,
    policy_text        TEXT    NOT NULL,
    updated_ms         BIGINT  NOT NULL,
    last_evaluated_ms  BIGINT
);

-- The latest preview of each repository (ECR keeps one). status is IN_PROGRESS, COMPLETE
-- or FAILED; generation identifies one run, so a finished run never overwrites a newer
-- one started meanwhile.
CREATE TABLE lifecycle_previews (
    repo_id               BIGINT  PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id            TEXT    COLLATE "C" NOT NULL,
    generation            BIGINT  NOT NULL,
    policy_text           TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    started_ms            BIGINT  NOT NULL,
    finished_ms           BIGINT,
    expiring_count        BIGINT  NOT NULL DEFAULT 0,
    transitioning_count   BIGINT  NOT NULL DEFAULT 0,
    failure               TEXT
);

-- A preview's rows in the order GetLifecyclePolicyPreview pages them (position), one per
-- image acted on. tags is a JSON array; tagged says whether it is non-empty (the
-- tagStatus filter). target_class is NULL for EXPIRE.
CREATE TABLE lifecycle_preview_results (
    repo_id        BIGINT  NOT NULL REFERENCES lifecycle_previews(repo_id) ON DELETE CASCADE,
    position       BIGINT  NOT NULL,
    digest         TEXT    COLLATE "C" NOT NULL,
    tags           TEXT    NOT NULL,
    tagged         BOOLEAN NOT NULL,
    pushed_ms      BIGINT  NOT NULL,
    action         TEXT    NOT NULL,
    target_class   TEXT,
    rule_priority  BIGINT  NOT NULL,
    storage_class  TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    PRIMARY KEY (repo_id, position)
);

-- What execution expired, by which rule, when: an append-only log kept by repository name
-- (it outlives the repository, like the event outbox).
CREATE TABLE lifecycle_events (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms          BIGINT  NOT NULL,
    repository     TEXT    COLLATE "C" NOT NULL,
    digest         TEXT    COLLATE "C" NOT NULL,
    tags           TEXT    NOT NULL,
    rule_priority  BIGINT  NOT NULL,
    action         TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    pushed_ms      BIGINT  NOT NULL
);
CREATE INDEX lifecycle_events_repository ON lifecycle_events(repository, id);

-- Berth metadata schema, version 5 (PostgreSQL): ECR registry configuration.
-- Policies and lifecycle policies are the text the client sent. A repository's policy and
-- tags belong to its row and go with it (ON DELETE CASCADE). account_id is the account
-- that owns the fact.

CREATE TABLE repository_policies (
    repo_id      BIGINT  PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id   TEXT    COLLATE "C" NOT NULL,
    policy_text  TEXT    NOT NULL,
    updated_ms   BIGINT  NOT NULL
);

CREATE TABLE repository_tags (
    repo_id      BIGINT  NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    account_id   TEXT    COLLATE "C" NOT NULL,
    key          TEXT    COLLATE "C" NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (repo_id, key)
);

CREATE TABLE registry_policies (
    account_id   TEXT    COLLATE "C" PRIMARY KEY,
    policy_text  TEXT    NOT NULL,
    updated_ms   BIGINT  NOT NULL
);

CREATE TABLE account_settings (
    account_id   TEXT    COLLATE "C" NOT NULL,
    name         TEXT    COLLATE "C" NOT NULL,
    value        TEXT    NOT NULL,
    updated_ms   BIGINT  NOT NULL,
    PRIMARY KEY (account_id, name)
);

-- applied_for: the scenarios, comma-separated (CREATE_ON_PUSH,PULL_THROUGH_CACHE,REPLICATION).
-- resource_tags: a JSON array of the model's Tag shape ({"Key","Value"}).
-- image_tag_mutability_exclusion_filters: a JSON array of wildcard strings, as repositories keep them.
CREATE TABLE repository_creation_templates (
    account_id            TEXT    COLLATE "C" NOT NULL,
    prefix                TEXT    COLLATE "C" NOT NULL,
    description           TEXT,
    applied_for           TEXT    NOT NULL,
    image_tag_mutability  TEXT    NOT NULL,
    image_tag_mutability_exclusion_filters TEXT NOT NULL,
    repository_policy     TEXT,
    lifecycle_policy      TEXT,
    resource_tags         TEXT    NOT NULL,
    encryption_type       TEXT,
    kms_key               TEXT,
    custom_role_arn       TEXT,
    created_ms            BIGINT  NOT NULL,
    updated_ms            BIGINT  NOT NULL,
    PRIMARY KEY (account_id, prefix)
);

-- Berth metadata schema, version 5: ECR registry configuration.
-- Policies and lifecycle policies are the text the client sent. A repository's policy and
-- tags belong to its row and go with it (ON DELETE CASCADE). account_id is the account
-- that owns the fact; repositories are not yet scoped by account.

CREATE TABLE repository_policies (
    repo_id      INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    account_id   TEXT    NOT NULL,
    policy_text  TEXT    NOT NULL,
    updated_ms   INTEGER NOT NULL
);

CREATE TABLE repository_tags (
    repo_id      INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    account_id   TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (repo_id, key)
) WITHOUT ROWID;

CREATE TABLE registry_policies (
    account_id   TEXT    PRIMARY KEY,
    policy_text  TEXT    NOT NULL,
    updated_ms   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE account_settings (
    account_id   TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- applied_for: the scenarios, comma-separated (CREATE_ON_PUSH,PULL_THROUGH_CACHE,REPLICATION).
-- resource_tags: a JSON array of the model's Tag shape ({"Key","Value"}).
-- image_tag_mutability_exclusion_filters: a JSON array of wildcard strings, as repositories keep them.
CREATE TABLE repository_creation_templates (
    account_id            TEXT    NOT NULL,
    prefix                TEXT    NOT NULL,
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
    created_ms            INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL,
    PRIMARY KEY (account_id, prefix)
) WITHOUT ROWID;

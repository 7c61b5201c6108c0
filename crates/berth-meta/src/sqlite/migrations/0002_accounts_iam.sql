-- Berth metadata schema, version 2: accounts and IAM (users, groups, inline policies,
-- access keys). Times are Unix milliseconds. Internal references use the integer row ids
-- (`user_ref`, `group_ref`) so that a rename touches one row; `user_id`/`group_id` are
-- the AWS-style unique ids (AIDA..., AGPA...) reported to clients.

-- An account owns one registry namespace. `id` is the 12-digit AWS account id.
CREATE TABLE accounts (
    id          TEXT    PRIMARY KEY CHECK (length(id) = 12 AND id NOT GLOB '*[^0-9]*'),
    alias       TEXT    UNIQUE,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- IAM user names are unique per account regardless of case, as in AWS.
CREATE TABLE iam_users (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts(id),
    name        TEXT    NOT NULL COLLATE NOCASE,
    path        TEXT    NOT NULL,
    user_id     TEXT    NOT NULL UNIQUE,
    arn         TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE iam_groups (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts(id),
    name        TEXT    NOT NULL COLLATE NOCASE,
    path        TEXT    NOT NULL,
    group_id    TEXT    NOT NULL UNIQUE,
    arn         TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE iam_group_members (
    group_ref   INTEGER NOT NULL REFERENCES iam_groups(id) ON DELETE CASCADE,
    user_ref    INTEGER NOT NULL REFERENCES iam_users(id),
    added_ms    INTEGER NOT NULL,
    PRIMARY KEY (group_ref, user_ref)
) WITHOUT ROWID;
CREATE INDEX iam_group_members_user ON iam_group_members(user_ref);

-- Inline policies: the document is the JSON text exactly as given.
CREATE TABLE iam_user_policies (
    user_ref    INTEGER NOT NULL REFERENCES iam_users(id),
    name        TEXT    NOT NULL,
    document    TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (user_ref, name)
) WITHOUT ROWID;

CREATE TABLE iam_group_policies (
    group_ref   INTEGER NOT NULL REFERENCES iam_groups(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    document    TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (group_ref, name)
) WITHOUT ROWID;

-- Access keys of IAM users (user_ref set) and of account roots (user_ref NULL).
-- `secret_enc` is the secret access key sealed with the master key (<data-dir>/master.key):
-- version byte 1, 4-byte master key id, 12-byte random nonce, AES-256-GCM ciphertext+tag,
-- with the access key id as associated data. SigV4 needs the plaintext, so it cannot be hashed.
CREATE TABLE access_keys (
    access_key_id TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL REFERENCES accounts(id),
    user_ref      INTEGER REFERENCES iam_users(id),
    status        TEXT    NOT NULL CHECK (status IN ('Active', 'Inactive')),
    secret_enc    BLOB    NOT NULL,
    created_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_owner ON access_keys(account_id, user_ref);

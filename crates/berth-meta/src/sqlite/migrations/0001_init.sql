-- Berth metadata schema, version 1.
-- Times are Unix milliseconds. Digests are stored as their canonical "algorithm:hex" text.

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL
);

-- One row per stored blob, for the whole registry (bytes are deduplicated).
CREATE TABLE blobs (
    digest      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Which repository may see which blob.
CREATE TABLE blob_links (
    repo_id     INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest      TEXT    NOT NULL REFERENCES blobs(digest),
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX blob_links_digest ON blob_links(digest);

-- Manifests with their exact bytes; the digest is of those bytes.
CREATE TABLE manifests (
    repo_id       INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    body          BLOB    NOT NULL,
    pushed_ms     INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject IS NOT NULL;

-- What each manifest references: kind 0 = blob (config, layer), kind 1 = child manifest.
CREATE TABLE manifest_refs (
    repo_id   INTEGER NOT NULL,
    manifest  TEXT    NOT NULL,
    kind      INTEGER NOT NULL,
    target    TEXT    NOT NULL,
    PRIMARY KEY (repo_id, manifest, kind, target),
    FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_refs_target ON manifest_refs(repo_id, target, kind);

CREATE TABLE tags (
    repo_id     INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(repo_id, digest);

-- Uploads in progress; their bytes are in the blob store under the same id.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    repository  TEXT    NOT NULL,
    started_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_updated ON uploads(updated_ms);

-- The event outbox, written in the same transaction as the change it describes.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    repository  TEXT    NOT NULL,
    digest      TEXT,
    tag         TEXT
);

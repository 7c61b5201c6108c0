-- Berth metadata schema, version 11: blob deletions in progress.
--
-- Garbage collection decides a deletion in one transaction (re-check, remove the `blobs`
-- row, insert here), deletes the bytes outside it, then removes this row. While a row is
-- here, pins and commits of the digest are refused, so no commit relies on bytes being
-- deleted; a row left by a crash is finished by a later pass (see berth-meta's gc.rs).
CREATE TABLE blob_deletions (
    digest      TEXT    PRIMARY KEY,
    started_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blob_deletions_started ON blob_deletions(started_ms);

-- Berth metadata schema, version 11 (PostgreSQL): blob deletions in progress.
--
-- Garbage collection decides a deletion in one transaction (re-check, remove the `blobs`
-- row, insert here), deletes the bytes outside it, then removes this row. While a row is
-- here, pins and commits of the digest are refused (see berth-meta's gc.rs).
CREATE TABLE blob_deletions (
    digest      TEXT    COLLATE "C" PRIMARY KEY,
    started_ms  BIGINT  NOT NULL
);
CREATE INDEX blob_deletions_started ON blob_deletions(started_ms);

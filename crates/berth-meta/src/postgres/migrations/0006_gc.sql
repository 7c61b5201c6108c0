-- Berth metadata schema, version 6 (PostgreSQL): online garbage collection.
--
-- `orphaned_ms` is when a garbage collection pass found the row unreferenced (a link no
-- manifest of its repository uses; a blob no link, manifest or pin holds); NULL while it
-- is referenced. A row is deleted only once this is older than the grace period, and the
-- deleting transaction re-checks that it is still unreferenced.
ALTER TABLE blobs ADD COLUMN orphaned_ms BIGINT;
ALTER TABLE blob_links ADD COLUMN orphaned_ms BIGINT;
CREATE INDEX blobs_orphaned ON blobs(orphaned_ms) WHERE orphaned_ms IS NOT NULL;
CREATE INDEX blob_links_orphaned ON blob_links(orphaned_ms) WHERE orphaned_ms IS NOT NULL;

-- Whether any manifest of any repository references a blob (config or layer), by digest.
CREATE INDEX manifest_refs_blob ON manifest_refs(target) WHERE kind = 0;

-- Blobs a commit is about to record: pinned before the upload is moved into place (or
-- dropped as a duplicate) and unpinned by the transaction that records the blob, so a
-- blob being committed is never deleted in between. `holder` is the upload's id.
CREATE TABLE blob_pins (
    holder      TEXT    COLLATE "C" PRIMARY KEY,
    digest      TEXT    COLLATE "C" NOT NULL,
    created_ms  BIGINT  NOT NULL
);
CREATE INDEX blob_pins_digest ON blob_pins(digest);
CREATE INDEX blob_pins_created ON blob_pins(created_ms);

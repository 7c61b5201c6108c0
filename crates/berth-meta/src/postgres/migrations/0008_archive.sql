-- Berth metadata schema, version 8 (PostgreSQL): the archive storage class (ECR's
-- UpdateImageStorageClass).
--
-- image_storage: an image's status once it has ever been archived (no row = ACTIVE, never
-- archived). ARCHIVED images are listed but not pullable; ACTIVATING ones are being
-- restored. archived_ms / activated_ms are ECR's lastArchivedAt / lastActivatedAt. The row
-- belongs to the manifest and goes with it.
CREATE TABLE image_storage (
    repo_id       BIGINT  NOT NULL,
    digest        TEXT    COLLATE "C" NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'ARCHIVED', 'ACTIVATING')),
    archived_ms   BIGINT,
    activated_ms  BIGINT,
    PRIMARY KEY (repo_id, digest),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX image_storage_status ON image_storage(status) WHERE status <> 'ACTIVE';

-- Blobs with a verified copy in the archive tier (size = the blob's, stored_size = the
-- copy's). standard is true while the standard copy is kept (an ACTIVE image, a pin or an
-- upload in progress still needs it), false once archiving dropped it (with the links of
-- the archived images' repositories). Deliberately no foreign key to blobs: garbage
-- collection deletes blob rows on its own terms, and the archive sweep then deletes copies
-- no archived image needs.
CREATE TABLE archived_blobs (
    digest       TEXT    COLLATE "C" PRIMARY KEY,
    size         BIGINT  NOT NULL,
    stored_size  BIGINT  NOT NULL,
    archived_ms  BIGINT  NOT NULL,
    standard     BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX archived_blobs_standard ON archived_blobs(digest) WHERE standard;

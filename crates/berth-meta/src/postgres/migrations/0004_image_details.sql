-- Berth metadata schema, version 4 (PostgreSQL): what the ECR image API reports, computed
-- once at push time so that DescribeImages is one indexed, paginated query.
--
-- SQLite's version 4 also back-fills image_size of manifests pushed before it. No
-- PostgreSQL database predates the PostgreSQL backend (which starts at the latest
-- version), so there is nothing to back-fill here.

-- Tag mutability exclusion filters of the *_WITH_EXCLUSION modes: a JSON array of
-- wildcard strings ("*" matches any run of characters).
ALTER TABLE repositories ADD COLUMN tag_mutability_exclusions TEXT NOT NULL DEFAULT '[]';

-- ECR's imageSizeInBytes: for an image manifest the sum of its layers' sizes (the stored
-- blob sizes, config excluded); for an index the largest of its children's sizes.
ALTER TABLE manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT 0;

-- When an image was last pulled (ECR's lastRecordedPullTime), written in batches by the
-- registry's pull-time recorder, never on the pull itself. Goes with its manifest.
CREATE TABLE image_pulls (
    repo_id       BIGINT  NOT NULL,
    digest        TEXT    COLLATE "C" NOT NULL,
    last_pull_ms  BIGINT  NOT NULL,
    PRIMARY KEY (repo_id, digest),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);

-- Principals whose pulls do not update the pull time (Register/Deregister/
-- ListPullTimeUpdateExclusions), per registry (account).
CREATE TABLE pull_time_exclusions (
    account_id     TEXT    COLLATE "C" NOT NULL,
    principal_arn  TEXT    COLLATE "C" NOT NULL,
    created_ms     BIGINT  NOT NULL,
    PRIMARY KEY (account_id, principal_arn)
);

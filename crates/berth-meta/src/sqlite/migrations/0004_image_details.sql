-- Berth metadata schema, version 4: what the ECR image API reports, computed once at push
-- time so that DescribeImages is one indexed, paginated query.

-- Tag mutability exclusion filters of the *_WITH_EXCLUSION modes: a JSON array of
-- wildcard strings ("*" matches any run of characters).
ALTER TABLE repositories ADD COLUMN tag_mutability_exclusions TEXT NOT NULL DEFAULT '[]';

-- ECR's imageSizeInBytes: for an image manifest the sum of its layers' sizes (the stored
-- blob sizes, config excluded); for an index the largest of its children's sizes.
ALTER TABLE manifests ADD COLUMN image_size INTEGER NOT NULL DEFAULT 0;

-- Back-fill manifests pushed before this version from their bytes: declared layer sizes,
-- then indexes from their children.
UPDATE manifests SET image_size = COALESCE((
    SELECT SUM(json_extract(l.value, '$.size'))
    FROM json_each(CAST(manifests.body AS TEXT), '$.layers') AS l), 0)
WHERE json_valid(CAST(body AS TEXT));
UPDATE manifests SET image_size = COALESCE((
    SELECT MAX(c.image_size) FROM manifest_refs r
      JOIN manifests c ON c.repo_id = r.repo_id AND c.digest = r.target
    WHERE r.repo_id = manifests.repo_id AND r.manifest = manifests.digest AND r.kind = 1), 0)
WHERE EXISTS (SELECT 1 FROM manifest_refs r
              WHERE r.repo_id = manifests.repo_id AND r.manifest = manifests.digest AND r.kind = 1);

-- When an image was last pulled (ECR's lastRecordedPullTime), written in batches by the
-- registry's pull-time recorder, never on the pull itself. Goes with its manifest.
CREATE TABLE image_pulls (
    repo_id       INTEGER NOT NULL,
    digest        TEXT    NOT NULL,
    last_pull_ms  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;

-- Principals whose pulls do not update the pull time (Register/Deregister/
-- ListPullTimeUpdateExclusions), per registry (account).
CREATE TABLE pull_time_exclusions (
    account_id     TEXT    NOT NULL,
    principal_arn  TEXT    NOT NULL,
    created_ms     INTEGER NOT NULL,
    PRIMARY KEY (account_id, principal_arn)
) WITHOUT ROWID;

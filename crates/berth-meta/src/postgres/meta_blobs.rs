//! [`BlobLinkStore`] and [`UploadStore`] for PostgreSQL.
//!
//! Garbage collection and these writes agree through the `blobs` row (see [`crate::gc`]:
//! a blob's deletion and anything that makes it referenced are serialized on its digest).
//! Rows locked:
//! - `commit_blob` takes the digest's transaction-level advisory lock
//!   (`pg_advisory_xact_lock(hashtext(digest))`, for deletions of bytes that have no row to
//!   lock), then upserts the `blobs` row (`INSERT ... ON CONFLICT DO UPDATE`, an exclusive
//!   row lock that waits for a deletion holding the row `FOR UPDATE`), and only then, in a
//!   later statement that sees what committed meanwhile, checks for a deletion in progress
//!   (`blob_deletions`); its link is upserted (exclusive lock on the link row). A deciding
//!   GC transaction that takes both should take them in the same order;
//! - `mount_blob` reads the source link and its blob `FOR SHARE OF l, b`: neither can be
//!   deleted before the new link commits, and a deletion already holding them is waited
//!   for (then the blob is reported absent);
//! - `unlink_blob` locks the link `FOR UPDATE` before checking that no manifest uses it, so
//!   a manifest being pushed (which holds the link `FOR SHARE`) either commits first and
//!   is seen, or finds the link gone;
//! - every write into a repository holds its row (`FOR KEY SHARE`, see `meta_repos`).

use std::collections::HashMap;

use berth_types::{Digest, RepositoryName};

use super::meta::PgMetaStore;
use super::meta_repos::{ensure_repo, existing_repo, parse_digest, parse_repository, RepoLock};
use crate::{BlobLinkStore, MetaError, Result, UploadRecord, UploadStore};

/// `manifest_refs.kind` of a blob (config or layer) and of a child manifest.
pub(super) const REF_BLOB: i32 = 0;
pub(super) const REF_MANIFEST: i32 = 1;

fn size_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait::async_trait]
impl BlobLinkStore for PgMetaStore {
    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let (name, d) = (repo.qualified(), digest.to_string());
        let client = self.db.client().await?;
        // A pull's hot path (every blob GET and HEAD): prepared once per connection.
        let st = client
            .prepare_cached(
                "SELECT b.size, l.orphaned_ms IS NOT NULL FROM blob_links l
                   JOIN repositories r ON r.id = l.repo_id
                   JOIN blobs b ON b.digest = l.digest
                 WHERE r.name = $1 AND l.digest = $2",
            )
            .await?;
        let found = client
            .query_opt(&st, &[&name, &d])
            .await?
            .map(|r| Ok::<_, MetaError>((r.try_get::<_, i64>(0)?, r.try_get::<_, bool>(1)?)))
            .transpose()?;
        match found {
            None => Ok(None),
            Some((size, false)) => Ok(Some(size_of(size))),
            // Garbage collection marked the link unused. A client that sees the blob now
            // may reference it in a manifest next (a HEAD before a push), so the mark is
            // cleared, giving it a whole grace period; if collection deleted the link
            // meanwhile, the blob is reported absent and the client uploads it again.
            Some((size, true)) => {
                let kept = client
                    .execute(
                        "UPDATE blob_links SET orphaned_ms = NULL WHERE digest = $2
                           AND repo_id = (SELECT id FROM repositories WHERE name = $1)",
                        &[&name, &d],
                    )
                    .await?;
                Ok((kept > 0).then_some(size_of(size)))
            }
        }
    }

    async fn commit_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        upload_id: Option<&str>,
    ) -> Result<()> {
        let (name, d) = (repo.qualified(), digest.to_string());
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let d = &d;
        self.db
            .retry(|| async move {
                let now = super::now_ms();
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let repo = ensure_repo(&*tx, name, now, RepoLock::KeyShare).await?;
                // The digest's advisory lock (the one `crate::gc` names), for a deletion of
                // bytes no `blobs` row records, which has no row to lock; then the row.
                tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[d])
                    .await?;
                // Recording a blob references it: any garbage-collection mark goes. The
                // upsert locks the row (waiting for a deletion that holds it).
                tx.execute(
                    "INSERT INTO blobs (digest, size, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (digest) DO UPDATE SET orphaned_ms = NULL",
                    &[d, &size, &now],
                )
                .await?;
                // Bytes being deleted are not bytes to record (see `crate::gc`); checked
                // after the lock, so a deletion committed while waiting is seen.
                let deleting: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = $1)",
                        &[d],
                    )
                    .await?
                    .try_get(0)?;
                if deleting {
                    return Err(MetaError::BlobBeingDeleted(digest.clone()));
                }
                tx.execute(
                    "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (repo_id, digest) DO UPDATE SET orphaned_ms = NULL",
                    &[&repo.id, d, &now],
                )
                .await?;
                if let Some(u) = upload_id {
                    tx.execute("DELETE FROM uploads WHERE id = $1", &[&u])
                        .await?;
                    // The link now holds the blob; the commit's pin (see
                    // `GcStore::pin_blob`) can go.
                    tx.execute("DELETE FROM blob_pins WHERE holder = $1", &[&u])
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn mount_blob(
        &self,
        to: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let (to, from, d) = (to.qualified(), from.qualified(), digest.to_string());
        let d = &d;
        self.db
            .retry(|| async move {
                let now = super::now_ms();
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let size: Option<i64> = tx
                    .query_opt(
                        "SELECT b.size FROM blob_links l
                           JOIN repositories r ON r.id = l.repo_id
                           JOIN blobs b ON b.digest = l.digest
                         WHERE r.name = $1 AND l.digest = $2
                         FOR SHARE OF l, b",
                        &[&from, d],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                let Some(size) = size else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let repo = ensure_repo(&*tx, to, now, RepoLock::KeyShare).await?;
                tx.execute(
                    "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (repo_id, digest) DO UPDATE SET orphaned_ms = NULL",
                    &[&repo.id, d, &now],
                )
                .await?;
                tx.commit().await?;
                Ok(Some(size_of(size)))
            })
            .await
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.qualified(), digest.to_string());
        let d = &d;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = existing_repo(&*tx, name).await? else {
                    return Ok(false);
                };
                // Lock the link first: a manifest push holding it commits before the
                // check below, or finds it gone.
                let linked = tx
                    .query_opt(
                        "SELECT 1 FROM blob_links WHERE repo_id = $1 AND digest = $2 FOR UPDATE",
                        &[&id, d],
                    )
                    .await?
                    .is_some();
                let user: Option<String> = tx
                    .query_opt(
                        "SELECT manifest FROM manifest_refs
                         WHERE repo_id = $1 AND target = $2 AND kind = $3 LIMIT 1",
                        &[&id, d, &REF_BLOB],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                if let Some(manifest) = user {
                    return Err(MetaError::BlobReferenced {
                        digest: digest.clone(),
                        manifest: parse_digest(&manifest)?,
                    });
                }
                if !linked {
                    return Ok(false);
                }
                let n = tx
                    .execute(
                        "DELETE FROM blob_links WHERE repo_id = $1 AND digest = $2",
                        &[&id, d],
                    )
                    .await?;
                tx.commit().await?;
                Ok(n > 0)
            })
            .await
    }

    async fn linked_blobs(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<u64>>> {
        let name = repo.qualified();
        let texts: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let client = self.db.client().await?;
        let Some(id) = super::meta_repos::repo_id(&**client, name).await? else {
            return Ok(vec![None; digests.len()]);
        };
        let rows = client
            .query(
                "SELECT l.digest, b.size, l.orphaned_ms IS NOT NULL FROM blob_links l
                   JOIN blobs b ON b.digest = l.digest
                 WHERE l.repo_id = $1 AND l.digest = ANY($2)",
                &[&id, &texts],
            )
            .await?;
        let mut found: HashMap<String, (u64, bool)> = HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(
                r.try_get(0)?,
                (size_of(r.try_get(1)?), r.try_get::<_, bool>(2)?),
            );
        }
        // As `linked_blob`: a layer reported available (BatchCheckLayerAvailability before
        // PutImage) gets a whole grace period; one collected meanwhile is reported absent.
        let marked: Vec<&String> = found
            .iter()
            .filter(|(_, (_, marked))| *marked)
            .map(|(d, _)| d)
            .collect();
        if !marked.is_empty() {
            let kept: Vec<String> = client
                .query(
                    "UPDATE blob_links SET orphaned_ms = NULL
                     WHERE repo_id = $1 AND digest = ANY($2) RETURNING digest",
                    &[&id, &marked],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            found.retain(|d, (_, marked)| !*marked || kept.contains(d));
        }
        Ok(texts
            .iter()
            .map(|d| found.get(d).map(|(size, _)| *size))
            .collect())
    }

    async fn blob_referenced(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let client = self.db.client().await?;
        Ok(client
            .query_opt(
                "SELECT 1 FROM manifest_refs
                 WHERE repo_id = (SELECT id FROM repositories WHERE name = $1)
                   AND target = $2 AND kind = $3 LIMIT 1",
                &[&repo.qualified(), &digest.to_string(), &REF_BLOB],
            )
            .await?
            .is_some())
    }
}

#[async_trait::async_trait]
impl UploadStore for PgMetaStore {
    async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "INSERT INTO uploads (id, repository, started_ms, updated_ms) VALUES ($1, $2, $3, $4)",
                &[&u.id, &u.repository.qualified(), &u.started_ms, &u.updated_ms],
            )
            .await?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        let client = self.db.client().await?;
        client
            .query_opt(
                "SELECT id, repository, started_ms, updated_ms FROM uploads WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|r| {
                Ok(UploadRecord {
                    id: r.try_get(0)?,
                    repository: parse_repository(r.try_get(1)?)?,
                    started_ms: r.try_get(2)?,
                    updated_ms: r.try_get(3)?,
                })
            })
            .transpose()
    }

    async fn touch_upload(&self, id: &str, now_ms: i64) -> Result<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "UPDATE uploads SET updated_ms = $2 WHERE id = $1",
                &[&id, &now_ms],
            )
            .await?;
        Ok(())
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let client = self.db.client().await?;
        Ok(client
            .execute("DELETE FROM uploads WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>> {
        let client = self.db.client().await?;
        Ok(client
            .query(
                "SELECT id FROM uploads WHERE updated_ms < $1",
                &[&before_ms],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }
}

//! [`ArchiveStore`] for PostgreSQL. Every write is one READ COMMITTED transaction that
//! follows the locking protocol of [`super::gc`]:
//!
//! - an image's status moves only under its `manifests` row's lock (`FOR NO KEY UPDATE`,
//!   taken before the status is read): two archives, a restore and a delete of one image
//!   are serialized, and each reads the status the previous one committed;
//! - dropping a standard copy is a *decider*: it locks the blob's row `FOR UPDATE` (the
//!   digest lock), then re-checks [`crate::rules::standard_copy_unneeded`] and writes;
//!   `begin_activation` (which makes an archived reference an unarchived one) and
//!   `finish_activation` (which links the blobs) are *referencers* and lock the rows
//!   `FOR SHARE` before they write;
//! - an archive copy is needed from the moment an image using it is `ARCHIVED`:
//!   `archive_image` locks the copies' `archived_blobs` rows `FOR SHARE` before it checks
//!   that they exist, and the sweep locks a copy's row `FOR UPDATE` before it re-checks
//!   that no image needs it and deletes it. So a copy is never deleted under an image
//!   being archived: one waits for the other and sees what it committed.

use std::collections::HashMap;

use std::collections::HashSet;

use tokio_postgres::{GenericClient, Transaction};

use berth_types::{Digest, RepositoryName};

use super::gc::{lock_digests, parse_digest, DigestLock};
use super::PgMetaStore;
use crate::archive::{
    ArchiveOutcome, ArchiveStore, ArchiveSweep, ImageBlob, ImageStatus, ImageStorage,
};
use crate::gc::BlobDeleter;
use crate::rules::{standard_copy_unneeded, StandardCopyHolds};
use crate::{EventKind, MetaError, Result};

/// What may still need blob `$1`'s standard copy (see [`StandardCopyHolds`]): a manifest
/// that is not `ARCHIVED`, a commit's pin, a link in a repository none of whose manifests
/// references it (a push in progress).
const STANDARD_HOLDS: &str = "SELECT
    EXISTS (SELECT 1 FROM manifest_refs r
        LEFT JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
        WHERE r.target = $1 AND r.kind = 0 AND COALESCE(s.status, 'ACTIVE') <> 'ARCHIVED'),
    EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = $1),
    EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = $1
        AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                        WHERE r.repo_id = l.repo_id AND r.target = l.digest AND r.kind = 0))";

/// An `ARCHIVED` or `ACTIVATING` manifest references blob `{0}` (its archive copy is needed).
fn copy_needed(blob: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM manifest_refs r
            JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
            WHERE r.target = {blob} AND r.kind = 0 AND s.status IN ('ARCHIVED', 'ACTIVATING'))"
    )
}

fn corrupt(what: String) -> MetaError {
    MetaError::Database(what.into())
}

fn parse_status(s: &str) -> Result<ImageStatus> {
    ImageStatus::from_api(s).ok_or_else(|| corrupt(format!("unknown image status {s:?}")))
}

fn size_of(v: i64) -> u64 {
    v.max(0) as u64
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn repo_id<C: GenericClient>(c: &C, name: &str) -> Result<Option<i64>> {
    Ok(
        c.query_opt("SELECT id FROM repositories WHERE name = $1", &[&name])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?,
    )
}

/// Locks an image's `manifests` row (its status moves only under this lock); false when
/// there is no such manifest.
async fn lock_image(tx: &Transaction<'_>, repo_id: i64, digest: &str) -> Result<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR NO KEY UPDATE",
            &[&repo_id, &digest],
        )
        .await?
        .is_some())
}

/// The storage state of a manifest: `None` when absent.
async fn storage_of<C: GenericClient>(
    c: &C,
    repo_id: i64,
    digest: &str,
) -> Result<Option<ImageStorage>> {
    let Some(r) = c
        .query_opt(
            "SELECT s.status, s.archived_ms, s.activated_ms FROM manifests m
             LEFT JOIN image_storage s ON s.repo_id = m.repo_id AND s.digest = m.digest
             WHERE m.repo_id = $1 AND m.digest = $2",
            &[&repo_id, &digest],
        )
        .await?
    else {
        return Ok(None);
    };
    let status: Option<String> = r.try_get(0)?;
    Ok(Some(ImageStorage {
        status: match status {
            Some(s) => parse_status(&s)?,
            None => ImageStatus::Active,
        },
        archived_ms: r.try_get(1)?,
        activated_ms: r.try_get(2)?,
    }))
}

async fn blob_targets<C: GenericClient>(c: &C, repo_id: i64, digest: &str) -> Result<Vec<String>> {
    c.query(
        "SELECT target FROM manifest_refs WHERE repo_id = $1 AND manifest = $2 AND kind = 0
         ORDER BY target",
        &[&repo_id, &digest],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// The outbox event of a storage status change (caches of other nodes drop the image),
/// written with the lock that keeps event ids in commit order (see `meta_events`).
async fn storage_changed(
    tx: &Transaction<'_>,
    repo: &str,
    digest: &str,
    now_ms: i64,
) -> Result<()> {
    super::meta_events::record_event(
        tx,
        EventKind::StorageChanged,
        repo,
        Some(digest),
        None,
        now_ms,
    )
    .await
}

/// Drops blob `d`'s standard copy if nothing but archived images needs it: its links and
/// the flag go and a deletion in progress is recorded (the caller deletes the bytes after
/// the commit, see `crate::gc`). The caller holds `d`'s digest lock `FOR UPDATE`, so this
/// re-check sees every reference committed before. Returns whether it was dropped.
async fn drop_standard(tx: &Transaction<'_>, d: &str, now_ms: i64) -> Result<bool> {
    let r = tx.query_one(STANDARD_HOLDS, &[&d]).await?;
    let holds = StandardCopyHolds {
        unarchived_reference: r.try_get(0)?,
        pinned: r.try_get(1)?,
        bare_link: r.try_get(2)?,
    };
    if !standard_copy_unneeded(&holds) {
        return Ok(false);
    }
    tx.execute("DELETE FROM blob_links WHERE digest = $1", &[&d])
        .await?;
    tx.execute(
        "UPDATE archived_blobs SET standard = false WHERE digest = $1",
        &[&d],
    )
    .await?;
    tx.execute(
        "INSERT INTO blob_deletions (digest, started_ms) VALUES ($1, $2)
         ON CONFLICT (digest) DO NOTHING",
        &[&d, &now_ms],
    )
    .await?;
    Ok(true)
}

#[async_trait::async_trait]
impl ArchiveStore for PgMetaStore {
    async fn image_storage(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageStorage>>> {
        let client = self.db.client().await?;
        // One round trip for the whole list (a DescribeImages page asks for up to 1,000);
        // a missing repository has no manifests, so every answer is `None`.
        let texts: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let rows = client
            .query(
                "SELECT m.digest, s.status, s.archived_ms, s.activated_ms FROM manifests m
                 LEFT JOIN image_storage s ON s.repo_id = m.repo_id AND s.digest = m.digest
                 WHERE m.repo_id = (SELECT id FROM repositories WHERE name = $1)
                   AND m.digest = ANY($2)",
                &[&repo.qualified(), &texts],
            )
            .await?;
        let mut found: HashMap<String, ImageStorage> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let status: Option<&str> = r.try_get(1)?;
            found.insert(
                r.try_get::<_, String>(0)?,
                ImageStorage {
                    status: match status {
                        Some(s) => parse_status(s)?,
                        None => ImageStatus::Active,
                    },
                    archived_ms: r.try_get(2)?,
                    activated_ms: r.try_get(3)?,
                },
            );
        }
        Ok(texts.iter().map(|d| found.get(d).cloned()).collect())
    }

    async fn storage_states(&self, repo: &RepositoryName) -> Result<Vec<(Digest, ImageStorage)>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT s.digest, s.status, s.archived_ms, s.activated_ms FROM image_storage s
                 WHERE s.repo_id = (SELECT id FROM repositories WHERE name = $1)
                 ORDER BY s.digest",
                &[&repo.qualified()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_digest(r.try_get(0)?)?,
                    ImageStorage {
                        status: parse_status(r.try_get(1)?)?,
                        archived_ms: r.try_get(2)?,
                        activated_ms: r.try_get(3)?,
                    },
                ))
            })
            .collect()
    }

    async fn image_blobs(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Vec<ImageBlob>>> {
        let client = self.db.client().await?;
        let digest = digest.to_string();
        let Some(id) = repo_id(&**client, repo.qualified()).await? else {
            return Ok(None);
        };
        if storage_of(&**client, id, &digest).await?.is_none() {
            return Ok(None);
        }
        let rows = client
            .query(
                "SELECT r.target, COALESCE(b.size, a.size, 0) FROM manifest_refs r
                 LEFT JOIN blobs b ON b.digest = r.target
                 LEFT JOIN archived_blobs a ON a.digest = r.target
                 WHERE r.repo_id = $1 AND r.manifest = $2 AND r.kind = 0 ORDER BY r.target",
                &[&id, &digest],
            )
            .await?;
        let blobs = rows
            .iter()
            .map(|r| {
                Ok(ImageBlob {
                    digest: parse_digest(r.try_get(0)?)?,
                    size: size_of(r.try_get(1)?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(blobs))
    }

    async fn archived_copies(&self, digests: &[Digest]) -> Result<Vec<bool>> {
        let client = self.db.client().await?;
        let texts: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let rows = client
            .query(
                "SELECT EXISTS (SELECT 1 FROM archived_blobs a WHERE a.digest = t.d)
                 FROM unnest($1::text[]) WITH ORDINALITY AS t(d, i) ORDER BY t.i",
                &[&texts],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn record_archive_copy(
        &self,
        digest: &Digest,
        size: u64,
        stored_size: u64,
        now_ms: i64,
    ) -> Result<()> {
        let client = self.db.client().await?;
        let (size, stored) = (
            i64::try_from(size).unwrap_or(i64::MAX),
            i64::try_from(stored_size).unwrap_or(i64::MAX),
        );
        client
            .execute(
                "INSERT INTO archived_blobs (digest, size, stored_size, archived_ms, standard)
                 VALUES ($1, $2, $3, $4, true)
                 ON CONFLICT (digest) DO UPDATE SET stored_size = excluded.stored_size",
                &[&digest.to_string(), &size, &stored, &now_ms],
            )
            .await?;
        Ok(())
    }

    async fn archive_image(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now_ms: i64,
    ) -> Result<ArchiveOutcome> {
        let (name, digest) = (repo.qualified(), &digest.to_string());
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = repo_id(&*tx, name).await? else {
                    return Ok(ArchiveOutcome::NotFound);
                };
                if !lock_image(&tx, id, digest).await? {
                    return Ok(ArchiveOutcome::NotFound);
                }
                let Some(state) = storage_of(&*tx, id, digest).await? else {
                    return Ok(ArchiveOutcome::NotFound);
                };
                if state.status != ImageStatus::Active {
                    return Ok(ArchiveOutcome::NotActive(state.status));
                }
                let targets = blob_targets(&*tx, id, digest).await?;
                // The copies this image will need, locked so no sweep deletes one meanwhile.
                let present: HashSet<String> = tx
                    .query(
                        "SELECT digest FROM archived_blobs WHERE digest = ANY($1)
                         ORDER BY digest FOR SHARE",
                        &[&targets],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let missing = targets
                    .iter()
                    .filter(|t| !present.contains(*t))
                    .map(|t| parse_digest(t))
                    .collect::<Result<Vec<_>>>()?;
                if !missing.is_empty() {
                    return Ok(ArchiveOutcome::CopyMissing(missing));
                }
                tx.execute(
                    "INSERT INTO image_storage (repo_id, digest, status, archived_ms)
                     VALUES ($1, $2, 'ARCHIVED', $3)
                     ON CONFLICT (repo_id, digest) DO UPDATE SET status = 'ARCHIVED',
                         archived_ms = excluded.archived_ms",
                    &[&id, digest, &now_ms],
                )
                .await?;
                storage_changed(&tx, name, digest, now_ms).await?;
                let claims = lock_digests(&tx, &targets, DigestLock::Update, true).await?;
                let mut dropped = Vec::new();
                for t in &targets {
                    if drop_standard(&tx, t, now_ms).await? {
                        dropped.push(parse_digest(t)?);
                    }
                }
                claims.release(&tx).await?;
                tx.commit().await?;
                Ok(ArchiveOutcome::Archived { dropped })
            })
            .await
    }

    async fn begin_activation(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageStatus>> {
        let (name, digest) = (repo.qualified(), &digest.to_string());
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = repo_id(&*tx, name).await? else {
                    return Ok(None);
                };
                if !lock_image(&tx, id, digest).await? {
                    return Ok(None);
                }
                let Some(state) = storage_of(&*tx, id, digest).await? else {
                    return Ok(None);
                };
                if state.status == ImageStatus::Archived {
                    // Its blobs become needed by an unarchived image: a referencer, so no
                    // drop of their standard copies is between its check and its commit.
                    let targets = blob_targets(&*tx, id, digest).await?;
                    let claims = lock_digests(&tx, &targets, DigestLock::Share, true).await?;
                    tx.execute(
                        "UPDATE image_storage SET status = 'ACTIVATING'
                         WHERE repo_id = $1 AND digest = $2",
                        &[&id, digest],
                    )
                    .await?;
                    storage_changed(&tx, name, digest, super::now_ms()).await?;
                    claims.release(&tx).await?;
                }
                tx.commit().await?;
                Ok(Some(state.status))
            })
            .await
    }

    async fn finish_activation(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now_ms: i64,
    ) -> Result<bool> {
        let (name, digest) = (repo.qualified(), &digest.to_string());
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = repo_id(&*tx, name).await? else {
                    return Ok(false);
                };
                if !lock_image(&tx, id, digest).await? {
                    return Ok(false);
                }
                match storage_of(&*tx, id, digest).await? {
                    Some(s) if s.status == ImageStatus::Activating => {}
                    _ => return Ok(false),
                }
                let targets = blob_targets(&*tx, id, digest).await?;
                // Linking is referencing (a missing row fails the links' foreign key, as
                // on SQLite, so nothing is claimed).
                let _ = lock_digests(&tx, &targets, DigestLock::Share, false).await?;
                tx.execute(
                    "INSERT INTO blob_links (repo_id, digest, created_ms)
                     SELECT $1, t, $3 FROM unnest($2::text[]) AS t ORDER BY t
                     ON CONFLICT (repo_id, digest) DO NOTHING",
                    &[&id, &targets, &now_ms],
                )
                .await?;
                tx.execute(
                    "UPDATE archived_blobs SET standard = true WHERE digest = ANY($1)",
                    &[&targets],
                )
                .await?;
                tx.execute(
                    "UPDATE image_storage SET status = 'ACTIVE', activated_ms = $3
                     WHERE repo_id = $1 AND digest = $2",
                    &[&id, digest, &now_ms],
                )
                .await?;
                storage_changed(&tx, name, digest, now_ms).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn activating_images(&self) -> Result<Vec<(RepositoryName, Digest)>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT r.name, s.digest FROM image_storage s
                 JOIN repositories r ON r.id = s.repo_id
                 WHERE s.status = 'ACTIVATING' ORDER BY r.name, s.digest",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let name: &str = r.try_get(0)?;
                let repo = RepositoryName::from_qualified(name)
                    .map_err(|e| MetaError::Database(Box::new(e)))?;
                Ok((repo, parse_digest(r.try_get(1)?)?))
            })
            .collect()
    }

    async fn blob_archived_in(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM manifest_refs r
                    JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
                    WHERE r.repo_id = (SELECT id FROM repositories WHERE name = $1)
                      AND r.target = $2 AND r.kind = 0
                      AND s.status IN ('ARCHIVED', 'ACTIVATING'))",
                &[&repo.qualified(), &digest.to_string()],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn archive_sweep(
        &self,
        limit_n: usize,
        delete_copy: BlobDeleter,
    ) -> Result<ArchiveSweep> {
        let standard_dropped = self.drop_unneeded_standard_copies(limit_n).await?;
        let copies_deleted = self.delete_unneeded_copies(limit_n, &delete_copy).await?;
        Ok(ArchiveSweep {
            standard_dropped,
            copies_deleted,
        })
    }
}

impl PgMetaStore {
    /// The sweep's first transaction: standard copies still kept although every image using
    /// them is archived now, dropped as `archive_image` drops them.
    async fn drop_unneeded_standard_copies(&self, limit_n: usize) -> Result<Vec<Digest>> {
        self.db
            .retry(|| async move {
                let now_ms = super::now_ms();
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let kept: Vec<String> = tx
                    .query(
                        "SELECT a.digest FROM archived_blobs a WHERE a.standard
                           AND EXISTS (SELECT 1 FROM manifest_refs r
                               JOIN image_storage s
                                 ON s.repo_id = r.repo_id AND s.digest = r.manifest
                               WHERE r.target = a.digest AND r.kind = 0
                                 AND s.status = 'ARCHIVED')
                         ORDER BY a.digest LIMIT $1",
                        &[&limit(limit_n)],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let claims = lock_digests(&tx, &kept, DigestLock::Update, true).await?;
                // Still kept after the lock (another sweep may have dropped it meanwhile).
                let kept: Vec<String> = tx
                    .query(
                        "SELECT digest FROM archived_blobs WHERE digest = ANY($1) AND standard
                         ORDER BY digest",
                        &[&kept],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let mut dropped = Vec::new();
                for d in &kept {
                    if drop_standard(&tx, d, now_ms).await? {
                        dropped.push(parse_digest(d)?);
                    }
                }
                claims.release(&tx).await?;
                tx.commit().await?;
                Ok(dropped)
            })
            .await
    }

    /// The sweep's second transaction: archive copies no archived or activating image
    /// needs, locked, re-checked, their bytes deleted through `delete_copy` (blocking, so
    /// on a blocking thread) and their rows removed. Only the locking statement waits on
    /// other transactions, so a deadlock retry never follows a deletion of bytes.
    pub(super) async fn delete_unneeded_copies(
        &self,
        limit_n: usize,
        delete_copy: &BlobDeleter,
    ) -> Result<Vec<Digest>> {
        let unneeded = format!(
            "SELECT a.digest FROM archived_blobs a WHERE NOT {}
             ORDER BY a.digest LIMIT $1 FOR UPDATE",
            copy_needed("a.digest")
        );
        let recheck = format!(
            "SELECT t.d FROM unnest($1::text[]) AS t(d) WHERE NOT {} ORDER BY t.d",
            copy_needed("t.d")
        );
        let (unneeded, recheck) = (&unneeded, &recheck);
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let locked: Vec<String> = tx
                    .query(unneeded, &[&limit(limit_n)])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let rows = tx.query(recheck, &[&locked]).await?;
                let mut deleted = Vec::new();
                for r in rows {
                    let d: String = r.try_get(0)?;
                    let digest = parse_digest(&d)?;
                    let (deleter, target) = (delete_copy.clone(), digest.clone());
                    let outcome = tokio::task::spawn_blocking(move || deleter(&target))
                        .await
                        .map_err(|e| MetaError::Database(Box::new(e)))?;
                    if let Err(e) = outcome {
                        tracing::warn!(%digest, error = %e, "could not delete an unneeded archive copy");
                        continue;
                    }
                    tx.execute("DELETE FROM archived_blobs WHERE digest = $1", &[&d])
                        .await?;
                    deleted.push(digest);
                }
                tx.commit().await?;
                Ok(deleted)
            })
            .await
    }
}

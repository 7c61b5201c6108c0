//! [`ArchiveStore`] for SQLite. Dropping a standard copy and deleting an archive copy are
//! `BEGIN IMMEDIATE` transactions on the writer connection: they hold SQLite's write lock
//! (also against other processes) while they re-check each blob and delete its bytes, so
//! no push, mount or commit can interleave (see [`crate::archive`]).

use rusqlite::{params, Connection, OptionalExtension};

use berth_types::{Digest, RepositoryName};

use super::qualified_repository;
use super::queries::immediate;
use super::SqliteMetaStore;
use crate::archive::{
    ArchiveOutcome, ArchiveStore, ArchiveSweep, ImageBlob, ImageStatus, ImageStorage,
};
use crate::gc::BlobDeleter;
use crate::Result;

/// What may still need blob `?1`'s standard copy (see [`crate::rules::StandardCopyHolds`]):
/// a manifest that is not `ARCHIVED`, a commit's pin, a link in a repository none of whose
/// manifests references it (a push in progress).
const STANDARD_HOLDS: &str = "SELECT
    EXISTS (SELECT 1 FROM manifest_refs r
        LEFT JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
        WHERE r.target = ?1 AND r.kind = 0 AND COALESCE(s.status, 'ACTIVE') <> 'ARCHIVED'),
    EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = ?1),
    EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = ?1
        AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                        WHERE r.repo_id = l.repo_id AND r.target = l.digest AND r.kind = 0))";

/// An `ARCHIVED` or `ACTIVATING` manifest references blob `?1` (its archive copy is needed).
const COPY_NEEDED: &str = "EXISTS (SELECT 1 FROM manifest_refs r
        JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
        WHERE r.target = ?1 AND r.kind = 0 AND s.status IN ('ARCHIVED', 'ACTIVATING'))";

fn repo_id(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// The outbox event of a storage status change (caches of other processes drop the image).
fn storage_changed(
    tx: &rusqlite::Transaction<'_>,
    repo: &str,
    digest: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    super::queries::record_event(
        tx,
        crate::EventKind::StorageChanged,
        repo,
        Some(digest),
        None,
        now_ms,
    )
}

fn parse_digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e: berth_types::DigestError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_status(s: String) -> rusqlite::Result<ImageStatus> {
    ImageStatus::from_api(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown image status {s}").into(),
        )
    })
}

/// The storage state of a manifest: `None` when absent.
fn storage_of(
    c: &Connection,
    repo_id: i64,
    digest: &str,
) -> rusqlite::Result<Option<ImageStorage>> {
    c.prepare_cached(
        "SELECT s.status, s.archived_ms, s.activated_ms FROM manifests m
         LEFT JOIN image_storage s ON s.repo_id = m.repo_id AND s.digest = m.digest
         WHERE m.repo_id = ?1 AND m.digest = ?2",
    )?
    .query_row(params![repo_id, digest], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })
    .optional()?
    .map(|(status, archived_ms, activated_ms)| {
        Ok(ImageStorage {
            status: match status {
                Some(s) => parse_status(s)?,
                None => ImageStatus::Active,
            },
            archived_ms,
            activated_ms,
        })
    })
    .transpose()
}

fn blob_targets(c: &Connection, repo_id: i64, digest: &str) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT target FROM manifest_refs WHERE repo_id = ?1 AND manifest = ?2 AND kind = 0
         ORDER BY target",
    )?
    .query_map(params![repo_id, digest], |r| r.get(0))?
    .collect()
}

/// Drops blob `d`'s standard copy if nothing but archived images needs it: the links and
/// the flag go and a deletion in progress is recorded (the caller deletes the bytes after
/// the commit, see `crate::gc`). Returns whether it was dropped.
fn drop_standard(c: &Connection, d: &str, now_ms: i64) -> Result<bool> {
    let holds = c.prepare_cached(STANDARD_HOLDS)?.query_row([d], |r| {
        Ok(crate::rules::StandardCopyHolds {
            unarchived_reference: r.get(0)?,
            pinned: r.get(1)?,
            bare_link: r.get(2)?,
        })
    })?;
    if !crate::rules::standard_copy_unneeded(&holds) {
        return Ok(false);
    }
    c.prepare_cached("DELETE FROM blob_links WHERE digest = ?1")?
        .execute([d])?;
    c.prepare_cached("UPDATE archived_blobs SET standard = 0 WHERE digest = ?1")?
        .execute([d])?;
    c.prepare_cached("INSERT OR IGNORE INTO blob_deletions (digest, started_ms) VALUES (?1, ?2)")?
        .execute(params![d, now_ms])?;
    Ok(true)
}

#[async_trait::async_trait]
impl ArchiveStore for SqliteMetaStore {
    async fn image_storage(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageStorage>>> {
        let (name, digests) = (repo.qualified().to_string(), digests.to_vec());
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(vec![None; digests.len()]);
            };
            let mut out = Vec::with_capacity(digests.len());
            for d in &digests {
                out.push(storage_of(c, id, &d.to_string())?);
            }
            Ok(out)
        })
        .await
    }

    async fn storage_states(&self, repo: &RepositoryName) -> Result<Vec<(Digest, ImageStorage)>> {
        let name = repo.qualified().to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT s.digest, s.status, s.archived_ms, s.activated_ms FROM image_storage s
                 WHERE s.repo_id = (SELECT id FROM repositories WHERE name = ?1)
                 ORDER BY s.digest",
            )?;
            let rows = st.query_map([name], |r| {
                Ok((
                    parse_digest(r.get(0)?)?,
                    ImageStorage {
                        status: parse_status(r.get(1)?)?,
                        archived_ms: r.get(2)?,
                        activated_ms: r.get(3)?,
                    },
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn image_blobs(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Vec<ImageBlob>>> {
        let (name, digest) = (repo.qualified().to_string(), digest.to_string());
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(None);
            };
            if storage_of(c, id, &digest)?.is_none() {
                return Ok(None);
            }
            let mut st = c.prepare_cached(
                "SELECT r.target, COALESCE(b.size, a.size, 0) FROM manifest_refs r
                 LEFT JOIN blobs b ON b.digest = r.target
                 LEFT JOIN archived_blobs a ON a.digest = r.target
                 WHERE r.repo_id = ?1 AND r.manifest = ?2 AND r.kind = 0 ORDER BY r.target",
            )?;
            let rows = st.query_map(params![id, digest], |r| {
                Ok(ImageBlob {
                    digest: parse_digest(r.get(0)?)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                })
            })?;
            Ok(Some(rows.collect::<rusqlite::Result<_>>()?))
        })
        .await
    }

    async fn archived_copies(&self, digests: &[Digest]) -> Result<Vec<bool>> {
        let digests = digests.to_vec();
        self.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT EXISTS (SELECT 1 FROM archived_blobs WHERE digest = ?1)")?;
            let mut out = Vec::with_capacity(digests.len());
            for d in &digests {
                out.push(st.query_row([d.to_string()], |r| r.get(0))?);
            }
            Ok(out)
        })
        .await
    }

    async fn record_archive_copy(
        &self,
        digest: &Digest,
        size: u64,
        stored_size: u64,
        now_ms: i64,
    ) -> Result<()> {
        let d = digest.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO archived_blobs (digest, size, stored_size, archived_ms, standard)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (digest) DO UPDATE SET stored_size = excluded.stored_size",
            )?
            .execute(params![d, size as i64, stored_size as i64, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn archive_image(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now_ms: i64,
    ) -> Result<ArchiveOutcome> {
        let (name, digest) = (repo.qualified().to_string(), digest.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(ArchiveOutcome::NotFound);
            };
            let Some(state) = storage_of(&tx, id, &digest)? else {
                return Ok(ArchiveOutcome::NotFound);
            };
            if state.status != ImageStatus::Active {
                return Ok(ArchiveOutcome::NotActive(state.status));
            }
            let targets = blob_targets(&tx, id, &digest)?;
            let mut missing = Vec::new();
            {
                let mut has = tx.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM archived_blobs WHERE digest = ?1)",
                )?;
                for t in &targets {
                    if !has.query_row([t], |r| r.get::<_, bool>(0))? {
                        missing.push(parse_digest(t.clone())?);
                    }
                }
            }
            if !missing.is_empty() {
                return Ok(ArchiveOutcome::CopyMissing(missing));
            }
            tx.prepare_cached(
                "INSERT INTO image_storage (repo_id, digest, status, archived_ms)
                 VALUES (?1, ?2, 'ARCHIVED', ?3)
                 ON CONFLICT (repo_id, digest) DO UPDATE SET status = 'ARCHIVED',
                     archived_ms = excluded.archived_ms",
            )?
            .execute(params![id, digest, now_ms])?;
            storage_changed(&tx, &name, &digest, now_ms)?;
            let mut dropped = Vec::new();
            for t in &targets {
                if drop_standard(&tx, t, now_ms)? {
                    dropped.push(parse_digest(t.clone())?);
                }
            }
            tx.commit()?;
            Ok(ArchiveOutcome::Archived { dropped })
        })
        .await
    }

    async fn begin_activation(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageStatus>> {
        let (name, digest) = (repo.qualified().to_string(), digest.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(None);
            };
            let Some(state) = storage_of(&tx, id, &digest)? else {
                return Ok(None);
            };
            if state.status == ImageStatus::Archived {
                tx.prepare_cached(
                    "UPDATE image_storage SET status = 'ACTIVATING' WHERE repo_id = ?1 AND digest = ?2",
                )?
                .execute(params![id, digest])?;
                storage_changed(&tx, &name, &digest, super::now_ms())?;
            }
            tx.commit()?;
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
        let (name, digest) = (repo.qualified().to_string(), digest.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(false);
            };
            match storage_of(&tx, id, &digest)? {
                Some(s) if s.status == ImageStatus::Activating => {}
                _ => return Ok(false),
            }
            for t in blob_targets(&tx, id, &digest)? {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO blob_links (repo_id, digest, created_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, t, now_ms])?;
                tx.prepare_cached("UPDATE archived_blobs SET standard = 1 WHERE digest = ?1")?
                    .execute([&t])?;
            }
            tx.prepare_cached(
                "UPDATE image_storage SET status = 'ACTIVE', activated_ms = ?3
                 WHERE repo_id = ?1 AND digest = ?2",
            )?
            .execute(params![id, digest, now_ms])?;
            storage_changed(&tx, &name, &digest, now_ms)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn activating_images(&self) -> Result<Vec<(RepositoryName, Digest)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT r.name, s.digest FROM image_storage s JOIN repositories r ON r.id = s.repo_id
                 WHERE s.status = 'ACTIVATING' ORDER BY r.name, s.digest",
            )?;
            let rows = st.query_map([], |r| {
                Ok((qualified_repository(r.get(0)?)?, parse_digest(r.get(1)?)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn blob_archived_in(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, digest) = (repo.qualified().to_string(), digest.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM manifest_refs r
                    JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
                    WHERE r.repo_id = (SELECT id FROM repositories WHERE name = ?1)
                      AND r.target = ?2 AND r.kind = 0 AND s.status IN ('ARCHIVED', 'ACTIVATING'))",
            )?
            .query_row(params![name, digest], |r| r.get(0))?)
        })
        .await
    }

    async fn archive_sweep(&self, limit: usize, delete_copy: BlobDeleter) -> Result<ArchiveSweep> {
        self.write(move |c| {
            let now_ms = super::now_ms();
            let tx = immediate(c)?;
            let mut out = ArchiveSweep::default();
            // Standard copies still kept although every image using them is archived now.
            let kept: Vec<String> = tx
                .prepare_cached(
                    "SELECT a.digest FROM archived_blobs a WHERE a.standard = 1
                       AND EXISTS (SELECT 1 FROM manifest_refs r
                           JOIN image_storage s ON s.repo_id = r.repo_id AND s.digest = r.manifest
                           WHERE r.target = a.digest AND r.kind = 0 AND s.status = 'ARCHIVED')
                     ORDER BY a.digest LIMIT ?1"
                )?
                .query_map([limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for d in kept {
                if drop_standard(&tx, &d, now_ms)? {
                    out.standard_dropped.push(parse_digest(d)?);
                }
            }
            // Archive copies no archived or activating image needs.
            let unneeded: Vec<String> = tx
                .prepare_cached(&format!(
                    "SELECT a.digest FROM archived_blobs a
                     WHERE NOT {} ORDER BY a.digest LIMIT ?1",
                    COPY_NEEDED.replace("?1", "a.digest")
                ))?
                .query_map([limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for d in unneeded {
                let digest = parse_digest(d.clone())?;
                if let Err(e) = delete_copy(&digest) {
                    tracing::warn!(%digest, error = %e, "could not delete an unneeded archive copy");
                    continue;
                }
                tx.prepare_cached("DELETE FROM archived_blobs WHERE digest = ?1")?
                    .execute([&d])?;
                out.copies_deleted.push(digest);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drop check stays index searches (no scan of `manifest_refs` or `blob_links`).
    #[test]
    fn the_drop_check_uses_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {STANDARD_HOLDS}"))
            .unwrap()
            .query_map(["sha256:00"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .all(|l| !l.starts_with("SCAN") || l == "SCAN CONSTANT ROW"),
            "{plan:?}"
        );
        assert!(
            plan.iter().any(|l| l.contains("manifest_refs_blob")),
            "{plan:?}"
        );
    }
}

//! `MetaStore` for SQLite: each method is one short statement or one transaction.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use berth_types::{Digest, RepositoryName, Tag};

use super::SqliteMetaStore;
use crate::{
    EventKind, EventRecord, ManifestRecord, MetaError, MetaStore, NewManifest, PutManifestOutcome,
    ReferrerRecord, RepositoryRecord, RepositorySettings, Result, UploadRecord,
};

const REPO_COLUMNS: &str = "name, created_ms, image_tag_mutability, created_by_api";

fn repository_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RepositoryRecord> {
    Ok(RepositoryRecord {
        name: r.get(0)?,
        created_ms: r.get(1)?,
        image_tag_mutability: r.get(2)?,
        created_by_api: r.get::<_, i64>(3)? != 0,
    })
}

fn get_repository_row(conn: &Connection, name: &str) -> rusqlite::Result<Option<RepositoryRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {REPO_COLUMNS} FROM repositories WHERE name = ?1"
    ))?
    .query_row([name], repository_row)
    .optional()
}

const REF_BLOB: i64 = 0;
const REF_MANIFEST: i64 = 1;

fn repo_id(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

fn ensure_repo(tx: &Transaction<'_>, name: &str, now: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT OR IGNORE INTO repositories (name, created_ms) VALUES (?1, ?2)")?
        .execute(params![name, now])?;
    tx.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

fn parse_digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e: berth_types::DigestError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn record_event(
    tx: &Transaction<'_>,
    kind: EventKind,
    repo: &str,
    digest: Option<&str>,
    tag: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (at_ms, kind, repository, digest, tag) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now, kind.as_str(), repo, digest, tag])?;
    Ok(())
}

pub(super) fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

#[async_trait::async_trait]
impl MetaStore for SqliteMetaStore {
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        let name = repo.to_string();
        self.read(move |c| Ok(repo_id(c, &name)?.is_some())).await
    }

    async fn list_repositories(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT name FROM repositories r WHERE name > ?1
                   AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
                 ORDER BY name LIMIT ?2",
            )?;
            let rows = st.query_map(params![after, limit as i64], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn create_repository(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        now_ms: i64,
    ) -> Result<RepositoryRecord> {
        let (name, mutability) = (repo.to_string(), settings.image_tag_mutability.clone());
        self.write(move |c| {
            let tx = immediate(c)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO repositories (name, created_ms, image_tag_mutability, created_by_api)
                     VALUES (?1, ?2, ?3, 1)",
                )?
                .execute(params![name, now_ms, mutability])?;
            if inserted == 0 {
                return Err(MetaError::RepositoryAlreadyExists(name));
            }
            let row = get_repository_row(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(name.clone()))?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    async fn get_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>> {
        let name = repo.to_string();
        self.read(move |c| Ok(get_repository_row(c, &name)?)).await
    }

    async fn describe_repositories(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryRecord>> {
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {REPO_COLUMNS} FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2"
            ))?;
            let rows = st.query_map(params![after, limit as i64], repository_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord> {
        let name = repo.to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let row = get_repository_row(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(name.clone()))?;
            let id =
                repo_id(&tx, &name)?.ok_or_else(|| MetaError::RepositoryNotFound(name.clone()))?;
            let has_images: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1)")?
                .query_row([id], |r| r.get(0))?;
            if has_images && !force {
                return Err(MetaError::RepositoryNotEmpty(name));
            }
            // Children first: tags point at manifests, references at manifests.
            tx.prepare_cached("DELETE FROM tags WHERE repo_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM manifest_refs WHERE repo_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM manifests WHERE repo_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM blob_links WHERE repo_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM repositories WHERE id = ?1")?
                .execute([id])?;
            record_event(
                &tx,
                EventKind::RepositoryDeleted,
                &name,
                None,
                None,
                super::now_ms(),
            )?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let (name, d) = (repo.to_string(), digest.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT b.size FROM blob_links l
                   JOIN repositories r ON r.id = l.repo_id
                   JOIN blobs b ON b.digest = l.digest
                 WHERE r.name = ?1 AND l.digest = ?2",
            )?
            .query_row(params![name, d], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|s| s as u64))
        })
        .await
    }

    async fn commit_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        upload_id: Option<&str>,
    ) -> Result<()> {
        let (name, d, upload) = (
            repo.to_string(),
            digest.to_string(),
            upload_id.map(str::to_string),
        );
        self.write(move |c| {
            let now = super::now_ms();
            let tx = immediate(c)?;
            let id = ensure_repo(&tx, &name, now)?;
            tx.prepare_cached("INSERT OR IGNORE INTO blobs (digest, size, created_ms) VALUES (?1, ?2, ?3)")?
                .execute(params![d, size as i64, now])?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO blob_links (repo_id, digest, created_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, d, now])?;
            if let Some(u) = upload {
                tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")?.execute([u])?;
            }
            tx.commit()?;
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
        let (to, from, d) = (to.to_string(), from.to_string(), digest.to_string());
        self.write(move |c| {
            let now = super::now_ms();
            let tx = immediate(c)?;
            let size: Option<i64> = tx
                .prepare_cached(
                    "SELECT b.size FROM blob_links l
                       JOIN repositories r ON r.id = l.repo_id
                       JOIN blobs b ON b.digest = l.digest
                     WHERE r.name = ?1 AND l.digest = ?2",
                )?
                .query_row(params![from, d], |r| r.get(0))
                .optional()?;
            let Some(size) = size else {
                return Ok(None);
            };
            let id = ensure_repo(&tx, &to, now)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO blob_links (repo_id, digest, created_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, d, now])?;
            tx.commit()?;
            Ok(Some(size as u64))
        })
        .await
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.to_string(), digest.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM blob_links WHERE digest = ?2
                       AND repo_id = (SELECT id FROM repositories WHERE name = ?1)",
                )?
                .execute(params![name, d])?;
            Ok(n > 0)
        })
        .await
    }

    async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let u = u.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO uploads (id, repository, started_ms, updated_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![u.id, u.repository, u.started_ms, u.updated_ms])?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, repository, started_ms, updated_ms FROM uploads WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(UploadRecord {
                    id: r.get(0)?,
                    repository: r.get(1)?,
                    started_ms: r.get(2)?,
                    updated_ms: r.get(3)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn touch_upload(&self, id: &str, now_ms: i64) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE uploads SET updated_ms = ?2 WHERE id = ?1")?
                .execute(params![id, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                .execute([id])?
                > 0)
        })
        .await
    }

    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT id FROM uploads WHERE updated_ms < ?1")?;
            let rows = st.query_map([before_ms], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        m: &NewManifest,
    ) -> Result<PutManifestOutcome> {
        let name = repo.to_string();
        let m = m.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = ensure_repo(&tx, &name, m.now_ms)?;
            {
                let mut has_blob =
                    tx.prepare_cached("SELECT 1 FROM blob_links WHERE repo_id = ?1 AND digest = ?2")?;
                for b in &m.blobs {
                    if !has_blob.exists(params![id, b.to_string()])? {
                        return Err(MetaError::BlobNotLinked(b.clone()));
                    }
                }
                let mut has_manifest =
                    tx.prepare_cached("SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2")?;
                for child in &m.children {
                    if !has_manifest.exists(params![id, child.to_string()])? {
                        return Err(MetaError::ChildManifestMissing(child.clone()));
                    }
                }
            }
            let digest = m.digest.to_string();
            let created = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO manifests
                       (repo_id, digest, media_type, size, artifact_type, subject, annotations, body, pushed_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    id,
                    digest,
                    m.media_type,
                    m.body.len() as i64,
                    m.artifact_type,
                    m.subject.as_ref().map(|s| s.to_string()),
                    m.annotations_json,
                    m.body,
                    m.now_ms
                ])?
                == 1;
            if created {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, kind, target) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for b in &m.blobs {
                    ins.execute(params![id, digest, REF_BLOB, b.to_string()])?;
                }
                for child in &m.children {
                    ins.execute(params![id, digest, REF_MANIFEST, child.to_string()])?;
                }
            }
            let mut previous = None;
            if let Some(tag) = &m.tag {
                let old: Option<String> = tx
                    .prepare_cached("SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2")?
                    .query_row(params![id, tag.as_str()], |r| r.get(0))
                    .optional()?;
                tx.prepare_cached(
                    "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_ms = excluded.updated_ms",
                )?
                .execute(params![id, tag.as_str(), digest, m.now_ms])?;
                previous = match old {
                    Some(o) if o != digest => Some(parse_digest(o)?),
                    _ => None,
                };
            }
            if created || m.tag.is_some() {
                record_event(
                    &tx,
                    EventKind::ManifestPushed,
                    &name,
                    Some(&digest),
                    m.tag.as_ref().map(Tag::as_str),
                    m.now_ms,
                )?;
            }
            tx.commit()?;
            Ok(PutManifestOutcome {
                created,
                previous_tag_target: previous,
            })
        })
        .await
    }

    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        let (name, d) = (repo.to_string(), digest.to_string());
        let digest = digest.clone();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT m.media_type, m.body, m.pushed_ms FROM manifests m
                   JOIN repositories r ON r.id = m.repo_id
                 WHERE r.name = ?1 AND m.digest = ?2",
            )?
            .query_row(params![name, d], |r| {
                Ok(ManifestRecord {
                    digest: digest.clone(),
                    media_type: r.get(0)?,
                    body: r.get(1)?,
                    pushed_ms: r.get(2)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn resolve_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        let (name, t) = (repo.to_string(), tag.to_string());
        self.read(move |c| {
            let d: Option<String> = c
                .prepare_cached(
                    "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id
                     WHERE r.name = ?1 AND t.name = ?2",
                )?
                .query_row(params![name, t], |r| r.get(0))
                .optional()?;
            Ok(d.map(parse_digest).transpose()?)
        })
        .await
    }

    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.to_string(), digest.to_string());
        let digest = digest.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(false);
            };
            let index: Option<String> = tx
                .prepare_cached(
                    "SELECT manifest FROM manifest_refs WHERE repo_id = ?1 AND target = ?2 AND kind = ?3 LIMIT 1",
                )?
                .query_row(params![id, d, REF_MANIFEST], |r| r.get(0))
                .optional()?;
            if let Some(index) = index {
                return Err(MetaError::ManifestReferenced {
                    digest,
                    index: parse_digest(index)?,
                });
            }
            tx.prepare_cached("DELETE FROM tags WHERE repo_id = ?1 AND digest = ?2")?
                .execute(params![id, d])?;
            let n = tx
                .prepare_cached("DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
                .execute(params![id, d])?;
            if n > 0 {
                record_event(&tx, EventKind::ManifestDeleted, &name, Some(&d), None, super::now_ms())?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        let (name, t) = (repo.to_string(), tag.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let n = tx
                .prepare_cached(
                    "DELETE FROM tags WHERE name = ?2 AND repo_id = (SELECT id FROM repositories WHERE name = ?1)",
                )?
                .execute(params![name, t])?;
            if n > 0 {
                record_event(&tx, EventKind::TagDeleted, &name, None, Some(&t), super::now_ms())?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>> {
        let (name, after) = (repo.to_string(), after.unwrap_or("").to_string());
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(None);
            };
            let mut st = c.prepare_cached(
                "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?;
            let rows = st.query_map(params![id, after, limit as i64], |r| r.get(0))?;
            Ok(Some(rows.collect::<rusqlite::Result<Vec<String>>>()?))
        })
        .await
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>> {
        let (name, s) = (repo.to_string(), subject.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m
                   JOIN repositories r ON r.id = m.repo_id
                 WHERE r.name = ?1 AND m.subject = ?2 ORDER BY m.digest",
            )?;
            let rows = st.query_map(params![name, s], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (d, media_type, size, artifact_type, annotations_json) = row?;
                out.push(ReferrerRecord {
                    digest: parse_digest(d)?,
                    media_type,
                    size: size as u64,
                    artifact_type,
                    annotations_json,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn events_after(&self, after_id: i64, limit: usize) -> Result<Vec<EventRecord>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, at_ms, kind, repository, digest, tag FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map(params![after_id, limit as i64], |r| {
                Ok(EventRecord {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    repository: r.get(3)?,
                    digest: r.get(4)?,
                    tag: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

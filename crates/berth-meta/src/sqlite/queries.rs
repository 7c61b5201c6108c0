//! The core metadata traits for SQLite (repositories, blobs and links, uploads, manifests,
//! images, pull times, events): each method is one short statement or one transaction.

use super::{client_name, qualified_repository};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use berth_types::{AccountId, Digest, RepositoryName, Tag};

use super::SqliteMetaStore;
use crate::{
    BlobLinkStore, DeleteImageOutcome, EventKind, EventRecord, EventStore, ImageId, ImageRecord,
    ImageStore, ManifestRecord, ManifestStore, MetaError, NewManifest, PullTimeExclusion,
    PullTimeStore, PullTimeUpdate, PutManifestOutcome, ReferrerRecord, RegisterExclusionOutcome,
    RepositoryRecord, RepositorySettings, RepositoryStore, Result, TagStatus, UploadRecord,
    UploadStore,
};

const REPO_COLUMNS: &str =
    "name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions";

/// Exclusion filters are stored as a JSON array of strings.
pub(super) fn filters_from_json(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn filters_to_json(filters: &[String]) -> String {
    serde_json::Value::from(filters.to_vec()).to_string()
}

fn repository_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RepositoryRecord> {
    Ok(RepositoryRecord {
        name: client_name(&r.get::<_, String>(0)?),
        created_ms: r.get(1)?,
        image_tag_mutability: r.get(2)?,
        created_by_api: r.get::<_, i64>(3)? != 0,
        image_tag_mutability_exclusion_filters: filters_from_json(&r.get::<_, String>(4)?)?,
    })
}

/// The bounds of one registry's repositories in `repositories.name` (qualified names):
/// strictly after `<account>/<after>` (or `<account>/`) and before `<account>0`, the first
/// string past every `<account>/...` (`'0'` follows `'/'` in ASCII).
fn registry_range(account: AccountId, after: Option<&str>) -> (String, String) {
    let start = format!("{account}/{}", after.unwrap_or(""));
    (start, format!("{account}0"))
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

pub(super) fn record_event(
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

/// The columns of [`ImageRecord`]: tags come aggregated by a correlated, indexed
/// subquery (`tags_digest`), the pull time by a primary-key join, so a page is one query.
const IMAGE_SELECT: &str = "SELECT m.digest, m.media_type, m.artifact_type, m.image_size, m.pushed_ms,
       m.subject, p.last_pull_ms,
       (SELECT group_concat(t.name, char(10)) FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
     FROM manifests m
     LEFT JOIN image_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest";

type ImageRow = (
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish_image(row: ImageRow) -> rusqlite::Result<ImageRecord> {
    let (digest, media_type, artifact_type, size, pushed_ms, subject, last_pull_ms, tags) = row;
    // Tags never contain a newline (`[A-Za-z0-9_][A-Za-z0-9._-]*`), so it separates them.
    let mut tags: Vec<String> = tags
        .map(|t| t.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    tags.sort();
    Ok(ImageRecord {
        digest: parse_digest(digest)?,
        tags,
        media_type,
        artifact_type,
        size: size.max(0) as u64,
        pushed_ms,
        last_pull_ms,
        subject: subject.map(parse_digest).transpose()?,
    })
}

pub(super) fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

#[async_trait::async_trait]
impl RepositoryStore for SqliteMetaStore {
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        let name = repo.qualified().to_string();
        self.read(move |c| Ok(repo_id(c, &name)?.is_some())).await
    }

    async fn list_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (after, end) = registry_range(account, after);
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT substr(name, 14) FROM repositories r WHERE name > ?1 AND name < ?2
                   AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
                 ORDER BY name LIMIT ?3",
            )?;
            let rows = st.query_map(params![after, end, limit as i64], |r| r.get(0))?;
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
        let (name, mutability) = (
            repo.qualified().to_string(),
            settings.image_tag_mutability.clone(),
        );
        let filters = filters_to_json(&settings.image_tag_mutability_exclusion_filters);
        self.write(move |c| {
            let tx = immediate(c)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO repositories
                       (name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                )?
                .execute(params![name, now_ms, mutability, filters])?;
            if inserted == 0 {
                return Err(MetaError::RepositoryAlreadyExists(client_name(&name)));
            }
            let row = get_repository_row(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    async fn get_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>> {
        let name = repo.qualified().to_string();
        self.read(move |c| Ok(get_repository_row(c, &name)?)).await
    }

    async fn describe_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryRecord>> {
        let (after, end) = registry_range(account, after);
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {REPO_COLUMNS} FROM repositories WHERE name > ?1 AND name < ?2
                 ORDER BY name LIMIT ?3"
            ))?;
            let rows = st.query_map(params![after, end, limit as i64], repository_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord> {
        let name = repo.qualified().to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let row = get_repository_row(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            let id = repo_id(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            let has_images: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1)")?
                .query_row([id], |r| r.get(0))?;
            if has_images && !force {
                return Err(MetaError::RepositoryNotEmpty(client_name(&name)));
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

    async fn set_tag_mutability(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
    ) -> Result<RepositoryRecord> {
        let name = repo.qualified().to_string();
        let mode = settings.image_tag_mutability.clone();
        let filters = filters_to_json(&settings.image_tag_mutability_exclusion_filters);
        self.write(move |c| {
            let tx = immediate(c)?;
            let n = tx
                .prepare_cached(
                    "UPDATE repositories SET image_tag_mutability = ?2, tag_mutability_exclusions = ?3
                     WHERE name = ?1",
                )?
                .execute(params![name, mode, filters])?;
            if n == 0 {
                return Err(MetaError::RepositoryNotFound(client_name(&name)));
            }
            let row = get_repository_row(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }
}

#[async_trait::async_trait]
impl BlobLinkStore for SqliteMetaStore {
    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let (name, d) = (repo.qualified().to_string(), digest.to_string());
        let found = {
            let (name, d) = (name.clone(), d.clone());
            self.read(move |c| {
                Ok::<_, MetaError>(
                    c.prepare_cached(
                        "SELECT b.size, l.orphaned_ms IS NOT NULL FROM blob_links l
                           JOIN repositories r ON r.id = l.repo_id
                           JOIN blobs b ON b.digest = l.digest
                         WHERE r.name = ?1 AND l.digest = ?2",
                    )?
                    .query_row(params![name, d], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
                    })
                    .optional()?,
                )
            })
            .await?
        };
        match found {
            None => Ok(None),
            Some((size, false)) => Ok(Some(size as u64)),
            // Garbage collection marked the link unused. A client that sees the blob now
            // may reference it in a manifest next (a HEAD before a push), so the mark is
            // cleared, giving it a whole grace period; if collection deleted the link
            // meanwhile, the blob is reported absent and the client uploads it again.
            Some((size, true)) => {
                let kept = self
                    .write(move |c| {
                        Ok::<_, MetaError>(
                            c.prepare_cached(
                                "UPDATE blob_links SET orphaned_ms = NULL WHERE digest = ?2
                                   AND repo_id = (SELECT id FROM repositories WHERE name = ?1)",
                            )?
                            .execute(params![name, d])?,
                        )
                    })
                    .await?;
                Ok((kept > 0).then_some(size as u64))
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
        let (name, d, upload) = (
            repo.qualified().to_string(),
            digest.to_string(),
            upload_id.map(str::to_string),
        );
        let digest = digest.clone();
        self.write(move |c| {
            let now = super::now_ms();
            let tx = immediate(c)?;
            // Bytes being deleted are not bytes to record (see `crate::gc`).
            super::gc_queries::refuse_if_being_deleted(&tx, &digest)?;
            let id = ensure_repo(&tx, &name, now)?;
            // Recording a blob references it: any garbage-collection mark goes.
            tx.prepare_cached(
                "INSERT INTO blobs (digest, size, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (digest) DO UPDATE SET orphaned_ms = NULL",
            )?
            .execute(params![d, size as i64, now])?;
            tx.prepare_cached(
                "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repo_id, digest) DO UPDATE SET orphaned_ms = NULL",
            )?
            .execute(params![id, d, now])?;
            if let Some(u) = upload {
                tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                    .execute([&u])?;
                // The link now holds the blob; the commit's pin (see `GcStore::pin_blob`) can go.
                tx.prepare_cached("DELETE FROM blob_pins WHERE holder = ?1")?
                    .execute([&u])?;
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
        let (to, from, d) = (
            to.qualified().to_string(),
            from.qualified().to_string(),
            digest.to_string(),
        );
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
                "INSERT INTO blob_links (repo_id, digest, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repo_id, digest) DO UPDATE SET orphaned_ms = NULL",
            )?
            .execute(params![id, d, now])?;
            tx.commit()?;
            Ok(Some(size as u64))
        })
        .await
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.qualified().to_string(), digest.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(false);
            };
            let user: Option<String> = tx
                .prepare_cached(
                    "SELECT manifest FROM manifest_refs
                     WHERE repo_id = ?1 AND target = ?2 AND kind = ?3 LIMIT 1",
                )?
                .query_row(params![id, d, REF_BLOB], |r| r.get(0))
                .optional()?;
            if let Some(manifest) = user {
                return Err(MetaError::BlobReferenced {
                    digest: parse_digest(d)?,
                    manifest: parse_digest(manifest)?,
                });
            }
            let n = tx
                .prepare_cached("DELETE FROM blob_links WHERE repo_id = ?1 AND digest = ?2")?
                .execute(params![id, d])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn linked_blobs(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<u64>>> {
        let name = repo.qualified().to_string();
        let digests: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let (id, mut out, marked) = self
            .read(move |c| {
                let Some(id) = repo_id(c, &name)? else {
                    return Ok::<_, MetaError>((None, vec![None; digests.len()], Vec::new()));
                };
                let mut st = c.prepare_cached(
                    "SELECT b.size, l.orphaned_ms IS NOT NULL FROM blob_links l
                       JOIN blobs b ON b.digest = l.digest
                     WHERE l.repo_id = ?1 AND l.digest = ?2",
                )?;
                let (mut out, mut marked) = (Vec::with_capacity(digests.len()), Vec::new());
                for (i, d) in digests.iter().enumerate() {
                    let row: Option<(i64, bool)> = st
                        .query_row(params![id, d], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((_, true)) = row {
                        marked.push((i, d.clone()));
                    }
                    out.push(row.map(|(s, _)| s as u64));
                }
                Ok((Some(id), out, marked))
            })
            .await?;
        // As `linked_blob`: a layer reported available (BatchCheckLayerAvailability before
        // PutImage) gets a whole grace period; one collected meanwhile is reported absent.
        if let (Some(id), false) = (id, marked.is_empty()) {
            let kept = self
                .write(move |c| {
                    let tx = immediate(c)?;
                    let mut kept = Vec::with_capacity(marked.len());
                    {
                        let mut st = tx.prepare_cached(
                            "UPDATE blob_links SET orphaned_ms = NULL WHERE repo_id = ?1 AND digest = ?2",
                        )?;
                        for (i, d) in marked {
                            kept.push((i, st.execute(params![id, d])? > 0));
                        }
                    }
                    tx.commit()?;
                    Ok::<_, MetaError>(kept)
                })
                .await?;
            for (i, still_linked) in kept {
                if !still_linked {
                    out[i] = None;
                }
            }
        }
        Ok(out)
    }

    async fn blob_referenced(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.qualified().to_string(), digest.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM manifest_refs
                 WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND target = ?2 AND kind = ?3
                 LIMIT 1",
            )?
            .exists(params![name, d, REF_BLOB])?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl UploadStore for SqliteMetaStore {
    async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let u = u.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO uploads (id, repository, started_ms, updated_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![u.id, u.repository.qualified(), u.started_ms, u.updated_ms])?;
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
                    repository: qualified_repository(r.get(1)?)?,
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
}

#[async_trait::async_trait]
impl ManifestStore for SqliteMetaStore {
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        m: &NewManifest,
    ) -> Result<PutManifestOutcome> {
        let name = repo.qualified().to_string();
        let m = m.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = ensure_repo(&tx, &name, m.now_ms)?;
            let image_size: i64;
            {
                let mut blob_size = tx.prepare_cached(
                    "SELECT b.size FROM blob_links l JOIN blobs b ON b.digest = l.digest
                     WHERE l.repo_id = ?1 AND l.digest = ?2",
                )?;
                // A link the manifest uses is referenced again: its garbage-collection mark goes.
                let mut unmark = tx.prepare_cached(
                    "UPDATE blob_links SET orphaned_ms = NULL
                     WHERE repo_id = ?1 AND digest = ?2 AND orphaned_ms IS NOT NULL",
                )?;
                let mut sizes = std::collections::HashMap::new();
                for b in &m.blobs {
                    let size: Option<i64> = blob_size
                        .query_row(params![id, b.to_string()], |r| r.get(0))
                        .optional()?;
                    match size {
                        Some(s) => sizes.insert(b, s),
                        None => return Err(MetaError::BlobNotLinked(b.clone())),
                    };
                    unmark.execute(params![id, b.to_string()])?;
                }
                let mut child_size = tx.prepare_cached(
                    "SELECT image_size FROM manifests WHERE repo_id = ?1 AND digest = ?2",
                )?;
                let mut child_sizes = Vec::with_capacity(m.children.len());
                for child in &m.children {
                    let size: Option<i64> = child_size
                        .query_row(params![id, child.to_string()], |r| r.get(0))
                        .optional()?;
                    match size {
                        Some(s) => child_sizes.push(s.max(0) as u64),
                        None => return Err(MetaError::ChildManifestMissing(child.clone())),
                    }
                }
                // Layers are a subset of the blobs (non-distributable ones may be absent).
                let layer_sizes = m.layers.iter().filter_map(|l| sizes.get(l));
                let size = crate::rules::image_size(
                    layer_sizes.map(|s| (*s).max(0) as u64),
                    child_sizes,
                );
                image_size = i64::try_from(size).unwrap_or(i64::MAX);
            }
            let digest = m.digest.to_string();
            let mut previous = None;
            let mut tag_updated = false;
            if let Some(tag) = &m.tag {
                let old: Option<String> = tx
                    .prepare_cached("SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2")?
                    .query_row(params![id, tag.as_str()], |r| r.get(0))
                    .optional()?;
                if let Some(o) = old.as_ref().filter(|o| **o != digest) {
                    let (mode, filters): (String, String) = tx
                        .prepare_cached(
                            "SELECT image_tag_mutability, tag_mutability_exclusions FROM repositories WHERE id = ?1",
                        )?
                        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    if crate::tag_mutability::tag_is_immutable(
                        &mode,
                        &filters_from_json(&filters)?,
                        tag.as_str(),
                    ) {
                        return Err(MetaError::TagImmutable {
                            repository: client_name(&name),
                            tag: tag.to_string(),
                        });
                    }
                    previous = Some(parse_digest(o.clone())?);
                }
                tag_updated = old.as_deref() != Some(digest.as_str());
            }
            let created = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO manifests
                       (repo_id, digest, media_type, size, artifact_type, subject, annotations, body, pushed_ms, image_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                    m.now_ms,
                    image_size
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
            if let (Some(tag), true) = (&m.tag, tag_updated) {
                tx.prepare_cached(
                    "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_ms = excluded.updated_ms",
                )?
                .execute(params![id, tag.as_str(), digest, m.now_ms])?;
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
                tag_updated,
            })
        })
        .await
    }

    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        let (name, d) = (repo.qualified().to_string(), digest.to_string());
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
        let (name, t) = (repo.qualified().to_string(), tag.to_string());
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
        let (name, d) = (repo.qualified().to_string(), digest.to_string());
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
        let (name, t) = (repo.qualified().to_string(), tag.to_string());
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
        let (name, after) = (
            repo.qualified().to_string(),
            after.unwrap_or("").to_string(),
        );
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
        let (name, s) = (repo.qualified().to_string(), subject.to_string());
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
}

#[async_trait::async_trait]
impl ImageStore for SqliteMetaStore {
    async fn describe_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Option<Vec<ImageRecord>>> {
        let name = repo.qualified().to_string();
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(None);
            };
            let filter = match status {
                TagStatus::Any => "",
                TagStatus::Tagged => "AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)",
                TagStatus::Untagged => "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)",
            };
            let mut st = c.prepare_cached(&format!(
                "{IMAGE_SELECT} WHERE m.repo_id = ?1 AND m.digest > ?2 {filter} ORDER BY m.digest LIMIT ?3"
            ))?;
            let rows = st.query_map(params![id, after, limit as i64], image_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(finish_image(row?)?);
            }
            Ok(Some(out))
        })
        .await
    }

    async fn describe_images_by_digest(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageRecord>>> {
        let name = repo.qualified().to_string();
        let digests: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(vec![None; digests.len()]);
            };
            let mut st = c.prepare_cached(&format!(
                "{IMAGE_SELECT} WHERE m.repo_id = ?1 AND m.digest = ?2"
            ))?;
            let mut out = Vec::with_capacity(digests.len());
            for d in &digests {
                let row = st.query_row(params![id, d], image_row).optional()?;
                out.push(row.map(finish_image).transpose()?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&ImageId>,
        limit: usize,
    ) -> Result<Option<Vec<ImageId>>> {
        let name = repo.qualified().to_string();
        let (after_digest, after_tag) = after
            .map(|a| (a.digest.to_string(), a.tag.clone().unwrap_or_default()))
            .unwrap_or_default();
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(None);
            };
            // An untagged image is listed with the empty tag, which sorts before every tag.
            const TAGGED: &str = "SELECT t.digest AS digest, t.name AS tag FROM tags t
                 WHERE t.repo_id = ?1 AND (t.digest, t.name) > (?2, ?3)";
            const UNTAGGED: &str = "SELECT m.digest AS digest, '' AS tag FROM manifests m
                 WHERE m.repo_id = ?1 AND (m.digest, '') > (?2, ?3)
                   AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)";
            let sql = match status {
                TagStatus::Tagged => format!("{TAGGED} ORDER BY 1, 2 LIMIT ?4"),
                TagStatus::Untagged => format!("{UNTAGGED} ORDER BY 1, 2 LIMIT ?4"),
                TagStatus::Any => {
                    format!("{TAGGED} UNION ALL {UNTAGGED} ORDER BY 1, 2 LIMIT ?4")
                }
            };
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![id, after_digest, after_tag, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (d, t) = row?;
                out.push(ImageId {
                    digest: parse_digest(d)?,
                    tag: (!t.is_empty()).then_some(t),
                });
            }
            Ok(Some(out))
        })
        .await
    }

    async fn delete_image(
        &self,
        repo: &RepositoryName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<DeleteImageOutcome> {
        let name = repo.qualified().to_string();
        let digest = digest.map(|d| d.to_string());
        let tag = tag.map(|t| t.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(DeleteImageOutcome::NotFound);
            };
            let target = match (&tag, &digest) {
                (Some(t), _) => {
                    let target: Option<String> = tx
                        .prepare_cached("SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2")?
                        .query_row(params![id, t], |r| r.get(0))
                        .optional()?;
                    match (target, &digest) {
                        (None, _) => return Ok(DeleteImageOutcome::NotFound),
                        (Some(found), Some(d)) if found != *d => {
                            return Ok(DeleteImageOutcome::TagDoesNotMatchDigest)
                        }
                        (Some(found), _) => found,
                    }
                }
                (None, Some(d)) => {
                    let exists = tx
                        .prepare_cached("SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
                        .exists(params![id, d])?;
                    if !exists {
                        return Ok(DeleteImageOutcome::NotFound);
                    }
                    d.clone()
                }
                (None, None) => return Ok(DeleteImageOutcome::NotFound),
            };
            let tags: Vec<String> = tx
                .prepare_cached("SELECT name FROM tags WHERE repo_id = ?1 AND digest = ?2 ORDER BY name")?
                .query_map(params![id, target], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let (removed_tags, delete_manifest) = match &tag {
                Some(t) => (vec![t.clone()], tags.len() == 1),
                None => (tags, true),
            };
            if delete_manifest {
                let index: Option<String> = tx
                    .prepare_cached(
                        "SELECT manifest FROM manifest_refs WHERE repo_id = ?1 AND target = ?2 AND kind = ?3 LIMIT 1",
                    )?
                    .query_row(params![id, target, REF_MANIFEST], |r| r.get(0))
                    .optional()?;
                if let Some(index) = index {
                    return Ok(DeleteImageOutcome::ReferencedByIndex(parse_digest(index)?));
                }
            }
            let now = super::now_ms();
            let mut del_tag = tx.prepare_cached("DELETE FROM tags WHERE repo_id = ?1 AND name = ?2")?;
            for t in &removed_tags {
                del_tag.execute(params![id, t])?;
                record_event(&tx, EventKind::TagDeleted, &name, Some(&target), Some(t), now)?;
            }
            drop(del_tag);
            if delete_manifest {
                tx.prepare_cached("DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
                    .execute(params![id, target])?;
                record_event(&tx, EventKind::ManifestDeleted, &name, Some(&target), None, now)?;
            }
            tx.commit()?;
            Ok(DeleteImageOutcome::Deleted {
                digest: parse_digest(target)?,
                tags: removed_tags,
                manifest_deleted: delete_manifest,
            })
        })
        .await
    }
}

#[async_trait::async_trait]
impl PullTimeStore for SqliteMetaStore {
    async fn record_pull_times(&self, pulls: &[PullTimeUpdate]) -> Result<usize> {
        if pulls.is_empty() {
            return Ok(0);
        }
        let pulls = pulls.to_vec();
        self.write(move |c| {
            let tx = immediate(c)?;
            let mut updated = 0;
            {
                // INSERT ... SELECT needs its WHERE before the upsert clause (SQLite's parser).
                let mut st = tx.prepare_cached(
                    "INSERT INTO image_pulls (repo_id, digest, last_pull_ms)
                     SELECT m.repo_id, m.digest, ?3 FROM manifests m
                       JOIN repositories r ON r.id = m.repo_id
                     WHERE r.name = ?1 AND m.digest = ?2
                     ON CONFLICT (repo_id, digest)
                       DO UPDATE SET last_pull_ms = max(last_pull_ms, excluded.last_pull_ms)",
                )?;
                for p in &pulls {
                    updated += st.execute(params![
                        p.repository.qualified(),
                        p.digest.to_string(),
                        p.at_ms
                    ])?;
                }
            }
            tx.commit()?;
            Ok(updated)
        })
        .await
    }

    async fn add_pull_time_exclusion(
        &self,
        account: &str,
        principal_arn: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<RegisterExclusionOutcome> {
        let (account, arn) = (account.to_string(), principal_arn.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let exists = tx
                .prepare_cached(
                    "SELECT 1 FROM pull_time_exclusions WHERE account_id = ?1 AND principal_arn = ?2",
                )?
                .exists(params![account, arn])?;
            if exists {
                return Ok(RegisterExclusionOutcome::AlreadyExists);
            }
            let count: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM pull_time_exclusions WHERE account_id = ?1")?
                .query_row([&account], |r| r.get(0))?;
            if count as usize >= limit {
                return Ok(RegisterExclusionOutcome::LimitExceeded);
            }
            tx.prepare_cached(
                "INSERT INTO pull_time_exclusions (account_id, principal_arn, created_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![account, arn, now_ms])?;
            tx.commit()?;
            Ok(RegisterExclusionOutcome::Registered(PullTimeExclusion {
                principal_arn: arn,
                created_ms: now_ms,
            }))
        })
        .await
    }

    async fn remove_pull_time_exclusion(&self, account: &str, principal_arn: &str) -> Result<bool> {
        let (account, arn) = (account.to_string(), principal_arn.to_string());
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM pull_time_exclusions WHERE account_id = ?1 AND principal_arn = ?2",
            )?
            .execute(params![account, arn])?
                > 0)
        })
        .await
    }

    async fn pull_time_exclusions(
        &self,
        account: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PullTimeExclusion>> {
        let account = account.map(str::to_string);
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT principal_arn, MIN(created_ms) FROM pull_time_exclusions
                 WHERE (?1 IS NULL OR account_id = ?1) AND principal_arn > ?2
                 GROUP BY principal_arn ORDER BY principal_arn LIMIT ?3",
            )?;
            let rows = st.query_map(params![account, after, limit as i64], |r| {
                Ok(PullTimeExclusion {
                    principal_arn: r.get(0)?,
                    created_ms: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteMetaStore {
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
                    repository: qualified_repository(r.get(3)?)?,
                    digest: r.get(4)?,
                    tag: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn last_event_id(&self) -> Result<i64> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sqlite::SqliteOptions;

    fn plan(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        st.query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A database of schema 3 with images gets their sizes back-filled by migration 4:
    /// an image manifest its declared layer sizes, an index its largest child.
    #[tokio::test]
    async fn migration_4_back_fills_image_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let image = r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:00","size":7},"layers":[{"digest":"sha256:01","size":100},{"digest":"sha256:02","size":23}]}"#;
        let small = r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:00","size":7},"layers":[]}"#;
        let index = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aa","size":1},{"digest":"sha256:bb","size":1}]}"#;
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
            )
            .unwrap();
            for (v, sql) in super::super::migrate::MIGRATIONS
                .iter()
                .filter(|(v, _)| *v <= 3)
            {
                c.execute_batch(sql).unwrap();
                c.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [v])
                    .unwrap();
            }
            c.execute_batch(&format!(
                "INSERT INTO repositories (id, name, created_ms) VALUES (1, 'old/app', 0);
                 INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms)
                   VALUES (1, 'sha256:aa', 'm', 1, CAST('{image}' AS BLOB), 0),
                          (1, 'sha256:bb', 'm', 1, CAST('{small}' AS BLOB), 0),
                          (1, 'sha256:cc', 'i', 1, CAST('{index}' AS BLOB), 0),
                          (1, 'sha256:dd', 'm', 1, CAST('not json' AS BLOB), 0);
                 INSERT INTO manifest_refs (repo_id, manifest, kind, target)
                   VALUES (1, 'sha256:cc', 1, 'sha256:aa'), (1, 'sha256:cc', 1, 'sha256:bb');"
            ))
            .unwrap();
        }
        drop(SqliteMetaStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        // Migration 9: a data dir without accounts belonged to the default account.
        let name: String = c
            .query_row("SELECT name FROM repositories", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "000000000000/old/app");
        let sizes: Vec<(String, i64)> = c
            .prepare("SELECT digest, image_size FROM manifests ORDER BY digest")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            sizes,
            vec![
                ("sha256:aa".to_string(), 123),
                ("sha256:bb".to_string(), 0),
                ("sha256:cc".to_string(), 123),
                ("sha256:dd".to_string(), 0),
            ]
        );
    }

    /// DescribeImages and ListImages over a repository of 10,000 images: every page is
    /// index searches (no scan of a whole table, no sort of the repository), and paging
    /// through all of it is fast.
    #[tokio::test]
    async fn image_pages_stay_indexed_over_ten_thousand_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let store = SqliteMetaStore::open_with(&path, SqliteOptions { fsync: false }).unwrap();
        let repo = RepositoryName::from_qualified("111122223333/big/app").unwrap();
        let layer = Digest::sha256_of(b"shared layer");
        store.commit_blob(&repo, &layer, 1234, None).await.unwrap();
        // 10,000 images in one write (a test shortcut: the rows are what put_manifest writes).
        let name = repo.qualified().to_string();
        let layer_text = layer.to_string();
        store
            .write(move |c| {
                let tx = immediate(c)?;
                let id = ensure_repo(&tx, &name, 1)?;
                for i in 0..10_000 {
                    let body = format!("{{\"image\":{i}}}");
                    let d = Digest::sha256_of(body.as_bytes()).to_string();
                    tx.prepare_cached(
                        "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
                         VALUES (?1, ?2, 'application/vnd.oci.image.manifest.v1+json', ?3, ?4, ?5, 1234)",
                    )?
                    .execute(params![id, d, body.len() as i64, body.as_bytes(), i])?;
                    tx.prepare_cached(
                        "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES (?1, ?2, 0, ?3)",
                    )?
                    .execute(params![id, d, layer_text])?;
                    if i % 2 == 0 {
                        tx.prepare_cached(
                            "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES (?1, ?2, ?3, 1)",
                        )?
                        .execute(params![id, format!("t{i}"), d])?;
                    }
                }
                tx.commit()?;
                Ok::<_, MetaError>(())
            })
            .await
            .unwrap();

        let c = Connection::open(&path).unwrap();
        let describe = format!(
            "{IMAGE_SELECT} WHERE m.repo_id = ?1 AND m.digest > ?2
               AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
             ORDER BY m.digest LIMIT ?3"
        );
        let p = plan(&c, &describe, params![1, "", 100]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("SEARCH m USING PRIMARY KEY")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .all(|l| !l.starts_with("SCAN") && !l.contains("TEMP B-TREE")),
            "{p:?}"
        );
        let list = "SELECT t.digest AS digest, t.name AS tag FROM tags t
                 WHERE t.repo_id = ?1 AND (t.digest, t.name) > (?2, ?3) ORDER BY 1, 2 LIMIT ?4";
        let p = plan(&c, list, params![1, "", "", 100]);
        assert!(
            p.iter()
                .all(|l| !l.starts_with("SCAN") && !l.contains("TEMP B-TREE")),
            "{p:?}"
        );

        // Every page, for each filter, in well under a second per thousand images.
        for (status, expected) in [
            (TagStatus::Any, 10_000),
            (TagStatus::Tagged, 5_000),
            (TagStatus::Untagged, 5_000),
        ] {
            let start = Instant::now();
            let (mut seen, mut after) = (0, None::<Digest>);
            let mut slowest = Duration::ZERO;
            loop {
                let t = Instant::now();
                let page = store
                    .describe_images(&repo, status, after.as_ref(), 100)
                    .await
                    .unwrap()
                    .unwrap();
                slowest = slowest.max(t.elapsed());
                let Some(last) = page.last() else { break };
                assert!(page.iter().all(|i| i.size == 1234));
                seen += page.len();
                after = Some(last.digest.clone());
            }
            assert_eq!(seen, expected, "{status:?}");
            assert!(
                slowest < Duration::from_millis(500),
                "{status:?}: slowest page {slowest:?}"
            );
            eprintln!(
                "describe_images {status:?}: {expected} images in {:?}, slowest page {slowest:?}",
                start.elapsed()
            );
        }
        let mut listed = 0;
        let mut after: Option<ImageId> = None;
        loop {
            let page = store
                .list_images(&repo, TagStatus::Any, after.as_ref(), 1000)
                .await
                .unwrap()
                .unwrap();
            let Some(last) = page.last().cloned() else {
                break;
            };
            listed += page.len();
            after = Some(last);
        }
        assert_eq!(listed, 10_000);
    }
}

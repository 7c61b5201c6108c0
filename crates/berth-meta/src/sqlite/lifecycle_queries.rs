//! `LifecycleStore` for SQLite (migration 0007): each method is one statement or one
//! transaction on the same database as the `MetaStore`.

use super::client_name;
use super::qualified_repository;
use rusqlite::{params, Connection, OptionalExtension};

use berth_types::RepositoryName;

use super::queries::immediate;
use super::SqliteMetaStore;
use crate::lifecycle::{
    ExpireOutcome, Expiry, ImageFactsRecord, LifecycleEvent, LifecycleStore, PreviewOutcome,
    PreviewRecord, PreviewResultRecord, PreviewStatus, PreviewTagFilter, StartPreview,
    StoredLifecyclePolicy, PREVIEW_STALE_MS,
};
use crate::{EventKind, MetaError, Result};

/// Child manifests of an index (`manifest_refs.kind`), as migration 0001 defines them.
const REF_MANIFEST: i64 = 1;

fn repo_id(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// Splits a `group_concat(..., char(10))`: tags and digests never contain a newline.
fn lines(s: Option<String>) -> Vec<String> {
    let mut v: Vec<String> = s
        .map(|t| t.split('\n').map(str::to_string).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn tags_from_json(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn tags_to_json(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredLifecyclePolicy> {
    Ok(StoredLifecyclePolicy {
        account: r.get(0)?,
        text: r.get(1)?,
        updated_ms: r.get(2)?,
        last_evaluated_ms: r.get(3)?,
    })
}

const POLICY_SELECT: &str = "SELECT p.account_id, p.policy_text, p.updated_ms, p.last_evaluated_ms
     FROM lifecycle_policies p JOIN repositories r ON r.id = p.repo_id WHERE r.name = ?1";

/// Every image of one repository (`?1`) with its tags and parent indexes (`?2` is
/// [`REF_MANIFEST`]).
const FACTS_SELECT: &str = "SELECT m.digest, m.pushed_ms, m.image_size, m.subject, p.last_pull_ms,
       (SELECT group_concat(t.name, char(10)) FROM tags t
         WHERE t.repo_id = m.repo_id AND t.digest = m.digest),
       (SELECT group_concat(x.manifest, char(10)) FROM manifest_refs x
         WHERE x.repo_id = m.repo_id AND x.target = m.digest AND x.kind = ?2),
       COALESCE(st.status, 'ACTIVE'), st.archived_ms, st.activated_ms
     FROM manifests m
     LEFT JOIN image_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
     LEFT JOIN image_storage st ON st.repo_id = m.repo_id AND st.digest = m.digest
     WHERE m.repo_id = ?1 ORDER BY m.digest";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LifecycleEvent> {
    let tags: String = r.get(4)?;
    Ok(LifecycleEvent {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        repository: qualified_repository(r.get(2)?)?,
        digest: r.get(3)?,
        tags: tags_from_json(&tags)?,
        rule_priority: r.get::<_, i64>(5)? as u32,
        action: r.get(6)?,
        size: r.get::<_, i64>(7)?.max(0) as u64,
        pushed_ms: r.get(8)?,
    })
}

const EVENT_COLUMNS: &str =
    "id, at_ms, repository, digest, tags, rule_priority, action, size, pushed_ms";

/// An image's storage status (`ACTIVE` when it was never archived).
fn image_status(tx: &rusqlite::Transaction<'_>, id: i64, digest: &str) -> rusqlite::Result<String> {
    Ok(tx
        .prepare_cached("SELECT status FROM image_storage WHERE repo_id = ?1 AND digest = ?2")?
        .query_row(params![id, digest], |r| r.get::<_, String>(0))
        .optional()?
        .unwrap_or_else(|| "ACTIVE".to_string()))
}

fn insert_lifecycle_event(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    expiry: &Expiry,
    tags: &[String],
    action: &str,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO lifecycle_events
           (at_ms, repository, digest, tags, rule_priority, action, size, pushed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        expiry.at_ms,
        name,
        expiry.digest.to_string(),
        tags_to_json(tags),
        expiry.rule_priority as i64,
        action,
        expiry.size as i64,
        expiry.pushed_ms
    ])?;
    Ok(tx.last_insert_rowid())
}

/// One conditional expiry inside the caller's transaction (see
/// [`LifecycleStore::expire_images`]).
fn expire_one(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    name: &str,
    expiry: &Expiry,
) -> Result<ExpireOutcome> {
    let digest = expiry.digest.to_string();
    let exists = tx
        .prepare_cached("SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
        .exists(params![id, digest])?;
    let now = if exists {
        let tags: Vec<String> = tx
            .prepare_cached(
                "SELECT name FROM tags WHERE repo_id = ?1 AND digest = ?2 ORDER BY name",
            )?
            .query_map(params![id, digest], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let referencing_index: Option<String> = tx
            .prepare_cached(
                "SELECT manifest FROM manifest_refs WHERE repo_id = ?1 AND target = ?2 AND kind = ?3 LIMIT 1",
            )?
            .query_row(params![id, digest, REF_MANIFEST], |r| r.get(0))
            .optional()?;
        Some(crate::rules::ImageNow {
            tags,
            status: image_status(tx, id, &digest)?,
            referencing_index,
        })
    } else {
        None
    };
    if let Some(refusal) = crate::rules::expiry_refusal(now.as_ref(), expiry) {
        return Ok(refusal);
    }
    let tags = now.map(|n| n.tags).unwrap_or_default();
    let now = expiry.at_ms;
    for t in &tags {
        tx.prepare_cached("DELETE FROM tags WHERE repo_id = ?1 AND name = ?2")?
            .execute(params![id, t])?;
        super::queries::record_event(tx, EventKind::TagDeleted, name, Some(&digest), Some(t), now)?;
    }
    tx.prepare_cached("DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
        .execute(params![id, digest])?;
    super::queries::record_event(
        tx,
        EventKind::ManifestDeleted,
        name,
        Some(&digest),
        None,
        now,
    )?;
    Ok(ExpireOutcome::Expired {
        event_id: insert_lifecycle_event(tx, name, expiry, &tags, "EXPIRE")?,
    })
}

#[async_trait::async_trait]
impl LifecycleStore for SqliteMetaStore {
    async fn put_lifecycle_policy(
        &self,
        account: &str,
        repo: &RepositoryName,
        text: &str,
        now_ms: i64,
    ) -> Result<()> {
        let (account, name, text) = (
            account.to_string(),
            repo.qualified().to_string(),
            text.to_string(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = repo_id(&tx, &name)?
                .ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            // The same text keeps its lastEvaluatedAt; a new one was never evaluated.
            tx.prepare_cached(
                "INSERT INTO lifecycle_policies (repo_id, account_id, policy_text, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (repo_id) DO UPDATE SET
                   account_id = excluded.account_id,
                   last_evaluated_ms = CASE WHEN policy_text = excluded.policy_text
                                            THEN last_evaluated_ms END,
                   policy_text = excluded.policy_text,
                   updated_ms = excluded.updated_ms",
            )?
            .execute(params![id, account, text, now_ms])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>> {
        let name = repo.qualified().to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(POLICY_SELECT)?
                .query_row([name], policy_row)
                .optional()?)
        })
        .await
    }

    async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>> {
        let name = repo.qualified().to_string();
        self.write(move |c| {
            let tx = immediate(c)?;
            let old = tx
                .prepare_cached(POLICY_SELECT)?
                .query_row([&name], policy_row)
                .optional()?;
            if old.is_some() {
                tx.prepare_cached(
                    "DELETE FROM lifecycle_policies
                     WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1)",
                )?
                .execute([&name])?;
            }
            tx.commit()?;
            Ok(old)
        })
        .await
    }

    async fn repositories_with_lifecycle_policies(&self) -> Result<Vec<RepositoryName>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT r.name FROM lifecycle_policies p JOIN repositories r ON r.id = p.repo_id
                 ORDER BY r.name",
            )?;
            let rows = st.query_map([], |r| qualified_repository(r.get(0)?))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn mark_lifecycle_evaluated(
        &self,
        repo: &RepositoryName,
        text: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let (name, text) = (repo.qualified().to_string(), text.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE lifecycle_policies SET last_evaluated_ms = ?3
                     WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1)
                       AND policy_text = ?2",
                )?
                .execute(params![name, text, at_ms])?;
            Ok(n > 0)
        })
        .await
    }

    async fn image_facts(&self, repo: &RepositoryName) -> Result<Option<Vec<ImageFactsRecord>>> {
        let name = repo.qualified().to_string();
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(None);
            };
            // Tags and parent indexes by correlated searches of their indexes (tags_digest,
            // manifest_refs_target), the pull time by primary key: one pass over the
            // repository's manifests.
            let mut st = c.prepare_cached(FACTS_SELECT)?;
            let rows = st.query_map(params![id, REF_MANIFEST], |r| {
                Ok(ImageFactsRecord {
                    digest: r.get(0)?,
                    pushed_ms: r.get(1)?,
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                    subject: r.get(3)?,
                    last_pull_ms: r.get(4)?,
                    tags: lines(r.get(5)?),
                    parents: lines(r.get(6)?),
                    status: r.get(7)?,
                    archived_ms: r.get(8)?,
                    activated_ms: r.get(9)?,
                })
            })?;
            Ok(Some(rows.collect::<rusqlite::Result<Vec<_>>>()?))
        })
        .await
    }

    async fn start_preview(
        &self,
        account: &str,
        repo: &RepositoryName,
        policy_text: &str,
        now_ms: i64,
    ) -> Result<StartPreview> {
        let (account, name, text) = (
            account.to_string(),
            repo.qualified().to_string(),
            policy_text.to_string(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = repo_id(&tx, &name)?.ok_or_else(|| MetaError::RepositoryNotFound(client_name(&name)))?;
            let current: Option<(i64, String, i64)> = tx
                .prepare_cached(
                    "SELECT generation, status, started_ms FROM lifecycle_previews WHERE repo_id = ?1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((_, status, started)) = &current {
                if status == PreviewStatus::InProgress.as_str()
                    && now_ms - started < PREVIEW_STALE_MS
                {
                    return Ok(StartPreview::InProgress);
                }
            }
            let generation = current.map(|c| c.0 + 1).unwrap_or(1);
            // Replacing the row drops the previous run's results (ON DELETE CASCADE).
            tx.prepare_cached("DELETE FROM lifecycle_previews WHERE repo_id = ?1")?
                .execute([id])?;
            tx.prepare_cached(
                "INSERT INTO lifecycle_previews
                   (repo_id, account_id, generation, policy_text, status, started_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id,
                account,
                generation,
                text,
                PreviewStatus::InProgress.as_str(),
                now_ms
            ])?;
            tx.commit()?;
            Ok(StartPreview::Started { generation })
        })
        .await
    }

    async fn finish_preview(
        &self,
        repo: &RepositoryName,
        generation: i64,
        outcome: &PreviewOutcome,
        now_ms: i64,
    ) -> Result<bool> {
        let name = repo.qualified().to_string();
        let outcome = outcome.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(false);
            };
            let current = tx
                .prepare_cached(
                    "SELECT 1 FROM lifecycle_previews
                     WHERE repo_id = ?1 AND generation = ?2 AND status = ?3",
                )?
                .exists(params![id, generation, PreviewStatus::InProgress.as_str()])?;
            if !current {
                return Ok(false);
            }
            match &outcome {
                PreviewOutcome::Complete(rows) => {
                    let mut ins = tx.prepare_cached(
                        "INSERT INTO lifecycle_preview_results
                           (repo_id, position, digest, tags, tagged, pushed_ms, action,
                            target_class, rule_priority, storage_class, size)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?;
                    let (mut expiring, mut transitioning) = (0i64, 0i64);
                    for row in rows {
                        ins.execute(params![
                            id,
                            row.position,
                            row.digest,
                            tags_to_json(&row.tags),
                            !row.tags.is_empty(),
                            row.pushed_ms,
                            row.action,
                            row.target_storage_class,
                            row.rule_priority as i64,
                            row.storage_class,
                            row.size as i64,
                        ])?;
                        if row.action == "EXPIRE" {
                            expiring += 1;
                        } else {
                            transitioning += 1;
                        }
                    }
                    drop(ins);
                    tx.prepare_cached(
                        "UPDATE lifecycle_previews SET status = ?2, finished_ms = ?3,
                           expiring_count = ?4, transitioning_count = ?5
                         WHERE repo_id = ?1",
                    )?
                    .execute(params![
                        id,
                        PreviewStatus::Complete.as_str(),
                        now_ms,
                        expiring,
                        transitioning
                    ])?;
                }
                PreviewOutcome::Failed(why) => {
                    tx.prepare_cached(
                        "UPDATE lifecycle_previews SET status = ?2, finished_ms = ?3, failure = ?4
                         WHERE repo_id = ?1",
                    )?
                    .execute(params![
                        id,
                        PreviewStatus::Failed.as_str(),
                        now_ms,
                        why
                    ])?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn preview(&self, repo: &RepositoryName) -> Result<Option<PreviewRecord>> {
        let name = repo.qualified().to_string();
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT v.account_id, v.generation, v.policy_text, v.status, v.started_ms,
                            v.finished_ms, v.expiring_count, v.transitioning_count, v.failure
                     FROM lifecycle_previews v JOIN repositories r ON r.id = v.repo_id
                     WHERE r.name = ?1",
                )?
                .query_row([name], |r| {
                    let status: String = r.get(3)?;
                    Ok(PreviewRecord {
                        account: r.get(0)?,
                        generation: r.get(1)?,
                        policy_text: r.get(2)?,
                        // Only this module writes the column, with these three values.
                        status: PreviewStatus::parse(&status).unwrap_or(PreviewStatus::Failed),
                        started_ms: r.get(4)?,
                        finished_ms: r.get(5)?,
                        expiring_count: r.get::<_, i64>(6)?.max(0) as u64,
                        transitioning_count: r.get::<_, i64>(7)?.max(0) as u64,
                        failure: r.get(8)?,
                    })
                })
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn preview_results(
        &self,
        repo: &RepositoryName,
        filter: PreviewTagFilter,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<PreviewResultRecord>> {
        let name = repo.qualified().to_string();
        self.read(move |c| {
            let Some(id) = repo_id(c, &name)? else {
                return Ok(Vec::new());
            };
            let cond = match filter {
                PreviewTagFilter::Any => "",
                PreviewTagFilter::Tagged => "AND tagged = 1",
                PreviewTagFilter::Untagged => "AND tagged = 0",
            };
            let mut st = c.prepare_cached(&format!(
                "SELECT position, digest, tags, pushed_ms, action, target_class, rule_priority,
                        storage_class, size
                 FROM lifecycle_preview_results
                 WHERE repo_id = ?1 AND position > ?2 {cond} ORDER BY position LIMIT ?3"
            ))?;
            let rows = st.query_map(params![id, after.unwrap_or(i64::MIN), limit as i64], |r| {
                let tags: String = r.get(2)?;
                Ok(PreviewResultRecord {
                    position: r.get(0)?,
                    digest: r.get(1)?,
                    tags: tags_from_json(&tags)?,
                    pushed_ms: r.get(3)?,
                    action: r.get(4)?,
                    target_storage_class: r.get(5)?,
                    rule_priority: r.get::<_, i64>(6)? as u32,
                    storage_class: r.get(7)?,
                    size: r.get::<_, i64>(8)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn expire_images(
        &self,
        repo: &RepositoryName,
        expiries: &[Expiry],
    ) -> Result<Vec<ExpireOutcome>> {
        let name = repo.qualified().to_string();
        let expiries = expiries.to_vec();
        self.write(move |c| {
            let tx = immediate(c)?;
            let Some(id) = repo_id(&tx, &name)? else {
                return Ok(vec![ExpireOutcome::Gone; expiries.len()]);
            };
            let mut out = Vec::with_capacity(expiries.len());
            for e in &expiries {
                out.push(expire_one(&tx, id, &name, e)?);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn log_transition(&self, repo: &RepositoryName, expiry: &Expiry) -> Result<i64> {
        let name = repo.qualified().to_string();
        let expiry = expiry.clone();
        self.write(move |c| {
            let tx = immediate(c)?;
            let id =
                insert_lifecycle_event(&tx, &name, &expiry, &expiry.expected_tags, "TRANSITION")?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>> {
        let repository = repository.map(|r| r.qualified().to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM lifecycle_events
                 WHERE id > ?1 AND (?2 IS NULL OR repository = ?2) ORDER BY id LIMIT ?3"
            ))?;
            let rows = st.query_map(params![after_id, repository, limit as i64], event_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn recent_lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>> {
        let repository = repository.map(|r| r.qualified().to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM lifecycle_events
                 WHERE (?1 IS NULL OR repository = ?1) ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![repository, limit as i64], event_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use berth_types::Digest;

    use super::*;
    use crate::sqlite::SqliteOptions;

    /// The facts of a repository of 100,000 images (half tagged, every tenth in an index,
    /// every hundredth pulled) come from one query that walks the repository's manifests
    /// by primary key and reaches tags, parents and pulls by index searches: no scan of
    /// another table, no temporary sort. The time is printed; the bound is loose enough
    /// for a debug build on a shared machine (release reads it in a fraction of it).
    #[tokio::test]
    async fn facts_of_a_hundred_thousand_images_are_one_indexed_query() {
        const N: usize = 100_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let store = SqliteMetaStore::open_with(&path, SqliteOptions { fsync: false }).unwrap();
        let index_digest = Digest::sha256_of(b"the index").to_string();
        // A test shortcut: the rows are what put_manifest and the pull-time recorder write.
        let idx = index_digest.clone();
        store
            .write(move |c| {
                let tx = immediate(c)?;
                tx.execute(
                    "INSERT INTO repositories (name, created_ms) VALUES ('111122223333/big/app', 1)",
                    [],
                )?;
                let id = tx.last_insert_rowid();
                let manifest = |d: &str, i: i64| {
                    tx.prepare_cached(
                        "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms, image_size)
                         VALUES (?1, ?2, 'application/vnd.oci.image.manifest.v1+json', 2, x'7b7d', ?3, 1000)",
                    )?
                    .execute(params![id, d, i])
                };
                manifest(&idx, 0)?;
                for i in 0..N {
                    let d = Digest::sha256_of(format!("image {i}").as_bytes()).to_string();
                    manifest(&d, i as i64)?;
                    if i % 2 == 0 {
                        tx.prepare_cached(
                            "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES (?1, ?2, ?3, 1)",
                        )?
                        .execute(params![id, format!("t{i}"), d])?;
                    }
                    if i % 10 == 0 {
                        tx.prepare_cached(
                            "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES (?1, ?2, 1, ?3)",
                        )?
                        .execute(params![id, idx, d])?;
                    }
                    if i % 100 == 0 {
                        tx.prepare_cached(
                            "INSERT INTO image_pulls (repo_id, digest, last_pull_ms) VALUES (?1, ?2, 5)",
                        )?
                        .execute(params![id, d])?;
                    }
                }
                tx.commit()?;
                Ok::<_, MetaError>(())
            })
            .await
            .unwrap();

        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {FACTS_SELECT}"))
            .unwrap();
        let plan: Vec<String> = st
            .query_map(params![1, REF_MANIFEST], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .all(|l| !l.starts_with("SCAN") || l.starts_with("SCAN m")),
            "{plan:?}"
        );
        assert!(plan.iter().all(|l| !l.contains("TEMP B-TREE")), "{plan:?}");
        assert!(plan.iter().any(|l| l.contains("tags_digest")), "{plan:?}");
        assert!(
            plan.iter().any(|l| l.contains("manifest_refs_target")),
            "{plan:?}"
        );

        let repo = RepositoryName::from_qualified("111122223333/big/app").unwrap();
        let start = Instant::now();
        let facts = store.image_facts(&repo).await.unwrap().unwrap();
        let took = start.elapsed();
        eprintln!("image_facts: {} images in {took:?}", facts.len());
        assert_eq!(facts.len(), N + 1);
        assert_eq!(facts.iter().filter(|f| !f.tags.is_empty()).count(), N / 2);
        assert_eq!(
            facts
                .iter()
                .filter(|f| f.parents == vec![index_digest.clone()])
                .count(),
            N / 10
        );
        assert_eq!(
            facts.iter().filter(|f| f.last_pull_ms == Some(5)).count(),
            N / 100
        );
        assert!(facts.iter().all(|f| f.size == 1000));
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}

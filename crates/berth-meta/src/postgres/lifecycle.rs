//! [`LifecycleStore`] for PostgreSQL (tables from migrations 0007 and 0008), the port of
//! `sqlite/lifecycle_queries.rs`. Decisions are shared Rust ([`crate::rules`],
//! [`crate::lifecycle_rules`]); each write is one READ COMMITTED transaction whose locks
//! keep the invariants when several nodes run lifecycle at once:
//! - a repository's policy and preview are written under its row locked `FOR NO KEY
//!   UPDATE` (the repository cannot go meanwhile, and writers take turns): a preview's
//!   generation is read and bumped by one writer at a time, and a finished run writes only
//!   if it still is the current, in-progress generation, so an older run never overwrites a
//!   newer one;
//! - `lastEvaluatedAt` is set by a compare-and-set on the policy text (one `UPDATE ...
//!   WHERE policy_text = $2`, re-checked by PostgreSQL on the latest row version);
//! - an expiry locks the image's manifest row `FOR UPDATE` before it reads what it
//!   re-checks: no tag can be pointed at it nor storage row added meanwhile (their
//!   foreign keys need `FOR KEY SHARE` of that row); its tags and storage status are read
//!   `FOR UPDATE` too, so a tag moved away or a status changed by another node is seen as
//!   committed, and the delete matches the tag's digest as well as its name. An index push
//!   that locks its children (as a children check must) cannot slip in either.
//!
//! A transaction that loses a deadlock is retried whole ([`super::PgDb::retry`]).

use tokio_postgres::{GenericClient, Row};

use berth_types::RepositoryName;

use super::lifecycle_expire::{expire_one, insert_lifecycle_event};
use super::meta::PgMetaStore;
use super::settings_rows::{repo_id, RepoLock};
use crate::lifecycle::{
    ExpireOutcome, Expiry, ImageFactsRecord, LifecycleEvent, LifecycleStore, PreviewOutcome,
    PreviewRecord, PreviewResultRecord, PreviewStatus, PreviewTagFilter, StartPreview,
    StoredLifecyclePolicy,
};
use crate::lifecycle_rules::{
    evaluated_after_put, next_preview_generation, preview_blocks_start, preview_counts,
};
use crate::{MetaError, Result};

/// Child manifests of an index (`manifest_refs.kind`), as migration 0001 defines them.
pub(super) const REF_MANIFEST: i32 = 1;

fn db_error(what: String) -> MetaError {
    MetaError::Database(what.into())
}

fn size_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn priority_of(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| db_error(format!("rule priority out of range: {v}")))
}

fn tags_from_json(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| db_error(format!("stored tags are malformed: {e}")))
}

pub(super) fn tags_to_json(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

fn qualified_repository(stored: &str) -> Result<RepositoryName> {
    RepositoryName::from_qualified(stored)
        .map_err(|e| db_error(format!("stored repository name {stored:?}: {e}")))
}

fn not_found(name: &RepositoryName) -> MetaError {
    MetaError::RepositoryNotFound(name.as_str().to_string())
}

fn policy_row(r: &Row) -> Result<StoredLifecyclePolicy> {
    Ok(StoredLifecyclePolicy {
        account: r.try_get(0)?,
        text: r.try_get(1)?,
        updated_ms: r.try_get(2)?,
        last_evaluated_ms: r.try_get(3)?,
    })
}

/// Every image of repository `$1` (by name) with its tags and parent indexes (`$2` is
/// [`REF_MANIFEST`]), in one statement: the repository's row comes first so an empty
/// repository (one row, no digest) is told from a missing one (no row). Tags and parents
/// are correlated searches of their indexes (`tags_digest`, `manifest_refs_target`), pull
/// time and storage status primary-key joins.
pub(super) const FACTS_SELECT: &str =
    "SELECT m.digest, m.pushed_ms, m.image_size, m.subject, p.last_pull_ms,
       ARRAY(SELECT t.name FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest),
       ARRAY(SELECT x.manifest FROM manifest_refs x
              WHERE x.repo_id = m.repo_id AND x.target = m.digest AND x.kind = $2),
       COALESCE(st.status, 'ACTIVE'), st.archived_ms, st.activated_ms
     FROM repositories r
     LEFT JOIN manifests m ON m.repo_id = r.id
     LEFT JOIN image_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
     LEFT JOIN image_storage st ON st.repo_id = m.repo_id AND st.digest = m.digest
     WHERE r.name = $1 ORDER BY m.digest";

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn facts_row(r: &Row) -> Result<Option<ImageFactsRecord>> {
    let Some(digest) = r.try_get::<_, Option<String>>(0)? else {
        return Ok(None);
    };
    Ok(Some(ImageFactsRecord {
        digest,
        pushed_ms: r.try_get(1)?,
        size: size_of(r.try_get(2)?),
        subject: r.try_get(3)?,
        last_pull_ms: r.try_get(4)?,
        tags: sorted(r.try_get(5)?),
        parents: sorted(r.try_get(6)?),
        status: r.try_get(7)?,
        archived_ms: r.try_get(8)?,
        activated_ms: r.try_get(9)?,
    }))
}

const EVENT_COLUMNS: &str =
    "id, at_ms, repository, digest, tags, rule_priority, action, size, pushed_ms";

fn event_row(r: &Row) -> Result<LifecycleEvent> {
    Ok(LifecycleEvent {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        repository: qualified_repository(r.try_get(2)?)?,
        digest: r.try_get(3)?,
        tags: tags_from_json(r.try_get(4)?)?,
        rule_priority: priority_of(r.try_get(5)?)?,
        action: r.try_get(6)?,
        size: size_of(r.try_get(7)?),
        pushed_ms: r.try_get(8)?,
    })
}

fn preview_row(r: &Row) -> Result<PreviewRecord> {
    let status: String = r.try_get(3)?;
    Ok(PreviewRecord {
        account: r.try_get(0)?,
        generation: r.try_get(1)?,
        policy_text: r.try_get(2)?,
        // Only this module (and SQLite's) writes the column, with these three values.
        status: PreviewStatus::parse(&status).unwrap_or(PreviewStatus::Failed),
        started_ms: r.try_get(4)?,
        finished_ms: r.try_get(5)?,
        expiring_count: size_of(r.try_get(6)?),
        transitioning_count: size_of(r.try_get(7)?),
        failure: r.try_get(8)?,
    })
}

fn result_row(r: &Row) -> Result<PreviewResultRecord> {
    Ok(PreviewResultRecord {
        position: r.try_get(0)?,
        digest: r.try_get(1)?,
        tags: tags_from_json(r.try_get(2)?)?,
        pushed_ms: r.try_get(3)?,
        action: r.try_get(4)?,
        target_storage_class: r.try_get(5)?,
        rule_priority: priority_of(r.try_get(6)?)?,
        storage_class: r.try_get(7)?,
        size: size_of(r.try_get(8)?),
    })
}

/// Stores a complete run's rows in one statement.
async fn insert_results<C: GenericClient>(
    c: &C,
    id: i64,
    rows: &[PreviewResultRecord],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = rows.iter().map(|r| r.position).collect();
    let digests: Vec<&str> = rows.iter().map(|r| r.digest.as_str()).collect();
    let tags: Vec<String> = rows.iter().map(|r| tags_to_json(&r.tags)).collect();
    let tagged: Vec<bool> = rows.iter().map(|r| !r.tags.is_empty()).collect();
    let pushed: Vec<i64> = rows.iter().map(|r| r.pushed_ms).collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    let targets: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.target_storage_class.as_deref())
        .collect();
    let priorities: Vec<i64> = rows.iter().map(|r| i64::from(r.rule_priority)).collect();
    let classes: Vec<&str> = rows.iter().map(|r| r.storage_class.as_str()).collect();
    let sizes: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.size).unwrap_or(i64::MAX))
        .collect();
    c.execute(
        "INSERT INTO lifecycle_preview_results
           (repo_id, position, digest, tags, tagged, pushed_ms, action, target_class,
            rule_priority, storage_class, size)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bool[],
           $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::bigint[])",
        &[
            &id,
            &positions,
            &digests,
            &tags,
            &tagged,
            &pushed,
            &actions,
            &targets,
            &priorities,
            &classes,
            &sizes,
        ],
    )
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl LifecycleStore for PgMetaStore {
    async fn put_lifecycle_policy(
        &self,
        account: &str,
        repo: &RepositoryName,
        text: &str,
        now_ms: i64,
    ) -> Result<()> {
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = repo_id(&*tx, name, RepoLock::NoKeyUpdate)
                    .await?
                    .ok_or_else(|| not_found(repo))?;
                let stored = tx
                    .query_opt(
                        "SELECT policy_text, last_evaluated_ms FROM lifecycle_policies
                         WHERE repo_id = $1 FOR UPDATE",
                        &[&id],
                    )
                    .await?
                    .map(|r| {
                        Ok::<_, tokio_postgres::Error>((
                            r.try_get::<_, String>(0)?,
                            r.try_get::<_, Option<i64>>(1)?,
                        ))
                    })
                    .transpose()?;
                let evaluated =
                    evaluated_after_put(stored.as_ref().map(|(t, e)| (t.as_str(), *e)), text);
                tx.execute(
                    "INSERT INTO lifecycle_policies
                       (repo_id, account_id, policy_text, updated_ms, last_evaluated_ms)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (repo_id) DO UPDATE SET account_id = excluded.account_id,
                       policy_text = excluded.policy_text, updated_ms = excluded.updated_ms,
                       last_evaluated_ms = excluded.last_evaluated_ms",
                    &[&id, &account, &text, &now_ms, &evaluated],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>> {
        let client = self.db.client().await?;
        client
            .query_opt(
                "SELECT p.account_id, p.policy_text, p.updated_ms, p.last_evaluated_ms
                 FROM lifecycle_policies p JOIN repositories r ON r.id = p.repo_id
                 WHERE r.name = $1",
                &[&repo.qualified()],
            )
            .await?
            .map(|r| policy_row(&r))
            .transpose()
    }

    async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>> {
        let client = self.db.client().await?;
        client
            .query_opt(
                "DELETE FROM lifecycle_policies p USING repositories r
                 WHERE r.id = p.repo_id AND r.name = $1
                 RETURNING p.account_id, p.policy_text, p.updated_ms, p.last_evaluated_ms",
                &[&repo.qualified()],
            )
            .await?
            .map(|r| policy_row(&r))
            .transpose()
    }

    async fn repositories_with_lifecycle_policies(&self) -> Result<Vec<RepositoryName>> {
        let client = self.db.client().await?;
        client
            .query(
                "SELECT r.name FROM lifecycle_policies p JOIN repositories r ON r.id = p.repo_id
                 ORDER BY r.name",
                &[],
            )
            .await?
            .iter()
            .map(|r| qualified_repository(r.try_get(0)?))
            .collect()
    }

    async fn mark_lifecycle_evaluated(
        &self,
        repo: &RepositoryName,
        text: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let client = self.db.client().await?;
        let n = client
            .execute(
                "UPDATE lifecycle_policies SET last_evaluated_ms = $3
                 WHERE repo_id = (SELECT id FROM repositories WHERE name = $1)
                   AND policy_text = $2",
                &[&repo.qualified(), &text, &at_ms],
            )
            .await?;
        Ok(n > 0)
    }

    async fn image_facts(&self, repo: &RepositoryName) -> Result<Option<Vec<ImageFactsRecord>>> {
        let client = self.db.client().await?;
        let rows = client
            .query(FACTS_SELECT, &[&repo.qualified(), &REF_MANIFEST])
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(f) = facts_row(r)? {
                out.push(f);
            }
        }
        Ok(Some(out))
    }

    async fn start_preview(
        &self,
        account: &str,
        repo: &RepositoryName,
        policy_text: &str,
        now_ms: i64,
    ) -> Result<StartPreview> {
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = repo_id(&*tx, name, RepoLock::NoKeyUpdate)
                    .await?
                    .ok_or_else(|| not_found(repo))?;
                let current = tx
                    .query_opt(
                        "SELECT generation, status, started_ms FROM lifecycle_previews
                         WHERE repo_id = $1",
                        &[&id],
                    )
                    .await?
                    .map(|r| {
                        Ok::<_, tokio_postgres::Error>((
                            r.try_get::<_, i64>(0)?,
                            r.try_get::<_, String>(1)?,
                            r.try_get::<_, i64>(2)?,
                        ))
                    })
                    .transpose()?;
                if let Some((_, status, started)) = &current {
                    if preview_blocks_start(status, *started, now_ms) {
                        return Ok(StartPreview::InProgress);
                    }
                }
                let generation = next_preview_generation(current.map(|c| c.0));
                // Replacing the row drops the previous run's results (ON DELETE CASCADE).
                tx.execute("DELETE FROM lifecycle_previews WHERE repo_id = $1", &[&id])
                    .await?;
                tx.execute(
                    "INSERT INTO lifecycle_previews
                       (repo_id, account_id, generation, policy_text, status, started_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &account,
                        &generation,
                        &policy_text,
                        &PreviewStatus::InProgress.as_str(),
                        &now_ms,
                    ],
                )
                .await?;
                tx.commit().await?;
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
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = repo_id(&*tx, name, RepoLock::NoKeyUpdate).await? else {
                    return Ok(false);
                };
                let current = tx
                    .query_opt(
                        "SELECT 1 FROM lifecycle_previews
                         WHERE repo_id = $1 AND generation = $2 AND status = $3",
                        &[&id, &generation, &PreviewStatus::InProgress.as_str()],
                    )
                    .await?
                    .is_some();
                if !current {
                    return Ok(false);
                }
                match outcome {
                    PreviewOutcome::Complete(rows) => {
                        insert_results(&*tx, id, rows).await?;
                        let (expiring, transitioning) = preview_counts(rows);
                        let (expiring, transitioning) = (
                            i64::try_from(expiring).unwrap_or(i64::MAX),
                            i64::try_from(transitioning).unwrap_or(i64::MAX),
                        );
                        tx.execute(
                            "UPDATE lifecycle_previews SET status = $2, finished_ms = $3,
                               expiring_count = $4, transitioning_count = $5
                             WHERE repo_id = $1",
                            &[
                                &id,
                                &PreviewStatus::Complete.as_str(),
                                &now_ms,
                                &expiring,
                                &transitioning,
                            ],
                        )
                        .await?;
                    }
                    PreviewOutcome::Failed(why) => {
                        tx.execute(
                            "UPDATE lifecycle_previews SET status = $2, finished_ms = $3,
                               failure = $4
                             WHERE repo_id = $1",
                            &[&id, &PreviewStatus::Failed.as_str(), &now_ms, why],
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    async fn preview(&self, repo: &RepositoryName) -> Result<Option<PreviewRecord>> {
        let client = self.db.client().await?;
        client
            .query_opt(
                "SELECT v.account_id, v.generation, v.policy_text, v.status, v.started_ms,
                        v.finished_ms, v.expiring_count, v.transitioning_count, v.failure
                 FROM lifecycle_previews v JOIN repositories r ON r.id = v.repo_id
                 WHERE r.name = $1",
                &[&repo.qualified()],
            )
            .await?
            .map(|r| preview_row(&r))
            .transpose()
    }

    async fn preview_results(
        &self,
        repo: &RepositoryName,
        filter: PreviewTagFilter,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<PreviewResultRecord>> {
        let tagged: Option<bool> = match filter {
            PreviewTagFilter::Any => None,
            PreviewTagFilter::Tagged => Some(true),
            PreviewTagFilter::Untagged => Some(false),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.db.client().await?;
        client
            .query(
                "SELECT x.position, x.digest, x.tags, x.pushed_ms, x.action, x.target_class,
                        x.rule_priority, x.storage_class, x.size
                 FROM lifecycle_preview_results x JOIN repositories r ON r.id = x.repo_id
                 WHERE r.name = $1 AND x.position > $2
                   AND ($3::bool IS NULL OR x.tagged = $3)
                 ORDER BY x.position LIMIT $4",
                &[
                    &repo.qualified(),
                    &after.unwrap_or(i64::MIN),
                    &tagged,
                    &limit,
                ],
            )
            .await?
            .iter()
            .map(result_row)
            .collect()
    }

    async fn expire_images(
        &self,
        repo: &RepositoryName,
        expiries: &[Expiry],
    ) -> Result<Vec<ExpireOutcome>> {
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = repo_id(&*tx, name, RepoLock::KeyShare).await? else {
                    return Ok(vec![ExpireOutcome::Gone; expiries.len()]);
                };
                let mut out = Vec::with_capacity(expiries.len());
                for e in expiries {
                    out.push(expire_one(&*tx, id, name, e).await?);
                }
                tx.commit().await?;
                Ok(out)
            })
            .await
    }

    async fn log_transition(&self, repo: &RepositoryName, expiry: &Expiry) -> Result<i64> {
        let client = self.db.client().await?;
        insert_lifecycle_event(
            &**client,
            repo.qualified(),
            expiry,
            &expiry.expected_tags,
            "TRANSITION",
        )
        .await
    }

    async fn lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>> {
        let repository = repository.map(|r| r.qualified());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.db.client().await?;
        client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM lifecycle_events
                     WHERE id > $1 AND ($2::text IS NULL OR repository = $2)
                     ORDER BY id LIMIT $3"
                ),
                &[&after_id, &repository, &limit],
            )
            .await?
            .iter()
            .map(event_row)
            .collect()
    }

    async fn recent_lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>> {
        let repository = repository.map(|r| r.qualified());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.db.client().await?;
        client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM lifecycle_events
                     WHERE ($1::text IS NULL OR repository = $1)
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&repository, &limit],
            )
            .await?
            .iter()
            .map(event_row)
            .collect()
    }
}

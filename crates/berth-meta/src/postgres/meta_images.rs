//! [`ImageStore`] (the ECR API's view of images) and [`PullTimeStore`] for PostgreSQL.
//!
//! A page of `describe_images` or `list_images` is one query, whatever the repository's
//! size: the repository row joined `LATERAL` to a keyset page of its manifests (tags
//! aggregated by an indexed subquery, the pull time by a primary-key join), so a missing
//! repository (no row) is told from an empty page (one row of NULLs).
//!
//! `delete_image` locks the tag (`FOR UPDATE`) it deletes by, then the manifest row `FOR
//! UPDATE`, then its tags, before deciding with the same rule as SQLite; a push that adds
//! a tag to that manifest holds its row `FOR SHARE`, so one waits for the other.
//! Pull-time exclusions are counted under a per-account advisory lock, so nodes adding
//! them at once never exceed the limit.

use std::collections::HashMap;

use berth_types::{Digest, RepositoryName, Tag};
use tokio_postgres::Row;

use super::meta::PgMetaStore;
use super::meta_blobs::REF_MANIFEST;
use super::meta_events::record_event;
use super::meta_repos::{existing_repo, parse_digest, sql_limit};
use crate::{
    DeleteImageOutcome, EventKind, ImageId, ImageRecord, ImageStore, PullTimeExclusion,
    PullTimeStore, PullTimeUpdate, RegisterExclusionOutcome, Result, TagStatus,
};

/// The first key of the two-key advisory lock serialising one account's pull-time
/// exclusions ("pte" in ASCII; two-key locks never collide with one-key ones).
const EXCLUSIONS_LOCK_CLASS: i32 = 0x0070_7465;

/// The columns of [`ImageRecord`] of manifest `m` (`p`: its pull time): tags aggregated
/// in byte order by an indexed subquery (`tags_digest`).
const IMAGE_COLUMNS: &str = "m.digest, m.media_type, m.artifact_type, m.image_size, m.pushed_ms,
       m.subject, p.last_pull_ms,
       ARRAY(SELECT t.name FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest
             ORDER BY t.name)";

/// The filter of ECR's `tagStatus` on manifest `m`.
fn status_filter(status: TagStatus) -> &'static str {
    match status {
        TagStatus::Any => "",
        TagStatus::Tagged => {
            "AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)"
        }
        TagStatus::Untagged => {
            "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)"
        }
    }
}

/// An image from [`IMAGE_COLUMNS`] starting at column `at`; `None` for the NULL row of
/// an empty page.
fn image_of(r: &Row, at: usize) -> Result<Option<ImageRecord>> {
    let Some(digest) = r.try_get::<_, Option<&str>>(at)? else {
        return Ok(None);
    };
    let mut tags: Vec<String> = r.try_get(at + 7)?;
    tags.sort();
    Ok(Some(ImageRecord {
        digest: parse_digest(digest)?,
        tags,
        media_type: r.try_get(at + 1)?,
        artifact_type: r.try_get(at + 2)?,
        size: u64::try_from(r.try_get::<_, i64>(at + 3)?).unwrap_or(0),
        pushed_ms: r.try_get(at + 4)?,
        last_pull_ms: r.try_get(at + 6)?,
        subject: r
            .try_get::<_, Option<&str>>(at + 5)?
            .map(parse_digest)
            .transpose()?,
    }))
}

#[async_trait::async_trait]
impl ImageStore for PgMetaStore {
    async fn describe_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Option<Vec<ImageRecord>>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        let sql = format!(
            "SELECT page.* FROM repositories r
             LEFT JOIN LATERAL (
                 SELECT {IMAGE_COLUMNS} FROM manifests m
                 LEFT JOIN image_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
                 WHERE m.repo_id = r.id AND m.digest > $2 {}
                 ORDER BY m.digest LIMIT $3
             ) page ON true
             WHERE r.name = $1 ORDER BY page.digest",
            status_filter(status)
        );
        let client = self.db.client().await?;
        let rows = client
            .query(&sql, &[&repo.qualified(), &after, &sql_limit(limit)])
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.extend(image_of(r, 0)?);
        }
        Ok(Some(out))
    }

    async fn describe_images_by_digest(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageRecord>>> {
        let texts: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {IMAGE_COLUMNS} FROM manifests m
                     JOIN repositories r ON r.id = m.repo_id
                     LEFT JOIN image_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
                     WHERE r.name = $1 AND m.digest = ANY($2)"
                ),
                &[&repo.qualified(), &texts],
            )
            .await?;
        let mut found: HashMap<String, ImageRecord> = HashMap::with_capacity(rows.len());
        for r in &rows {
            if let Some(image) = image_of(r, 0)? {
                found.insert(image.digest.to_string(), image);
            }
        }
        Ok(texts.iter().map(|d| found.get(d).cloned()).collect())
    }

    async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&ImageId>,
        limit: usize,
    ) -> Result<Option<Vec<ImageId>>> {
        let (after_digest, after_tag) = after
            .map(|a| (a.digest.to_string(), a.tag.clone().unwrap_or_default()))
            .unwrap_or_default();
        // An untagged image is listed with the empty tag, which sorts before every tag.
        const TAGGED: &str = "SELECT t.digest AS digest, t.name AS tag FROM tags t
             WHERE t.repo_id = r.id AND (t.digest, t.name) > ($2, $3)";
        const UNTAGGED: &str =
            "SELECT m.digest AS digest, '' COLLATE \"C\" AS tag FROM manifests m
             WHERE m.repo_id = r.id AND (m.digest, '' COLLATE \"C\") > ($2, $3)
               AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)";
        let inner = match status {
            TagStatus::Tagged => format!("{TAGGED} ORDER BY 1, 2 LIMIT $4"),
            TagStatus::Untagged => format!("{UNTAGGED} ORDER BY 1, 2 LIMIT $4"),
            TagStatus::Any => format!("({TAGGED}) UNION ALL ({UNTAGGED}) ORDER BY 1, 2 LIMIT $4"),
        };
        let sql = format!(
            "SELECT page.digest, page.tag FROM repositories r
             LEFT JOIN LATERAL ({inner}) page ON true
             WHERE r.name = $1 ORDER BY page.digest, page.tag"
        );
        let client = self.db.client().await?;
        let rows = client
            .query(
                &sql,
                &[
                    &repo.qualified(),
                    &after_digest,
                    &after_tag,
                    &sql_limit(limit),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(d) = r.try_get::<_, Option<&str>>(0)? else {
                continue;
            };
            let t: String = r.try_get(1)?;
            out.push(ImageId {
                digest: parse_digest(d)?,
                tag: (!t.is_empty()).then_some(t),
            });
        }
        Ok(Some(out))
    }

    async fn delete_image(
        &self,
        repo: &RepositoryName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<DeleteImageOutcome> {
        let name = repo.qualified();
        let digest = digest.map(|d| d.to_string());
        let tag = tag.map(|t| t.to_string());
        let (digest, tag) = (&digest, &tag);
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = existing_repo(&*tx, name).await? else {
                    return Ok(DeleteImageOutcome::NotFound);
                };
                let target = match (tag, digest) {
                    (Some(t), _) => {
                        let found: Option<String> = tx
                            .query_opt(
                                "SELECT digest FROM tags WHERE repo_id = $1 AND name = $2 FOR UPDATE",
                                &[&id, t],
                            )
                            .await?
                            .map(|r| r.try_get(0))
                            .transpose()?;
                        match (found, digest) {
                            (None, _) => return Ok(DeleteImageOutcome::NotFound),
                            (Some(found), Some(d)) if found != *d => {
                                return Ok(DeleteImageOutcome::TagDoesNotMatchDigest)
                            }
                            (Some(found), _) => found,
                        }
                    }
                    (None, Some(d)) => d.clone(),
                    (None, None) => return Ok(DeleteImageOutcome::NotFound),
                };
                // The manifest row, locked before its tags are read and its indexes looked
                // for: a push tagging it or an index referencing it waits, or is seen.
                let exists = tx
                    .query_opt(
                        "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR UPDATE",
                        &[&id, &target],
                    )
                    .await?
                    .is_some();
                if !exists {
                    return Ok(DeleteImageOutcome::NotFound);
                }
                let tags: Vec<String> = tx
                    .query(
                        "SELECT name FROM tags WHERE repo_id = $1 AND digest = $2
                         ORDER BY name FOR UPDATE",
                        &[&id, &target],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let (removed_tags, delete_manifest) = match tag {
                    Some(t) => (vec![t.clone()], tags.len() == 1),
                    None => (tags, true),
                };
                if delete_manifest {
                    let index: Option<String> = tx
                        .query_opt(
                            "SELECT manifest FROM manifest_refs
                             WHERE repo_id = $1 AND target = $2 AND kind = $3 LIMIT 1",
                            &[&id, &target, &REF_MANIFEST],
                        )
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    if let Some(index) = index {
                        return Ok(DeleteImageOutcome::ReferencedByIndex(parse_digest(
                            &index,
                        )?));
                    }
                }
                tx.execute(
                    "DELETE FROM tags WHERE repo_id = $1 AND name = ANY($2)",
                    &[&id, &removed_tags],
                )
                .await?;
                if delete_manifest {
                    tx.execute(
                        "DELETE FROM manifests WHERE repo_id = $1 AND digest = $2",
                        &[&id, &target],
                    )
                    .await?;
                }
                // Events last (see `meta_events`), in the order SQLite writes them.
                let now = super::now_ms();
                for t in &removed_tags {
                    record_event(
                        &*tx,
                        EventKind::TagDeleted,
                        name,
                        Some(&target),
                        Some(t),
                        now,
                    )
                    .await?;
                }
                if delete_manifest {
                    record_event(
                        &*tx,
                        EventKind::ManifestDeleted,
                        name,
                        Some(&target),
                        None,
                        now,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(DeleteImageOutcome::Deleted {
                    digest: parse_digest(&target)?,
                    tags: removed_tags,
                    manifest_deleted: delete_manifest,
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl PullTimeStore for PgMetaStore {
    async fn record_pull_times(&self, pulls: &[PullTimeUpdate]) -> Result<usize> {
        if pulls.is_empty() {
            return Ok(0);
        }
        // Each pull's manifest is locked `FOR KEY SHARE` as it is read: a manifest deleted
        // meanwhile is skipped (its pull dropped, as on SQLite) instead of failing the
        // foreign key. One lock order for every node flushing at once (fewer deadlocks).
        let mut pulls: Vec<(&str, String, i64)> = pulls
            .iter()
            .map(|p| (p.repository.qualified(), p.digest.to_string(), p.at_ms))
            .collect();
        pulls.sort();
        let pulls = &pulls;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let st = tx
                    .prepare(
                        "INSERT INTO image_pulls (repo_id, digest, last_pull_ms)
                         SELECT m.repo_id, m.digest, $3 FROM manifests m
                           JOIN repositories r ON r.id = m.repo_id
                         WHERE r.name = $1 AND m.digest = $2
                         FOR KEY SHARE OF m
                         ON CONFLICT (repo_id, digest) DO UPDATE
                           SET last_pull_ms = GREATEST(image_pulls.last_pull_ms, excluded.last_pull_ms)",
                    )
                    .await?;
                let mut updated = 0;
                for (repo, digest, at_ms) in pulls {
                    updated += tx.execute(&st, &[repo, digest, at_ms]).await?;
                }
                tx.commit().await?;
                Ok(usize::try_from(updated).unwrap_or(usize::MAX))
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
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                // The count below decides; nodes adding exclusions to one account at once
                // take turns, so the limit holds.
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&EXCLUSIONS_LOCK_CLASS, &account],
                )
                .await?;
                let exists = tx
                    .query_opt(
                        "SELECT 1 FROM pull_time_exclusions WHERE account_id = $1 AND principal_arn = $2",
                        &[&account, &principal_arn],
                    )
                    .await?
                    .is_some();
                if exists {
                    return Ok(RegisterExclusionOutcome::AlreadyExists);
                }
                let count: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM pull_time_exclusions WHERE account_id = $1",
                        &[&account],
                    )
                    .await?
                    .try_get(0)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= limit {
                    return Ok(RegisterExclusionOutcome::LimitExceeded);
                }
                tx.execute(
                    "INSERT INTO pull_time_exclusions (account_id, principal_arn, created_ms)
                     VALUES ($1, $2, $3)",
                    &[&account, &principal_arn, &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(RegisterExclusionOutcome::Registered(PullTimeExclusion {
                    principal_arn: principal_arn.to_string(),
                    created_ms: now_ms,
                }))
            })
            .await
    }

    async fn remove_pull_time_exclusion(&self, account: &str, principal_arn: &str) -> Result<bool> {
        let client = self.db.client().await?;
        Ok(client
            .execute(
                "DELETE FROM pull_time_exclusions WHERE account_id = $1 AND principal_arn = $2",
                &[&account, &principal_arn],
            )
            .await?
            > 0)
    }

    async fn pull_time_exclusions(
        &self,
        account: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PullTimeExclusion>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT principal_arn, MIN(created_ms) FROM pull_time_exclusions
                 WHERE ($1::text IS NULL OR account_id = $1) AND principal_arn > $2
                 GROUP BY principal_arn ORDER BY principal_arn LIMIT $3",
                &[&account, &after.unwrap_or(""), &sql_limit(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PullTimeExclusion {
                    principal_arn: r.try_get(0)?,
                    created_ms: r.try_get(1)?,
                })
            })
            .collect()
    }
}

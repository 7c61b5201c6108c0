//! Lifecycle execution's conditional expiry on PostgreSQL and its log (see
//! [`super::lifecycle`] for the locks): the image is re-read under row locks, judged by
//! [`crate::rules::expiry_refusal`], and deleted with its tags and outbox events.

use tokio_postgres::GenericClient;

use super::lifecycle::{tags_to_json, REF_MANIFEST};
// The outbox write with the lock that keeps event ids in commit order (see meta_events).
use super::meta_events::record_event;
use crate::lifecycle::{ExpireOutcome, Expiry};
use crate::{EventKind, Result};

pub(super) async fn insert_lifecycle_event<C: GenericClient>(
    c: &C,
    name: &str,
    expiry: &Expiry,
    tags: &[String],
    action: &str,
) -> Result<i64> {
    let row = c
        .query_one(
            "INSERT INTO lifecycle_events
               (at_ms, repository, digest, tags, rule_priority, action, size, pushed_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id",
            &[
                &expiry.at_ms,
                &name,
                &expiry.digest.to_string(),
                &tags_to_json(tags),
                &i64::from(expiry.rule_priority),
                &action,
                &i64::try_from(expiry.size).unwrap_or(i64::MAX),
                &expiry.pushed_ms,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// One conditional expiry inside the caller's transaction (see the module comment for its
/// locks, and [`crate::LifecycleStore::expire_images`]).
pub(super) async fn expire_one<C: GenericClient>(
    c: &C,
    id: i64,
    name: &str,
    expiry: &Expiry,
) -> Result<ExpireOutcome> {
    let digest = expiry.digest.to_string();
    let exists = c
        .query_opt(
            "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR UPDATE",
            &[&id, &digest],
        )
        .await?
        .is_some();
    let now = if exists {
        let tags = c
            .query(
                "SELECT name FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY name FOR UPDATE",
                &[&id, &digest],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<Vec<String>, _>>()?;
        let referencing_index = c
            .query_opt(
                "SELECT manifest FROM manifest_refs
                 WHERE repo_id = $1 AND target = $2 AND kind = $3 LIMIT 1",
                &[&id, &digest, &REF_MANIFEST],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let status = c
            .query_opt(
                "SELECT status FROM image_storage WHERE repo_id = $1 AND digest = $2 FOR UPDATE",
                &[&id, &digest],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or_else(|| "ACTIVE".to_string());
        Some(crate::rules::ImageNow {
            tags,
            status,
            referencing_index,
        })
    } else {
        None
    };
    if let Some(refusal) = crate::rules::expiry_refusal(now.as_ref(), expiry) {
        return Ok(refusal);
    }
    let tags = now.map(|n| n.tags).unwrap_or_default();
    let at = expiry.at_ms;
    for t in &tags {
        c.execute(
            "DELETE FROM tags WHERE repo_id = $1 AND name = $2 AND digest = $3",
            &[&id, t, &digest],
        )
        .await?;
        record_event(c, EventKind::TagDeleted, name, Some(&digest), Some(t), at).await?;
    }
    // Its references, pull time and storage row go with it (ON DELETE CASCADE).
    c.execute(
        "DELETE FROM manifests WHERE repo_id = $1 AND digest = $2",
        &[&id, &digest],
    )
    .await?;
    record_event(c, EventKind::ManifestDeleted, name, Some(&digest), None, at).await?;
    Ok(ExpireOutcome::Expired {
        event_id: insert_lifecycle_event(c, name, expiry, &tags, "EXPIRE").await?,
    })
}

//! [`ManifestStore`] for PostgreSQL: manifests with their references, tags, referrers.
//!
//! `put_manifest` is one transaction that locks, in this order (every lock held until it
//! commits):
//! 1. its repository `FOR SHARE` (created first if absent: once, whichever node wins; the
//!    mutability settings the tag decision reads cannot change meanwhile);
//! 2. every blob it references: the link `FOR SHARE` and the `blobs` row `FOR SHARE`, in
//!    digest order — neither `unlink_blob` nor garbage collection (which deletes a `blobs`
//!    row only under `FOR UPDATE`) can remove them before the references commit;
//! 3. every child manifest `FOR SHARE` (a concurrent delete of a child locks it `FOR
//!    UPDATE` before checking for indexes, so it sees this index or this push sees it gone);
//! 4. the manifest row itself (inserted, or an existing one `FOR SHARE`, so a concurrent
//!    delete either commits first — then the manifest is stored again — or waits);
//! 5. the tag `FOR UPDATE` (or, when absent, its insert, which of two nodes one wins and the
//!    other then locks and decides on): the move is decided on the latest committed target,
//!    so no tag update is lost and tag immutability holds under races;
//! 6. the event lock (`meta_events`), last.
//!
//! Deletes lock the manifest `FOR UPDATE` before checking that no index references it.

use std::collections::HashMap;

use berth_types::{Digest, RepositoryName, Tag};
use tokio_postgres::GenericClient;

use super::meta::PgMetaStore;
use super::meta_blobs::{REF_BLOB, REF_MANIFEST};
use super::meta_events::record_event;
use super::meta_repos::{
    db_error, ensure_repo, existing_repo, parse_digest, repo_id, sql_limit, LockedRepo, RepoLock,
};
use crate::sqlite::client_name;
use crate::{
    EventKind, ManifestRecord, ManifestStore, MetaError, NewManifest, PutManifestOutcome,
    ReferrerRecord, Result,
};

/// Rounds of "insert, else lock the existing row" before giving up (each round waits for
/// the concurrent transaction that made the previous one fail).
const ROW_ROUNDS: usize = 8;

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Sorted, deduplicated text forms of `digests` (locks are taken in this order).
fn sorted_texts(digests: &[Digest]) -> Vec<String> {
    let mut v: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// Steps 2 and 3 of the module doc: checks (under locks) that every blob is linked and
/// every child present, and computes the image size with [`crate::rules::image_size`].
async fn check_references<C: GenericClient>(tx: &C, repo_id: i64, m: &NewManifest) -> Result<i64> {
    let blobs = sorted_texts(&m.blobs);
    let mut sizes: HashMap<String, u64> = HashMap::with_capacity(blobs.len());
    if !blobs.is_empty() {
        for r in tx
            .query(
                "SELECT l.digest, b.size FROM blob_links l JOIN blobs b ON b.digest = l.digest
                 WHERE l.repo_id = $1 AND l.digest = ANY($2)
                 ORDER BY l.digest FOR SHARE OF l, b",
                &[&repo_id, &blobs],
            )
            .await?
        {
            sizes.insert(
                r.try_get(0)?,
                u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
            );
        }
    }
    if let Some(missing) = m.blobs.iter().find(|b| !sizes.contains_key(&b.to_string())) {
        return Err(MetaError::BlobNotLinked(missing.clone()));
    }
    if !blobs.is_empty() {
        // A link the manifest uses is referenced again: its garbage-collection mark goes.
        tx.execute(
            "UPDATE blob_links SET orphaned_ms = NULL
             WHERE repo_id = $1 AND digest = ANY($2) AND orphaned_ms IS NOT NULL",
            &[&repo_id, &blobs],
        )
        .await?;
    }
    let children = sorted_texts(&m.children);
    let mut child_sizes: HashMap<String, u64> = HashMap::with_capacity(children.len());
    if !children.is_empty() {
        for r in tx
            .query(
                "SELECT digest, image_size FROM manifests
                 WHERE repo_id = $1 AND digest = ANY($2) ORDER BY digest FOR SHARE",
                &[&repo_id, &children],
            )
            .await?
        {
            child_sizes.insert(
                r.try_get(0)?,
                u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
            );
        }
    }
    let mut child_list = Vec::with_capacity(m.children.len());
    for child in &m.children {
        match child_sizes.get(&child.to_string()) {
            Some(s) => child_list.push(*s),
            None => return Err(MetaError::ChildManifestMissing(child.clone())),
        }
    }
    // Layers are a subset of the blobs (non-distributable ones may be absent).
    let layer_sizes = m
        .layers
        .iter()
        .filter_map(|l| sizes.get(&l.to_string()).copied());
    Ok(clamp(crate::rules::image_size(layer_sizes, child_list)))
}

/// Step 4: stores the manifest unless present (then holds the existing row); returns
/// whether it was created.
async fn store_manifest<C: GenericClient>(
    tx: &C,
    repo_id: i64,
    m: &NewManifest,
    digest: &str,
    image_size: i64,
) -> Result<bool> {
    let subject = m.subject.as_ref().map(|s| s.to_string());
    let body_len = clamp(m.body.len() as u64);
    for _ in 0..ROW_ROUNDS {
        let inserted = tx
            .execute(
                "INSERT INTO manifests
                   (repo_id, digest, media_type, size, artifact_type, subject, annotations, body,
                    pushed_ms, image_size)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (repo_id, digest) DO NOTHING",
                &[
                    &repo_id,
                    &digest,
                    &m.media_type,
                    &body_len,
                    &m.artifact_type,
                    &subject,
                    &m.annotations_json,
                    &m.body,
                    &m.now_ms,
                    &image_size,
                ],
            )
            .await?
            == 1;
        if inserted {
            for (kind, targets) in [(REF_BLOB, &m.blobs), (REF_MANIFEST, &m.children)] {
                let targets = sorted_texts(targets);
                if targets.is_empty() {
                    continue;
                }
                tx.execute(
                    "INSERT INTO manifest_refs (repo_id, manifest, kind, target)
                     SELECT $1, $2, $3, t FROM unnest($4::text[]) AS t
                     ON CONFLICT DO NOTHING",
                    &[&repo_id, &digest, &kind, &targets],
                )
                .await?;
            }
            return Ok(true);
        }
        let held = tx
            .query_opt(
                "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR SHARE",
                &[&repo_id, &digest],
            )
            .await?
            .is_some();
        if held {
            return Ok(false);
        }
        // Deleted by a transaction that committed while this one waited: store it again.
    }
    Err(db_error(format!(
        "manifest {digest} kept being deleted while it was pushed"
    )))
}

/// What step 5 did to the tag.
struct TagMove {
    previous: Option<Digest>,
    updated: bool,
}

/// Step 5: points `tag` at `digest`, deciding on the latest committed target under its
/// row lock; the mutability rule is [`crate::tag_mutability::tag_is_immutable`].
async fn move_tag<C: GenericClient>(
    tx: &C,
    repo: &LockedRepo,
    name: &str,
    tag: &Tag,
    digest: &str,
    now_ms: i64,
) -> Result<TagMove> {
    for _ in 0..ROW_ROUNDS {
        let old: Option<String> = tx
            .query_opt(
                "SELECT digest FROM tags WHERE repo_id = $1 AND name = $2 FOR UPDATE",
                &[&repo.id, &tag.as_str()],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match old {
            Some(old) if old == digest => {
                return Ok(TagMove {
                    previous: None,
                    updated: false,
                })
            }
            Some(old) => {
                if crate::tag_mutability::tag_is_immutable(
                    &repo.mutability,
                    &repo.filters,
                    tag.as_str(),
                ) {
                    return Err(MetaError::TagImmutable {
                        repository: client_name(name),
                        tag: tag.to_string(),
                    });
                }
                tx.execute(
                    "UPDATE tags SET digest = $3, updated_ms = $4 WHERE repo_id = $1 AND name = $2",
                    &[&repo.id, &tag.as_str(), &digest, &now_ms],
                )
                .await?;
                return Ok(TagMove {
                    previous: Some(parse_digest(&old)?),
                    updated: true,
                });
            }
            None => {
                // Of nodes creating the tag at once, one inserts; the others wait for it,
                // insert nothing, and decide on its row in the next round.
                let inserted = tx
                    .execute(
                        "INSERT INTO tags (repo_id, name, digest, updated_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (repo_id, name) DO NOTHING",
                        &[&repo.id, &tag.as_str(), &digest, &now_ms],
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(TagMove {
                        previous: None,
                        updated: true,
                    });
                }
            }
        }
    }
    Err(db_error(format!(
        "tag {tag} of {name} kept changing while it was pushed"
    )))
}

#[async_trait::async_trait]
impl ManifestStore for PgMetaStore {
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        m: &NewManifest,
    ) -> Result<PutManifestOutcome> {
        let name = repo.qualified();
        let digest = m.digest.to_string();
        let digest = digest.as_str();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let repo = ensure_repo(&*tx, name, m.now_ms, RepoLock::Share).await?;
                let image_size = check_references(&*tx, repo.id, m).await?;
                let created = store_manifest(&*tx, repo.id, m, digest, image_size).await?;
                let moved = match &m.tag {
                    Some(tag) => move_tag(&*tx, &repo, name, tag, digest, m.now_ms).await?,
                    None => TagMove {
                        previous: None,
                        updated: false,
                    },
                };
                if created || m.tag.is_some() {
                    record_event(
                        &*tx,
                        EventKind::ManifestPushed,
                        name,
                        Some(digest),
                        m.tag.as_ref().map(Tag::as_str),
                        m.now_ms,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(PutManifestOutcome {
                    created,
                    previous_tag_target: moved.previous,
                    tag_updated: moved.updated,
                })
            })
            .await
    }

    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        let client = self.db.client().await?;
        // A pull's hot path: the statement is prepared once per connection.
        let st = client
            .prepare_cached(
                "SELECT m.media_type, m.body, m.pushed_ms FROM manifests m
                   JOIN repositories r ON r.id = m.repo_id
                 WHERE r.name = $1 AND m.digest = $2",
            )
            .await?;
        client
            .query_opt(&st, &[&repo.qualified(), &digest.to_string()])
            .await?
            .map(|r| {
                Ok(ManifestRecord {
                    digest: digest.clone(),
                    media_type: r.try_get(0)?,
                    body: r.try_get(1)?,
                    pushed_ms: r.try_get(2)?,
                })
            })
            .transpose()
    }

    async fn resolve_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        let client = self.db.client().await?;
        let st = client
            .prepare_cached(
                "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id
                 WHERE r.name = $1 AND t.name = $2",
            )
            .await?;
        client
            .query_opt(&st, &[&repo.qualified(), &tag.as_str()])
            .await?
            .map(|r| parse_digest(r.try_get(0)?))
            .transpose()
    }

    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (name, d) = (repo.qualified(), digest.to_string());
        let d = &d;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let Some(id) = existing_repo(&*tx, name).await? else {
                    return Ok(false);
                };
                // Lock it before looking for indexes: an index being pushed holds it `FOR
                // SHARE`, so it either commits first (and is found) or finds it gone.
                tx.query_opt(
                    "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR UPDATE",
                    &[&id, d],
                )
                .await?;
                let index: Option<String> = tx
                    .query_opt(
                        "SELECT manifest FROM manifest_refs
                         WHERE repo_id = $1 AND target = $2 AND kind = $3 LIMIT 1",
                        &[&id, d, &REF_MANIFEST],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                if let Some(index) = index {
                    return Err(MetaError::ManifestReferenced {
                        digest: digest.clone(),
                        index: parse_digest(&index)?,
                    });
                }
                tx.execute(
                    "DELETE FROM tags WHERE repo_id = $1 AND digest = $2",
                    &[&id, d],
                )
                .await?;
                let n = tx
                    .execute(
                        "DELETE FROM manifests WHERE repo_id = $1 AND digest = $2",
                        &[&id, d],
                    )
                    .await?;
                if n > 0 {
                    record_event(
                        &*tx,
                        EventKind::ManifestDeleted,
                        name,
                        Some(d),
                        None,
                        super::now_ms(),
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(n > 0)
            })
            .await
    }

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool> {
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let n = tx
                    .execute(
                        "DELETE FROM tags WHERE name = $2
                           AND repo_id = (SELECT id FROM repositories WHERE name = $1)",
                        &[&name, &tag.as_str()],
                    )
                    .await?;
                if n > 0 {
                    record_event(
                        &*tx,
                        EventKind::TagDeleted,
                        name,
                        None,
                        Some(tag.as_str()),
                        super::now_ms(),
                    )
                    .await?;
                }
                tx.commit().await?;
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
        let client = self.db.client().await?;
        let Some(id) = repo_id(&**client, repo.qualified()).await? else {
            return Ok(None);
        };
        let rows = client
            .query(
                "SELECT name FROM tags WHERE repo_id = $1 AND name > $2 ORDER BY name LIMIT $3",
                &[&id, &after.unwrap_or(""), &sql_limit(limit)],
            )
            .await?;
        Ok(Some(
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?,
        ))
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
                 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                 WHERE r.name = $1 AND m.subject = $2 ORDER BY m.digest",
                &[&repo.qualified(), &subject.to_string()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ReferrerRecord {
                    digest: parse_digest(r.try_get(0)?)?,
                    media_type: r.try_get(1)?,
                    size: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
                    artifact_type: r.try_get(3)?,
                    annotations_json: r.try_get(4)?,
                })
            })
            .collect()
    }
}

//! [`GcStore`] for PostgreSQL, and the **digest lock** that keeps a blob's bytes from being
//! deleted while another node references them (the rule of [`crate::gc`]: a deletion and
//! anything that makes the blob referenced are serialized on its digest).
//!
//! # The locking protocol (every transaction of this backend follows it)
//!
//! The lock on digest `D` is the lock on `D`'s row of `blobs`. All transactions are READ
//! COMMITTED, where each statement sees what was committed before it began; so every
//! check below runs in a statement *after* the one that took the lock, and then sees
//! everything the lock's previous holder committed.
//!
//! - **Deciders** lock `D`'s row `FOR UPDATE`, then re-check, then write, in one
//!   transaction: garbage collection's deletion ([`GcStore::gc_begin_delete`]: removes the
//!   row, records `blob_deletions`), its link sweep ([`GcStore::gc_sweep_links`]: removes
//!   links, for every digest whose links it removes) and the archive class's drop of a
//!   standard copy (`archive.rs`: removes every link, records `blob_deletions`). A
//!   `DELETE`/`UPDATE` of a link or blob row without this lock is not a decision about
//!   the bytes (marks only start grace periods; see `gc_mark`).
//! - **Referencers** lock `D`'s row `FOR SHARE` (or any stronger row lock, such as the one
//!   `INSERT ... ON CONFLICT DO UPDATE` takes on the row it writes) *before* they read
//!   `blob_deletions` or the link they rely on, then write, in one transaction:
//!   `pin_blob` (here), `commit_blob`, `mount_blob` (the source link), `put_manifest` (each
//!   blob it names, before reading its link), `begin_activation` and `finish_activation`
//!   (`archive.rs`). A referencer that finds the row gone (a decider removed it) reads
//!   `blob_deletions` and refuses with `BlobBeingDeleted`, or finds no link and answers
//!   `BlobNotLinked` / nothing mounted.
//! - **No row yet.** When `D` has no `blobs` row there is nothing to lock, so a
//!   transaction that needs the lock *claims* the row: it inserts a placeholder row
//!   (`INSERT ... ON CONFLICT DO NOTHING`, size 0) that it deletes again before it
//!   commits, so no other transaction ever sees it. Any other insert of `D` (a claim, or
//!   `commit_blob`'s upsert) waits for the claiming transaction to end — PostgreSQL waits
//!   for an uncommitted conflicting row even when its inserter has deleted it again — and
//!   a claim that conflicts with a row committed meanwhile locks that row instead. Used
//!   by `pin_blob` of a digest never recorded, [`GcStore::gc_begin_delete_unrecorded`]
//!   (which decides about bytes no row records) and the archive's drop, begin
//!   activation. `commit_blob` needs no claim: its upsert of the row is its lock.
//! - Rows are locked in digest order where a transaction locks several, and a transaction
//!   that loses a deadlock anyway is retried whole ([`super::PgDb::retry`]).
//!
//! So a referencer that commits first is seen by the decider's re-check, and one that
//! commits after finds the row gone (or claimed and released) and the deletion recorded.
//!
//! The mark walk ([`GcStore::gc_mark`]) is one statement per page. It reads its snapshot
//! without locks, so a mark may be a moment stale (a row referenced just now may be
//! marked): a mark only starts a grace period, every deletion re-checks under the lock,
//! and the next page's pass clears a mark on a referenced row.

use tokio_postgres::{GenericClient, Transaction};

use berth_types::Digest;

use super::PgMetaStore;
use crate::gc::{GcBlob, GcMarkPage, GcStore};
use crate::rules::{blob_deletable, BlobHolds};
use crate::{MetaError, Result};

/// A manifest of the link's own repository names the link's blob (config or layer).
const LINK_REFERENCED: &str = "EXISTS (SELECT 1 FROM manifest_refs r
     WHERE r.repo_id = l.repo_id AND r.target = l.digest AND r.kind = 0)";

/// Something holds blob row `b`: a link, a manifest reference or a commit's pin.
const BLOB_HELD: &str = "(EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)
     OR EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest AND r.kind = 0)
     OR EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest))";

/// Rounds of lock-or-claim before giving up (each lost round means another transaction
/// committed or removed the row in between, which does not go on for long).
const LOCK_ROUNDS: usize = 8;

/// Sentinel `created_ms` of a claim's placeholder row (never committed).
const CLAIM_MS: i64 = -1;

/// How a digest's row is locked (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DigestLock {
    /// A referencer: `FOR SHARE`.
    Share,
    /// A decider: `FOR UPDATE`.
    Update,
}

/// Placeholder rows a transaction inserted to claim digests with no row; released (deleted)
/// before the transaction commits.
#[derive(Debug, Default)]
#[must_use = "claims must be released before commit"]
pub(super) struct Claims(Vec<String>);

impl Claims {
    pub(super) fn contains(&self, digest: &str) -> bool {
        self.0.iter().any(|d| d == digest)
    }

    /// Deletes the placeholder rows (call before commit).
    pub(super) async fn release(self, tx: &Transaction<'_>) -> Result<()> {
        if !self.0.is_empty() {
            tx.execute(
                "DELETE FROM blobs WHERE digest = ANY($1) AND created_ms = $2",
                &[&self.0, &CLAIM_MS],
            )
            .await?;
        }
        Ok(())
    }
}

/// Takes the digest lock on each of `digests` (module doc), in digest order: locks the
/// rows that exist and, when `claim` is set, claims those that do not. Returns the claims
/// (empty unless `claim`).
pub(super) async fn lock_digests(
    tx: &Transaction<'_>,
    digests: &[String],
    mode: DigestLock,
    claim: bool,
) -> Result<Claims> {
    let mut want: Vec<String> = digests.to_vec();
    want.sort();
    want.dedup();
    let lock = match mode {
        DigestLock::Share => "FOR SHARE",
        DigestLock::Update => "FOR UPDATE",
    };
    let select = format!("SELECT digest FROM blobs WHERE digest = ANY($1) ORDER BY digest {lock}");
    let mut claims = Claims::default();
    for _ in 0..LOCK_ROUNDS {
        let locked: Vec<String> = tx
            .query(&select, &[&want])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if !claim {
            return Ok(claims);
        }
        let missing: Vec<String> = want
            .iter()
            .filter(|d| !locked.contains(d) && !claims.contains(d))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(claims);
        }
        // Waits for any transaction inserting or claiming the same digest; a row committed
        // meanwhile conflicts and is locked by the next round instead.
        let claimed: Vec<String> = tx
            .query(
                "INSERT INTO blobs (digest, size, created_ms)
                 SELECT d, 0, $2 FROM unnest($1::text[]) AS d ORDER BY d
                 ON CONFLICT (digest) DO NOTHING RETURNING digest",
                &[&missing, &CLAIM_MS],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let done = claimed.len() == missing.len();
        claims.0.extend(claimed);
        if done {
            return Ok(claims);
        }
    }
    Err(MetaError::Database(
        "the digest lock kept changing hands; try again".into(),
    ))
}

/// `BlobBeingDeleted` when a deletion of `digest` is in progress (read after the lock).
pub(super) async fn refuse_if_being_deleted<C: GenericClient>(
    c: &C,
    digest: &Digest,
) -> Result<()> {
    let deleting = c
        .query_opt(
            "SELECT 1 FROM blob_deletions WHERE digest = $1",
            &[&digest.to_string()],
        )
        .await?
        .is_some();
    if deleting {
        return Err(MetaError::BlobBeingDeleted(digest.clone()));
    }
    Ok(())
}

pub(super) fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e: berth_types::DigestError| MetaError::Database(Box::new(e)))
}

fn texts(digests: &[Digest]) -> Vec<String> {
    digests.iter().map(|d| d.to_string()).collect()
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn size_of(v: i64) -> u64 {
    v.max(0) as u64
}

/// Which of `digests` match `predicate` (SQL over the column `d`), in their order.
async fn filter_digests<C: GenericClient>(
    c: &C,
    digests: &[Digest],
    predicate: &str,
) -> Result<Vec<Digest>> {
    let sql = format!(
        "SELECT i FROM unnest($1::text[]) WITH ORDINALITY AS t(d, i) WHERE {predicate} ORDER BY i"
    );
    let rows = c.query(&sql, &[&texts(digests)]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let i: i64 = r.try_get(0)?;
        if let Some(d) = usize::try_from(i - 1).ok().and_then(|i| digests.get(i)) {
            out.push(d.clone());
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl GcStore for PgMetaStore {
    async fn pin_blob(&self, holder: &str, digest: &Digest, now_ms: i64) -> Result<()> {
        let d = digest.to_string();
        let (d, digests) = (&d, std::slice::from_ref(&d));
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let claims = lock_digests(&tx, digests, DigestLock::Share, true).await?;
                refuse_if_being_deleted(&*tx, digest).await?;
                tx.execute(
                    "INSERT INTO blob_pins (holder, digest, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (holder) DO UPDATE
                         SET digest = excluded.digest, created_ms = excluded.created_ms",
                    &[&holder, d, &now_ms],
                )
                .await?;
                if !claims.contains(d) {
                    // A pinned blob is referenced: its grace period starts again when unpinned.
                    tx.execute(
                        "UPDATE blobs SET orphaned_ms = NULL
                         WHERE digest = $1 AND orphaned_ms IS NOT NULL",
                        &[d],
                    )
                    .await?;
                }
                claims.release(&tx).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn unpin_blob(&self, holder: &str) -> Result<()> {
        let client = self.db.client().await?;
        client
            .execute("DELETE FROM blob_pins WHERE holder = $1", &[&holder])
            .await?;
        Ok(())
    }

    async fn gc_expire_pins(&self, before_ms: i64) -> Result<usize> {
        let client = self.db.client().await?;
        let n = client
            .execute("DELETE FROM blob_pins WHERE created_ms < $1", &[&before_ms])
            .await?;
        Ok(n as usize)
    }

    async fn gc_sweep_links(&self, cutoff_ms: i64, now_ms: i64, limit_n: usize) -> Result<usize> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let found = tx
                    .query(
                        &format!(
                            "SELECT l.repo_id, l.digest FROM blob_links l
                             WHERE l.orphaned_ms IS NOT NULL AND l.orphaned_ms <= $1
                               AND NOT {LINK_REFERENCED}
                             ORDER BY l.digest, l.repo_id LIMIT $2"
                        ),
                        &[&cutoff_ms, &limit(limit_n)],
                    )
                    .await?;
                if found.is_empty() {
                    return Ok(0);
                }
                let mut repo_ids: Vec<i64> = Vec::with_capacity(found.len());
                let mut digests: Vec<String> = Vec::with_capacity(found.len());
                for r in &found {
                    repo_ids.push(r.try_get(0)?);
                    digests.push(r.try_get(1)?);
                }
                // Deciders lock the blob rows, so no manifest push that relies on one of
                // these links is between its check and its commit (module doc).
                let _ = lock_digests(&tx, &digests, DigestLock::Update, false).await?;
                // Re-checked after the lock; the mark condition too, so a link seen (and
                // unmarked) meanwhile stays.
                let gone: Vec<String> = tx
                    .query(
                        &format!(
                            "DELETE FROM blob_links l
                             USING unnest($1::bigint[], $2::text[]) AS k(repo_id, digest)
                             WHERE l.repo_id = k.repo_id AND l.digest = k.digest
                               AND l.orphaned_ms IS NOT NULL AND l.orphaned_ms <= $3
                               AND NOT {LINK_REFERENCED}
                             RETURNING l.digest"
                        ),
                        &[&repo_ids, &digests, &cutoff_ms],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                // A blob left unreferenced by that is marked (its grace period starts now).
                tx.execute(
                    &format!(
                        "UPDATE blobs AS b SET orphaned_ms = $2
                         WHERE b.digest = ANY($1) AND b.orphaned_ms IS NULL AND NOT {BLOB_HELD}"
                    ),
                    &[&gone, &now_ms],
                )
                .await?;
                tx.commit().await?;
                Ok(gone.len())
            })
            .await
    }

    async fn gc_count_sweepable_links(&self, now_ms: i64, cutoff_ms: i64) -> Result<usize> {
        let client = self.db.client().await?;
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT COUNT(*) FROM blob_links l
                     WHERE COALESCE(l.orphaned_ms, $1) <= $2 AND NOT {LINK_REFERENCED}"
                ),
                &[&now_ms, &cutoff_ms],
            )
            .await?
            .try_get(0)?;
        Ok(size_of(n) as usize)
    }

    async fn gc_mark(
        &self,
        after: Option<&Digest>,
        limit_n: usize,
        now_ms: i64,
    ) -> Result<GcMarkPage> {
        let lo = after.map(|d| d.to_string()).unwrap_or_default();
        let lo = &lo;
        // One statement per page: the page's bounds, then every link and blob in it whose
        // mark is wrong is marked (with `now_ms`) or cleared. Marking a link does not change
        // whether its blob is held (a marked link still holds it), so both updates may read
        // the same snapshot.
        let sql = format!(
            "WITH page AS (SELECT digest FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2),
                  bounds AS (SELECT MAX(digest) AS hi FROM page),
                  links AS (
                    UPDATE blob_links AS l
                       SET orphaned_ms = CASE WHEN l.orphaned_ms IS NULL THEN $3::bigint END
                      FROM bounds
                     WHERE l.digest > $1 AND l.digest <= bounds.hi
                       AND (l.orphaned_ms IS NULL) = (NOT {LINK_REFERENCED})
                    RETURNING l.orphaned_ms IS NOT NULL AS marked),
                  blobs_changed AS (
                    UPDATE blobs AS b
                       SET orphaned_ms = CASE WHEN b.orphaned_ms IS NULL THEN $3::bigint END
                      FROM bounds
                     WHERE b.digest > $1 AND b.digest <= bounds.hi
                       AND (b.orphaned_ms IS NULL) = (NOT {BLOB_HELD})
                    RETURNING b.orphaned_ms IS NOT NULL AS marked)
             SELECT (SELECT hi FROM bounds),
                    (SELECT COUNT(*) FROM links WHERE marked),
                    (SELECT COUNT(*) FROM blobs_changed WHERE marked)"
        );
        let sql = &sql;
        let row = self
            .db
            .retry(|| async move {
                let client = self.db.client().await?;
                Ok::<_, MetaError>(
                    client
                        .query_one(sql, &[lo, &limit(limit_n), &now_ms])
                        .await?,
                )
            })
            .await?;
        let hi: Option<String> = row.try_get(0)?;
        let Some(hi) = hi else {
            return Ok(GcMarkPage::default());
        };
        let (links, blobs): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
        Ok(GcMarkPage {
            next: Some(parse_digest(&hi)?),
            links_marked: size_of(links) as usize,
            blobs_marked: size_of(blobs) as usize,
        })
    }

    async fn gc_pending(&self) -> Result<(u64, u64)> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(b.size), 0)::bigint FROM blobs b
                 WHERE b.digest IN (
                     SELECT digest FROM blobs WHERE orphaned_ms IS NOT NULL
                     UNION
                     SELECT digest FROM blob_links WHERE orphaned_ms IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM blob_links l
                                   WHERE l.digest = b.digest AND l.orphaned_ms IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                                   WHERE r.target = b.digest AND r.kind = 0)
                   AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)",
                &[],
            )
            .await?;
        let (n, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok((size_of(n), size_of(bytes)))
    }

    async fn gc_candidates(
        &self,
        now_ms: i64,
        cutoff_ms: i64,
        after: Option<&Digest>,
        limit_n: usize,
    ) -> Result<Vec<GcBlob>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        let client = self.db.client().await?;
        // With a cut-off before now only marked rows qualify: that condition lets the
        // planner search the partial index `blobs_orphaned` instead of walking every blob.
        let own_mark = if now_ms > cutoff_ms {
            "b.orphaned_ms IS NOT NULL AND b.orphaned_ms <= $2"
        } else {
            "COALESCE(b.orphaned_ms, $1) <= $2"
        };
        let rows = client
            .query(
                &format!(
                    "SELECT b.digest, b.size, b.orphaned_ms FROM blobs b
                     WHERE {own_mark} AND b.digest > $3
                       AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)
                       AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                                       WHERE r.target = b.digest AND r.kind = 0)
                       AND NOT EXISTS (SELECT 1 FROM blob_links l
                                       WHERE l.digest = b.digest
                                         AND COALESCE(l.orphaned_ms, $1) > $2)
                     ORDER BY b.digest LIMIT $4"
                ),
                &[&now_ms, &cutoff_ms, &after, &limit(limit_n)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GcBlob {
                    digest: parse_digest(r.try_get(0)?)?,
                    size: size_of(r.try_get(1)?),
                    orphaned_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn gc_begin_delete(
        &self,
        digests: &[Digest],
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<GcBlob>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let all = &texts(digests);
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let _ = lock_digests(&tx, all, DigestLock::Update, false).await?;
                // The re-check, in a statement after the lock: it sees every reference
                // committed by a transaction that held the lock before.
                let rows = tx
                    .query(
                        "SELECT b.digest, b.size, b.orphaned_ms,
                            EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest),
                            EXISTS (SELECT 1 FROM manifest_refs r
                                    WHERE r.target = b.digest AND r.kind = 0),
                            EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)
                         FROM blobs b WHERE b.digest = ANY($1)",
                        &[all],
                    )
                    .await?;
                let mut holds = std::collections::HashMap::new();
                for r in &rows {
                    let digest: String = r.try_get(0)?;
                    let size: i64 = r.try_get(1)?;
                    let h = BlobHolds {
                        orphaned_ms: r.try_get(2)?,
                        linked: r.try_get(3)?,
                        referenced: r.try_get(4)?,
                        pinned: r.try_get(5)?,
                    };
                    holds.insert(digest, (size, h));
                }
                // Decided in Rust (the rule every backend shares), in the caller's order.
                let mut begun = Vec::new();
                let mut chosen: Vec<String> = Vec::new();
                for d in digests {
                    let text = d.to_string();
                    let Some((size, h)) = holds.remove(&text) else {
                        continue;
                    };
                    if !blob_deletable(&h, cutoff_ms) {
                        continue;
                    }
                    begun.push(GcBlob {
                        digest: d.clone(),
                        size: size_of(size),
                        orphaned_ms: h.orphaned_ms,
                    });
                    chosen.push(text);
                }
                if !chosen.is_empty() {
                    tx.execute("DELETE FROM blobs WHERE digest = ANY($1)", &[&chosen])
                        .await?;
                    tx.execute(
                        "INSERT INTO blob_deletions (digest, started_ms)
                         SELECT d, $2 FROM unnest($1::text[]) AS d
                         ON CONFLICT (digest) DO NOTHING",
                        &[&chosen, &now_ms],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(begun)
            })
            .await
    }

    async fn gc_unrecorded(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let client = self.db.client().await?;
        filter_digests(
            &**client,
            digests,
            "NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = t.d)
             AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = t.d)",
        )
        .await
    }

    async fn gc_begin_delete_unrecorded(
        &self,
        digests: &[Digest],
        now_ms: i64,
    ) -> Result<Vec<Digest>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let all = &texts(digests);
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                // Only digests with no row can be claimed: a claim is this decider's lock
                // (module doc). A digest with a row is recorded, so not ours to delete.
                let claims = lock_digests(&tx, all, DigestLock::Share, true).await?;
                let claimed: Vec<Digest> = digests
                    .iter()
                    .filter(|d| claims.contains(&d.to_string()))
                    .cloned()
                    .collect();
                let mut seen = std::collections::HashSet::new();
                let claimed: Vec<Digest> = claimed
                    .into_iter()
                    .filter(|d| seen.insert(d.clone()))
                    .collect();
                let begun = filter_digests(
                    &*tx,
                    &claimed,
                    "NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = t.d)
                     AND NOT EXISTS (SELECT 1 FROM blob_deletions x WHERE x.digest = t.d)",
                )
                .await?;
                tx.execute(
                    "INSERT INTO blob_deletions (digest, started_ms)
                     SELECT d, $2 FROM unnest($1::text[]) AS d",
                    &[&texts(&begun), &now_ms],
                )
                .await?;
                claims.release(&tx).await?;
                tx.commit().await?;
                Ok(begun)
            })
            .await
    }

    async fn gc_finish_deletions(&self, digests: &[Digest]) -> Result<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "DELETE FROM blob_deletions WHERE digest = ANY($1)",
                &[&texts(digests)],
            )
            .await?;
        Ok(())
    }

    async fn gc_deletions_in_progress(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let client = self.db.client().await?;
        filter_digests(
            &**client,
            digests,
            "EXISTS (SELECT 1 FROM blob_deletions x WHERE x.digest = t.d)",
        )
        .await
    }

    async fn gc_unfinished_deletions(&self, before_ms: i64, limit_n: usize) -> Result<Vec<Digest>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT digest FROM blob_deletions WHERE started_ms <= $1
                 ORDER BY digest LIMIT $2",
                &[&before_ms, &limit(limit_n)],
            )
            .await?;
        rows.iter().map(|r| parse_digest(r.try_get(0)?)).collect()
    }
}

//! [`GcStore`] for SQLite. Every deleting method is one `BEGIN IMMEDIATE` transaction on
//! the writer connection: it holds SQLite's write lock (also against other processes,
//! such as `berth gc` beside `berth serve`) while it re-checks each row and deletes its
//! bytes, so no referencing write can interleave (see [`crate::gc`]).

use rusqlite::{params, OptionalExtension};

use berth_types::Digest;

use super::queries::immediate;
use super::SqliteMetaStore;
use crate::gc::{GcBlob, GcMarkPage, GcStore};
use crate::{MetaError, Result};

/// A manifest of the link's own repository names the link's blob (config or layer).
const LINK_REFERENCED: &str = "EXISTS (SELECT 1 FROM manifest_refs r
     WHERE r.repo_id = l.repo_id AND r.target = l.digest AND r.kind = 0)";

/// Something holds blob row `b`: a link, a manifest reference or a commit's pin.
const BLOB_HELD: &str = "(EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest)
     OR EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest AND r.kind = 0)
     OR EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest))";

/// What holds blob `?1` now (see [`crate::rules::BlobHolds`]): its size and mark, and
/// whether a link, a manifest reference or a pin holds it; `None` when it has no row.
const BLOB_HOLDS: &str = "SELECT b.size, b.orphaned_ms,
       EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = b.digest),
       EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest AND r.kind = 0),
       EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)
     FROM blobs b WHERE b.digest = ?1";

/// A row the mark walk found with the wrong mark: a link (`repo_id`, `digest`) or a blob.
struct MarkChange {
    blob: bool,
    repo_id: i64,
    digest: String,
}

fn parse_digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e: berth_types::DigestError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[async_trait::async_trait]
impl GcStore for SqliteMetaStore {
    async fn pin_blob(&self, holder: &str, digest: &Digest, now_ms: i64) -> Result<()> {
        let (holder, d) = (holder.to_string(), digest.to_string());
        // Not fsynced: a pin only guards a commit in progress in a running process.
        let digest = digest.clone();
        self.write_volatile(move |c| {
            let tx = immediate(c)?;
            refuse_if_being_deleted(&tx, &digest)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO blob_pins (holder, digest, created_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![holder, d, now_ms])?;
            // A pinned blob is referenced: its grace period starts again when unpinned.
            tx.prepare_cached(
                "UPDATE blobs SET orphaned_ms = NULL WHERE digest = ?1 AND orphaned_ms IS NOT NULL",
            )?
            .execute([&d])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn unpin_blob(&self, holder: &str) -> Result<()> {
        let holder = holder.to_string();
        self.write_volatile(move |c| {
            c.prepare_cached("DELETE FROM blob_pins WHERE holder = ?1")?
                .execute([holder])?;
            Ok(())
        })
        .await
    }

    async fn gc_expire_pins(&self, before_ms: i64) -> Result<usize> {
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM blob_pins WHERE created_ms < ?1")?
                    .execute([before_ms])?,
            )
        })
        .await
    }

    async fn gc_sweep_links(&self, cutoff_ms: i64, now_ms: i64, limit: usize) -> Result<usize> {
        // Not fsynced (the next ordinary commit makes it durable): a sweep lost to a power
        // loss leaves links a later pass sweeps again, and nothing is deleted on its word
        // alone (blob deletion re-checks every reference in its own, fsynced, transaction).
        self.write_volatile(move |c| {
            let tx = immediate(c)?;
            let links: Vec<(i64, String)> = tx
                .prepare_cached(&format!(
                    "SELECT l.repo_id, l.digest FROM blob_links l
                     WHERE l.orphaned_ms IS NOT NULL AND l.orphaned_ms <= ?1
                       AND NOT {LINK_REFERENCED}
                     LIMIT ?2"
                ))?
                .query_map(params![cutoff_ms, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            {
                let mut delete =
                    tx.prepare_cached("DELETE FROM blob_links WHERE repo_id = ?1 AND digest = ?2")?;
                let mut mark = tx.prepare_cached(&format!(
                    "UPDATE blobs AS b SET orphaned_ms = ?2
                     WHERE b.digest = ?1 AND b.orphaned_ms IS NULL AND NOT {BLOB_HELD}"
                ))?;
                for (repo_id, digest) in &links {
                    delete.execute(params![repo_id, digest])?;
                    mark.execute(params![digest, now_ms])?;
                }
            }
            tx.commit()?;
            Ok(links.len())
        })
        .await
    }

    async fn gc_count_sweepable_links(&self, now_ms: i64, cutoff_ms: i64) -> Result<usize> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM blob_links l
                     WHERE COALESCE(l.orphaned_ms, ?1) <= ?2 AND NOT {LINK_REFERENCED}"
                ))?
                .query_row(params![now_ms, cutoff_ms], |r| r.get(0))?;
            Ok(n as usize)
        })
        .await
    }

    async fn gc_mark(
        &self,
        after: Option<&Digest>,
        limit: usize,
        now_ms: i64,
    ) -> Result<GcMarkPage> {
        let lo = after.map(|d| d.to_string()).unwrap_or_default();
        // Look first, on a reader: list exactly the rows whose mark must be set or cleared.
        // In a steady store almost no page has one, and such a page never takes the writer
        // that pushes commit through; a page that does holds it only to re-check and update
        // those rows by key.
        let (hi, changes) = self
            .read(move |c| {
                let hi: Option<String> = c
                    .prepare_cached(
                        "SELECT MAX(digest) FROM (SELECT digest FROM blobs WHERE digest > ?1
                         ORDER BY digest LIMIT ?2)",
                    )?
                    .query_row(params![lo, limit as i64], |r| r.get(0))?;
                let Some(hi) = hi else {
                    return Ok::<_, MetaError>((None, Vec::new()));
                };
                let changes: Vec<MarkChange> = c
                    .prepare_cached(&format!(
                        "SELECT 0, l.repo_id, l.digest FROM blob_links AS l
                           WHERE l.digest > ?1 AND l.digest <= ?2
                             AND (l.orphaned_ms IS NULL) = (NOT {LINK_REFERENCED})
                         UNION ALL
                         SELECT 1, 0, b.digest FROM blobs AS b
                           WHERE b.digest > ?1 AND b.digest <= ?2
                             AND (b.orphaned_ms IS NULL) = (NOT {BLOB_HELD})"
                    ))?
                    .query_map(params![lo, hi], |r| {
                        Ok(MarkChange {
                            blob: r.get::<_, i64>(0)? == 1,
                            repo_id: r.get(1)?,
                            digest: r.get(2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok((Some(hi), changes))
            })
            .await?;
        let Some(hi) = hi else {
            return Ok(GcMarkPage::default());
        };
        let next = Some(parse_digest(hi)?);
        if changes.is_empty() {
            return Ok(GcMarkPage {
                next,
                links_marked: 0,
                blobs_marked: 0,
            });
        }
        // Not fsynced, as a sweep: a lost mark is set again by a later pass (restarting that
        // row's grace period, the safe direction); a lost unmark is harmless, since deletion
        // re-checks every reference. Each row is re-checked here, under the write lock.
        let (links_marked, blobs_marked) = self
            .write_volatile(move |c| {
                let tx = immediate(c)?;
                let (mut links_marked, mut blobs_marked) = (0, 0);
                {
                    let mut mark_link = tx.prepare_cached(&format!(
                        "UPDATE blob_links AS l SET orphaned_ms = ?3
                         WHERE l.repo_id = ?1 AND l.digest = ?2 AND l.orphaned_ms IS NULL
                           AND NOT {LINK_REFERENCED}"
                    ))?;
                    let mut unmark_link = tx.prepare_cached(&format!(
                        "UPDATE blob_links AS l SET orphaned_ms = NULL
                         WHERE l.repo_id = ?1 AND l.digest = ?2 AND l.orphaned_ms IS NOT NULL
                           AND {LINK_REFERENCED}"
                    ))?;
                    let mut mark_blob = tx.prepare_cached(&format!(
                        "UPDATE blobs AS b SET orphaned_ms = ?2
                         WHERE b.digest = ?1 AND b.orphaned_ms IS NULL AND NOT {BLOB_HELD}"
                    ))?;
                    let mut unmark_blob = tx.prepare_cached(&format!(
                        "UPDATE blobs AS b SET orphaned_ms = NULL
                         WHERE b.digest = ?1 AND b.orphaned_ms IS NOT NULL AND {BLOB_HELD}"
                    ))?;
                    for ch in &changes {
                        if ch.blob {
                            blobs_marked += mark_blob.execute(params![ch.digest, now_ms])?;
                            unmark_blob.execute([&ch.digest])?;
                        } else {
                            links_marked +=
                                mark_link.execute(params![ch.repo_id, ch.digest, now_ms])?;
                            unmark_link.execute(params![ch.repo_id, ch.digest])?;
                        }
                    }
                }
                tx.commit()?;
                Ok::<_, MetaError>((links_marked, blobs_marked))
            })
            .await?;
        Ok(GcMarkPage {
            next,
            links_marked,
            blobs_marked,
        })
    }

    async fn gc_pending(&self) -> Result<(u64, u64)> {
        self.read(move |c| {
            let (n, bytes): (i64, i64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM blobs b
                     WHERE b.digest IN (
                         SELECT digest FROM blobs INDEXED BY blobs_orphaned
                           WHERE orphaned_ms IS NOT NULL
                         UNION
                         SELECT digest FROM blob_links INDEXED BY blob_links_orphaned
                           WHERE orphaned_ms IS NOT NULL)
                       AND NOT EXISTS (SELECT 1 FROM blob_links l
                                       WHERE l.digest = b.digest AND l.orphaned_ms IS NULL)
                       AND NOT EXISTS (SELECT 1 FROM manifest_refs r
                                       WHERE r.target = b.digest AND r.kind = 0)
                       AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok((n.max(0) as u64, bytes.max(0) as u64))
        })
        .await
    }

    async fn gc_candidates(
        &self,
        now_ms: i64,
        cutoff_ms: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<GcBlob>> {
        let after = after.map(|d| d.to_string()).unwrap_or_default();
        self.read(move |c| {
            // With a cut-off before now only marked rows qualify: search those (a partial
            // index) instead of walking every blob.
            let mut st = c.prepare_cached(if now_ms > cutoff_ms {
                "SELECT b.digest, b.size, b.orphaned_ms FROM blobs b INDEXED BY blobs_orphaned
                 WHERE b.orphaned_ms IS NOT NULL AND b.orphaned_ms <= ?2 AND b.digest > ?3
                   AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)
                   AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest AND r.kind = 0)
                   AND NOT EXISTS (SELECT 1 FROM blob_links l
                                   WHERE l.digest = b.digest AND COALESCE(l.orphaned_ms, ?1) > ?2)
                 ORDER BY b.digest LIMIT ?4"
            } else {
                "SELECT b.digest, b.size, b.orphaned_ms FROM blobs b
                 WHERE b.digest > ?3 AND COALESCE(b.orphaned_ms, ?1) <= ?2
                   AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.digest = b.digest)
                   AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest AND r.kind = 0)
                   AND NOT EXISTS (SELECT 1 FROM blob_links l
                                   WHERE l.digest = b.digest AND COALESCE(l.orphaned_ms, ?1) > ?2)
                 ORDER BY b.digest LIMIT ?4"
            })?;
            let rows = st.query_map(params![now_ms, cutoff_ms, after, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (d, size, orphaned_ms) = row?;
                out.push(GcBlob {
                    digest: parse_digest(d)?,
                    size: size.max(0) as u64,
                    orphaned_ms,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn gc_begin_delete(
        &self,
        digests: &[Digest],
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<GcBlob>> {
        let digests = digests.to_vec();
        self.write(move |c| {
            let tx = immediate(c)?;
            let mut begun = Vec::new();
            {
                let mut check = tx.prepare_cached(BLOB_HOLDS)?;
                let mut remove = tx.prepare_cached("DELETE FROM blobs WHERE digest = ?1")?;
                let mut record = tx.prepare_cached(
                    "INSERT OR IGNORE INTO blob_deletions (digest, started_ms) VALUES (?1, ?2)",
                )?;
                for d in digests {
                    let text = d.to_string();
                    let row: Option<(i64, crate::rules::BlobHolds)> = check
                        .query_row([&text], |r| {
                            Ok((
                                r.get(0)?,
                                crate::rules::BlobHolds {
                                    orphaned_ms: r.get(1)?,
                                    linked: r.get(2)?,
                                    referenced: r.get(3)?,
                                    pinned: r.get(4)?,
                                },
                            ))
                        })
                        .optional()?;
                    let Some((size, holds)) = row else {
                        continue;
                    };
                    if !crate::rules::blob_deletable(&holds, cutoff_ms) {
                        continue;
                    }
                    let orphaned_ms = holds.orphaned_ms;
                    remove.execute([&text])?;
                    record.execute(params![text, now_ms])?;
                    begun.push(GcBlob {
                        digest: d,
                        size: size.max(0) as u64,
                        orphaned_ms,
                    });
                }
            }
            tx.commit()?;
            Ok(begun)
        })
        .await
    }

    async fn gc_unrecorded(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let digests = digests.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT NOT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1)
                    AND NOT EXISTS (SELECT 1 FROM blob_pins WHERE digest = ?1)",
            )?;
            let mut out = Vec::new();
            for d in digests {
                if st.query_row([d.to_string()], |r| r.get::<_, bool>(0))? {
                    out.push(d);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn gc_begin_delete_unrecorded(
        &self,
        digests: &[Digest],
        now_ms: i64,
    ) -> Result<Vec<Digest>> {
        let digests = digests.to_vec();
        self.write(move |c| {
            let tx = immediate(c)?;
            let mut begun = Vec::new();
            {
                let mut st = tx.prepare_cached(
                    "SELECT NOT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1)
                        AND NOT EXISTS (SELECT 1 FROM blob_pins WHERE digest = ?1)
                        AND NOT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = ?1)",
                )?;
                let mut record = tx.prepare_cached(
                    "INSERT INTO blob_deletions (digest, started_ms) VALUES (?1, ?2)",
                )?;
                for d in digests {
                    let text = d.to_string();
                    if st.query_row([&text], |r| r.get::<_, bool>(0))? {
                        record.execute(params![text, now_ms])?;
                        begun.push(d);
                    }
                }
            }
            tx.commit()?;
            Ok::<_, MetaError>(begun)
        })
        .await
    }

    async fn gc_finish_deletions(&self, digests: &[Digest]) -> Result<()> {
        let digests = digests.to_vec();
        self.write(move |c| {
            let tx = immediate(c)?;
            {
                let mut st = tx.prepare_cached("DELETE FROM blob_deletions WHERE digest = ?1")?;
                for d in digests {
                    st.execute([d.to_string()])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn gc_deletions_in_progress(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let digests = digests.to_vec();
        self.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = ?1)")?;
            let mut out = Vec::new();
            for d in digests {
                if st.query_row([d.to_string()], |r| r.get::<_, bool>(0))? {
                    out.push(d);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn gc_unfinished_deletions(&self, before_ms: i64, limit: usize) -> Result<Vec<Digest>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT digest FROM blob_deletions WHERE started_ms <= ?1 ORDER BY digest LIMIT ?2",
            )?;
            let rows = st.query_map(params![before_ms, limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(parse_digest(row?)?);
            }
            Ok(out)
        })
        .await
    }
}

/// `BlobBeingDeleted` while garbage collection deletes `digest`'s bytes (see `crate::gc`):
/// checked by every write that would make the blob referenced without a link.
pub(super) fn refuse_if_being_deleted(c: &rusqlite::Connection, digest: &Digest) -> Result<()> {
    let deleting: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = ?1)")?
        .query_row([digest.to_string()], |r| r.get(0))?;
    if deleting {
        return Err(MetaError::BlobBeingDeleted(digest.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queries a pass runs per page stay index searches (no scan of `manifest_refs`).
    #[test]
    fn gc_reference_checks_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        let sql = format!("EXPLAIN QUERY PLAN {BLOB_HOLDS}");
        let plan: Vec<String> = c
            .prepare(&sql)
            .unwrap()
            .query_map(params!["sha256:00"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().all(|l| !l.starts_with("SCAN")), "{plan:?}");
        assert!(
            plan.iter().any(|l| l.contains("manifest_refs_blob")),
            "{plan:?}"
        );
    }
}

#[cfg(test)]
mod scale {
    use std::time::Instant;

    use rusqlite::params;

    use crate::gc::GcStore;
    use crate::sqlite::{SqliteMetaStore, SqliteOptions};

    /// A pass's store work over 100,000 blobs (half of them unreferenced): the mark walk
    /// in pages, the candidate scan, and deletion, each page a short transaction.
    #[tokio::test]
    async fn a_pass_over_a_hundred_thousand_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let store = SqliteMetaStore::open_with(&path, SqliteOptions { fsync: false }).unwrap();
        store
            .write(|c| {
                let tx = super::immediate(c)?;
                tx.execute("INSERT INTO repositories (id, name, created_ms) VALUES (1, '111122223333/big', 0)", [])?;
                tx.execute(
                    "INSERT INTO manifests (repo_id, digest, media_type, size, body, pushed_ms)
                     VALUES (1, 'sha256:m', 'm', 1, x'00', 0)",
                    [],
                )?;
                for i in 0..100_000u32 {
                    let d = berth_types::Digest::sha256_of(&i.to_le_bytes()).to_string();
                    tx.prepare_cached("INSERT INTO blobs (digest, size, created_ms) VALUES (?1, 10, 0)")?
                        .execute([&d])?;
                    if i % 2 == 0 {
                        tx.prepare_cached("INSERT INTO blob_links (repo_id, digest, created_ms) VALUES (1, ?1, 0)")?
                            .execute([&d])?;
                        tx.prepare_cached(
                            "INSERT INTO manifest_refs (repo_id, manifest, kind, target) VALUES (1, 'sha256:m', 0, ?1)",
                        )?
                        .execute(params![d])?;
                    }
                }
                tx.commit()?;
                Ok::<_, crate::MetaError>(())
            })
            .await
            .unwrap();
        let start = Instant::now();
        let (mut after, mut marked, mut slowest) = (None, 0, std::time::Duration::ZERO);
        loop {
            let t = Instant::now();
            let page = store.gc_mark(after.as_ref(), 1000, 5).await.unwrap();
            slowest = slowest.max(t.elapsed());
            marked += page.blobs_marked;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mark = start.elapsed();
        let start = Instant::now();
        let (mut after, mut found) = (None, Vec::new());
        loop {
            let page = store
                .gc_candidates(10, 5, after.as_ref(), 1000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.digest.clone());
            found.extend(page.into_iter().map(|b| b.digest));
        }
        let scan = start.elapsed();
        let start = Instant::now();
        let mut deleted = 0;
        for chunk in found.chunks(64) {
            let t = Instant::now();
            let begun = store.gc_begin_delete(chunk, 5, 10).await.unwrap();
            deleted += begun.len();
            let digests: Vec<_> = begun.into_iter().map(|b| b.digest).collect();
            store.gc_finish_deletions(&digests).await.unwrap();
            slowest = slowest.max(t.elapsed());
        }
        let delete = start.elapsed();
        eprintln!(
            "100,000 blobs: mark {mark:?}, candidates {scan:?}, delete {deleted} in {delete:?}; \
             slowest write transaction {slowest:?}"
        );
        assert_eq!((marked, found.len(), deleted), (50_000, 50_000, 50_000));
        // Writers (pushes) wait for at most one of these transactions; keep them short.
        assert!(
            slowest < std::time::Duration::from_millis(500),
            "{slowest:?}"
        );
        assert!(mark + scan + delete < std::time::Duration::from_secs(60));
    }
}

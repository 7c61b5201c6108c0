//! Online garbage collection: deletes blobs nothing references any more, after a grace
//! period, while pushes and pulls go on.
//!
//! One pass ([`GarbageCollector::run`]):
//! 1. expires commit pins older than [`PIN_LIFETIME`] (left by a process that died), and
//!    finishes deletions begun more than [`DELETION_LIFETIME`] ago and never finished
//!    (the same): deletes their bytes again and drops their records;
//! 2. walks every blob row, marking unreferenced links and blobs with now and unmarking
//!    those referenced again (pages of 1,000 blobs, one short transaction each);
//! 3. deletes links that no manifest of their repository has used since before the
//!    cut-off (now − grace), as an image's deletion leaves them, marking the blobs they
//!    leave unlinked;
//! 4. deletes blobs marked at or before the cut-off: one store transaction re-checks them,
//!    removes their rows and records the deletions ([`berth_meta::GcStore::gc_begin_delete`]);
//!    then their bytes go, outside any transaction (network I/O on an object store), and a
//!    second transaction drops the records. While recorded, pins and commits of those
//!    digests are refused (a commit waits), so no commit relies on bytes being deleted;
//! 5. deletes blob files no row records (a crash between moving an upload into place and
//!    recording it) once they are older than the cut-off; uploads in progress live
//!    elsewhere (`uploads/`) and are never listed. This step lists every blob file, and
//!    only a process that died mid-commit leaves such files, so a collector that runs
//!    passes all day (`berth serve`) does it on its first pass and then at most every
//!    [`GcOptions::file_scan_every`].
//!
//! An image's unshared bytes are therefore freed about two grace periods (plus up to two
//! intervals) after its deletion: the link waits one grace, then the blob another; a
//! repository's after one grace (plus up to two intervals), as its links go with it.
//! A dry run changes nothing and reports what a run with the same grace would free now.
//! Why no race can delete a blob a push is about to reference: docs/ARCHITECTURE.md,
//! "Garbage collection".

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use berth_blobstore::BlobStore;
use berth_meta::gc::GcBlob;
use berth_meta::GcStore;
use berth_types::Digest;

use crate::error::Result;
use crate::{now_ms, Registry};

/// Rows per page of the mark walk, the candidate scan and the file listing.
const PAGE: usize = 1000;
/// Blobs whose deletion one transaction begins (their bytes then go, then one transaction
/// finishes them; a commit of one of these digests waits for the whole batch).
const DELETE_BATCH: usize = 16;
/// Links deleted per write transaction of the sweep (a push's commit waits for it).
const SWEEP_BATCH: usize = 200;
/// A commit holds its pin for milliseconds; one an hour old belongs to a dead process.
pub const PIN_LIFETIME: Duration = Duration::from_secs(3600);
/// A deletion's bytes go within seconds of its record; one recorded this long ago belongs
/// to a process that died between the two (until a pass finishes it, commits of that digest
/// are refused).
pub const DELETION_LIFETIME: Duration = Duration::from_secs(300);

/// How a pass runs.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// How long a blob must have been unreferenced before it is deleted.
    pub grace: Duration,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// The share of wall time a pass may spend working (0 < duty <= 1): after each page
    /// it rests so long that its work stays within that share, leaving the machine to
    /// the requests it serves. `None`: as fast as it can (`berth gc` by hand).
    pub duty: Option<f64>,
    /// Step 5 (the listing of every blob file) at most this often per collector, the
    /// first pass always; `None`: every pass.
    pub file_scan_every: Option<Duration>,
}

/// How often `berth serve`'s collector lists every blob file for ones no row records.
pub const FILE_SCAN_EVERY: Duration = Duration::from_secs(3600);

/// Rests between a pass's pages to keep its work within [`GcOptions::duty`].
struct Pacer {
    duty: Option<f64>,
    since: std::time::Instant,
}

impl Pacer {
    fn new(duty: Option<f64>) -> Self {
        Pacer {
            duty: duty.filter(|d| *d > 0.0 && *d < 1.0),
            since: std::time::Instant::now(),
        }
    }

    /// Call after each page of work.
    async fn rest(&mut self) {
        if let Some(duty) = self.duty {
            let worked = self.since.elapsed();
            tokio::time::sleep(worked.mul_f64((1.0 - duty) / duty)).await;
        }
        self.since = std::time::Instant::now();
    }
}

/// What a pass freed (or, in a dry run, would free).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_secs: u64,
    /// Blobs (rows and bytes) deleted, or deletable now in a dry run.
    pub blobs: u64,
    pub bytes: u64,
    /// Blob files no row records, older than the grace period: deleted (or deletable).
    pub unrecorded_files: u64,
    pub unrecorded_bytes: u64,
    /// Links no manifest uses, removed (or removable) by this pass.
    pub links: u64,
    /// Blobs unreferenced but still within the grace period (or not yet seen by a pass),
    /// left for a later pass.
    pub pending_blobs: u64,
    pub pending_bytes: u64,
    /// Expired commit pins removed.
    pub pins_expired: u64,
    /// Deletions a process that died left unfinished, finished by this pass.
    pub deletions_finished: u64,
    /// Whether this pass listed the blob files (step 5; see [`GcOptions::file_scan_every`]).
    pub files_scanned: bool,
    pub elapsed_ms: u64,
}

impl GcReport {
    /// Everything the pass freed (or would free): recorded blobs plus unrecorded files.
    pub fn freed_bytes(&self) -> u64 {
        self.bytes + self.unrecorded_bytes
    }
    pub fn freed_blobs(&self) -> u64 {
        self.blobs + self.unrecorded_files
    }
}

/// Runs passes over a meta store and a blob store. Cheap to clone.
#[derive(Clone)]
pub struct GarbageCollector {
    meta: Arc<dyn GcStore>,
    blobs: Arc<dyn BlobStore>,
    /// One pass at a time per collector (a manual run waits for the background one);
    /// holds when this collector last listed the blob files.
    running: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Registry {
    /// A collector over this registry's stores.
    pub fn garbage_collector(&self) -> GarbageCollector {
        GarbageCollector::new(self.inner.meta.clone(), self.inner.blobs.clone())
    }
}

fn sum(blobs: &[GcBlob]) -> (u64, u64) {
    (blobs.len() as u64, blobs.iter().map(|b| b.size).sum())
}

impl GarbageCollector {
    pub fn new(meta: Arc<dyn GcStore>, blobs: Arc<dyn BlobStore>) -> Self {
        GarbageCollector {
            meta,
            blobs,
            running: Arc::default(),
        }
    }

    /// Deletes the bytes of deletions begun by [`berth_meta::GcStore::gc_begin_delete`] (or
    /// its unrecorded twin), outside any store transaction, then finishes them all. Returns
    /// those whose bytes are gone; a failed deletion is finished too (its bytes are then
    /// merely unrecorded, and a later file scan removes them).
    async fn delete_begun(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut gone = Vec::with_capacity(digests.len());
        for digest in digests {
            match self.blobs.delete(digest).await {
                Ok(()) => gone.push(digest.clone()),
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "could not delete an unreferenced blob's bytes")
                }
            }
        }
        self.meta.gc_finish_deletions(digests).await?;
        Ok(gone)
    }

    /// Deletions begun at or before `before_ms` that a process dying left unfinished.
    async fn finish_abandoned(&self, before_ms: i64) -> Result<u64> {
        let mut finished = 0;
        loop {
            let page = self.meta.gc_unfinished_deletions(before_ms, PAGE).await?;
            if page.is_empty() {
                return Ok(finished);
            }
            self.delete_begun(&page).await?;
            finished += page.len() as u64;
        }
    }

    /// One pass; see the module documentation.
    pub async fn run(&self, options: GcOptions) -> Result<GcReport> {
        let mut last_file_scan = self.running.lock().await;
        let started = Instant::now();
        let now = now_ms();
        let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(grace_ms);
        let mut report = GcReport {
            dry_run: options.dry_run,
            grace_secs: options.grace.as_secs(),
            ..GcReport::default()
        };
        let meta = self.meta.as_ref();
        let mut pacer = Pacer::new(options.duty);
        let phase_done = |phase: &str| {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(phase, elapsed_ms, "garbage collection phase done");
        };

        if options.dry_run {
            report.links = meta.gc_count_sweepable_links(now, cutoff).await? as u64;
            (report.blobs, report.bytes) = self.count(now, cutoff, &mut pacer).await?;
        } else {
            let pin_cutoff = now.saturating_sub(PIN_LIFETIME.as_millis() as i64);
            report.pins_expired = meta.gc_expire_pins(pin_cutoff).await? as u64;
            let deletion_cutoff = now.saturating_sub(DELETION_LIFETIME.as_millis() as i64);
            report.deletions_finished = self.finish_abandoned(deletion_cutoff).await?;
            // Mark first, so that with no grace a link unused now goes in this pass, and
            // its blob with it (the sweep marks the blobs it leaves unlinked).
            let mut after = None;
            loop {
                let page = meta.gc_mark(after.as_ref(), PAGE, now).await?;
                pacer.rest().await;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            phase_done("mark walk");
            loop {
                let n = meta.gc_sweep_links(cutoff, now, SWEEP_BATCH).await?;
                pacer.rest().await;
                report.links += n as u64;
                if n < SWEEP_BATCH {
                    break;
                }
            }
            phase_done("link sweep");
            let mut after = None::<Digest>;
            loop {
                let page = meta
                    .gc_candidates(now, cutoff, after.as_ref(), PAGE)
                    .await?;
                pacer.rest().await;
                let Some(last) = page.last() else { break };
                after = Some(last.digest.clone());
                for chunk in page.chunks(DELETE_BATCH) {
                    let digests: Vec<Digest> = chunk.iter().map(|b| b.digest.clone()).collect();
                    let begun = meta.gc_begin_delete(&digests, cutoff, now_ms()).await?;
                    let digests: Vec<Digest> = begun.iter().map(|b| b.digest.clone()).collect();
                    let deleted = self.delete_begun(&digests).await?;
                    pacer.rest().await;
                    let gone: Vec<GcBlob> = begun
                        .into_iter()
                        .filter(|b| deleted.contains(&b.digest))
                        .collect();
                    let (n, bytes) = sum(&gone);
                    report.blobs += n;
                    report.bytes += bytes;
                }
            }
        }

        phase_done("deletion");
        // Everything unreferenced that is left (a dry run: minus what it would free).
        if options.dry_run {
            let (all, all_bytes) = self.count(now, i64::MAX, &mut pacer).await?;
            report.pending_blobs = all.saturating_sub(report.blobs);
            report.pending_bytes = all_bytes.saturating_sub(report.bytes);
        } else {
            // The mark walk above marked every blob unreferenced at the time.
            (report.pending_blobs, report.pending_bytes) = meta.gc_pending().await?;
        }

        phase_done("count");
        let scan_due = match (options.file_scan_every, *last_file_scan) {
            (Some(every), Some(last)) => last.elapsed() >= every,
            _ => true,
        };
        if scan_due {
            (report.unrecorded_files, report.unrecorded_bytes) =
                self.unrecorded(cutoff, options.dry_run, &mut pacer).await?;
            report.files_scanned = true;
            *last_file_scan = Some(Instant::now());
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Count and bytes of the blobs deletable at `cutoff` (see `GcStore::gc_candidates`).
    async fn count(&self, now: i64, cutoff: i64, pacer: &mut Pacer) -> Result<(u64, u64)> {
        let (mut count, mut bytes, mut after) = (0u64, 0u64, None::<Digest>);
        loop {
            let page = self
                .meta
                .gc_candidates(now, cutoff, after.as_ref(), PAGE)
                .await?;
            pacer.rest().await;
            let Some(last) = page.last() else {
                return Ok((count, bytes));
            };
            after = Some(last.digest.clone());
            let (n, b) = sum(&page);
            count += n;
            bytes += b;
        }
    }

    /// Blob files no row records, last written before `cutoff`: deleted unless `dry_run`.
    async fn unrecorded(
        &self,
        cutoff: i64,
        dry_run: bool,
        pacer: &mut Pacer,
    ) -> Result<(u64, u64)> {
        let (mut count, mut bytes, mut after) = (0u64, 0u64, None::<Digest>);
        loop {
            let page = self.blobs.list_blobs(after.as_ref(), PAGE).await?;
            pacer.rest().await;
            let Some(last) = page.last() else {
                return Ok((count, bytes));
            };
            after = Some(last.digest.clone());
            let old: Vec<Digest> = page
                .iter()
                .filter(|b| b.modified_ms <= cutoff)
                .map(|b| b.digest.clone())
                .collect();
            if old.is_empty() {
                continue;
            }
            let mut found = self.meta.gc_unrecorded(&old).await?;
            if !dry_run && !found.is_empty() {
                let begun = self
                    .meta
                    .gc_begin_delete_unrecorded(&found, now_ms())
                    .await?;
                found = self.delete_begun(&begun).await?;
            }
            for d in found {
                if let Some(info) = page.iter().find(|b| b.digest == d) {
                    count += 1;
                    bytes += info.size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

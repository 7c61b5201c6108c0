//! What online garbage collection needs from the meta store ([`GcStore`]).
//!
//! A blob is *referenced* while a repository links it (`blob_links`), a manifest of any
//! repository names it, or a commit has pinned it ([`GcStore::pin_blob`]). A link is
//! referenced while a manifest of its repository names its blob. Unreferenced rows are
//! marked with the time a pass first found them so (`orphaned_ms`, by [`GcStore::gc_mark`])
//! and deleted once that mark is older than the grace period.
//!
//! The safety argument (docs/ARCHITECTURE.md, "Garbage collection") rests on one rule
//! every backend keeps: **a blob's deletion and anything that makes it referenced are
//! serialized on the blob's digest.** Deleting is three steps, so that no store
//! transaction waits on the blob store (network I/O on S3):
//!
//! 1. [`GcStore::gc_begin_delete`] (or the archive storage class's drop of a standard
//!    copy, [`crate::ArchiveStore`]) re-checks, under that serialization, that the blob is
//!    still unreferenced and its mark still old, removes its row and records a *deletion
//!    in progress* for its digest, in one transaction;
//! 2. the caller deletes the bytes, outside any transaction;
//! 3. [`GcStore::gc_finish_deletions`] removes the deletion record.
//!
//! While a deletion is recorded, [`GcStore::pin_blob`] and `commit_blob` of that digest
//! are refused with [`crate::MetaError::BlobBeingDeleted`] (the caller waits and retries),
//! and nothing else can reference the blob (a mount or a manifest needs a link, and the
//! blob had none). So bytes being deleted are never the bytes a commit relies on. A crash
//! between 1 and 3 leaves the record (and perhaps the bytes): a later pass finds it with
//! [`GcStore::gc_unfinished_deletions`], deletes the bytes again and finishes. A failed
//! byte deletion is finished too: the bytes are then merely unrecorded, and a later
//! pass's file scan removes them.
//!
//! Every referencing write (`commit_blob`, `mount_blob`, `put_manifest`, `pin_blob`) takes
//! the same serialization. SQLite has it for free (one writer, `BEGIN IMMEDIATE`, also
//! across processes); PostgreSQL takes `pg_advisory_xact_lock(hashtext(digest))` in the
//! deciding transaction and in each referencing one (or `SELECT ... FOR UPDATE` on the
//! `blobs` row, inserting a missing row first), so that the re-check sees every committed
//! reference and every referencing write sees the deletion record.

use std::sync::Arc;

use berth_types::Digest;

use crate::Result;

/// Deletes one blob's bytes; blocking (it runs inside the store's transaction). Returns
/// the error text when the bytes could not be deleted (the row then stays). Only the
/// archive storage class's sweep of archive-tier copies still deletes this way
/// ([`crate::ArchiveStore::archive_sweep`]).
pub type BlobDeleter = Arc<dyn Fn(&Digest) -> std::result::Result<(), String> + Send + Sync>;

/// A blob row as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcBlob {
    pub digest: Digest,
    pub size: u64,
    /// When a pass found it unreferenced; `None` if not (yet) marked.
    pub orphaned_ms: Option<i64>,
}

/// What one [`GcStore::gc_mark`] page changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcMarkPage {
    /// The last blob digest of the page, to continue after; `None` when the walk is done.
    pub next: Option<Digest>,
    /// Rows newly marked unreferenced (links, blobs).
    pub links_marked: usize,
    pub blobs_marked: usize,
}

#[async_trait::async_trait]
pub trait GcStore: Send + Sync + 'static {
    /// Protects `digest` from deletion on behalf of `holder` (an upload id) until
    /// `commit_blob` with that upload id, or [`GcStore::unpin_blob`], removes the pin.
    /// Taken before an upload is moved into place (or dropped as a duplicate of an
    /// existing blob), so the bytes that commit will point at cannot vanish meanwhile.
    async fn pin_blob(&self, holder: &str, digest: &Digest, now_ms: i64) -> Result<()>;
    /// Removes `holder`'s pin (a failed commit). Absent pins are not an error.
    async fn unpin_blob(&self, holder: &str) -> Result<()>;
    /// Removes pins older than `before_ms` (left by a process that died mid-commit).
    async fn gc_expire_pins(&self, before_ms: i64) -> Result<usize>;

    /// Deletes up to `limit` links marked before or at `cutoff_ms` that no manifest of
    /// their repository references (re-checked in the deleting transaction), and marks
    /// with `now_ms` each blob left unreferenced by that, in the same transaction. Returns
    /// how many links went.
    async fn gc_sweep_links(&self, cutoff_ms: i64, now_ms: i64, limit: usize) -> Result<usize>;
    /// How many links a sweep would delete now (a dry run): unreferenced ones whose mark,
    /// or `now_ms` when unmarked, is at or before `cutoff_ms`.
    async fn gc_count_sweepable_links(&self, now_ms: i64, cutoff_ms: i64) -> Result<usize>;

    /// Marks (with `now_ms`) unreferenced links and blobs among the next `limit` blobs in
    /// digest order after `after`, and clears marks of rows referenced again. One short
    /// transaction per page, so writers wait at most one page.
    async fn gc_mark(
        &self,
        after: Option<&Digest>,
        limit: usize,
        now_ms: i64,
    ) -> Result<GcMarkPage>;

    /// Count and total size of the blobs nothing holds now but marked links (a pass
    /// found them, or all their links, unreferenced): what waits for its grace period to
    /// end. One search of the marked rows, not a walk of every blob.
    async fn gc_pending(&self) -> Result<(u64, u64)>;

    /// Up to `limit` blobs after `after` (digest order) that are deletable at `cutoff_ms`:
    /// no pin, no manifest references them, their mark (or `now_ms` when unmarked) is at
    /// or before `cutoff_ms`, and every link they still have is itself sweepable by the
    /// same rule. After a sweep and a mark this is "no link and marked long enough ago";
    /// for a dry run it predicts what a run would free.
    async fn gc_candidates(
        &self,
        now_ms: i64,
        cutoff_ms: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<GcBlob>>;

    /// Step 1 of a deletion (module doc): for each blob of `digests` that is still
    /// unreferenced (no link, manifest reference or pin) and marked at or before
    /// `cutoff_ms`, removes its row and records a deletion in progress (at `now_ms`), in one
    /// transaction serialized with every referencing write. Returns those blobs: the
    /// caller deletes their bytes, then calls [`GcStore::gc_finish_deletions`].
    async fn gc_begin_delete(
        &self,
        digests: &[Digest],
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<GcBlob>>;

    /// Which of `digests` have neither a `blobs` row nor a pin: bytes no row records
    /// (left by a crash between moving an upload into place and recording it).
    async fn gc_unrecorded(&self, digests: &[Digest]) -> Result<Vec<Digest>>;
    /// Step 1 for bytes no row records: for each of `digests` that still has neither row,
    /// pin nor deletion in progress, records a deletion in progress (at `now_ms`). Returns
    /// those digests, whose bytes the caller deletes before finishing.
    async fn gc_begin_delete_unrecorded(
        &self,
        digests: &[Digest],
        now_ms: i64,
    ) -> Result<Vec<Digest>>;

    /// Step 3: removes the deletion records of `digests` (absent ones are not an error);
    /// pins and commits of those digests are accepted again.
    async fn gc_finish_deletions(&self, digests: &[Digest]) -> Result<()>;
    /// Which of `digests` have a deletion in progress (a restore waits for them to finish).
    async fn gc_deletions_in_progress(&self, digests: &[Digest]) -> Result<Vec<Digest>>;
    /// Up to `limit` deletions recorded at or before `before_ms` and never finished (the
    /// process deleting them died), in digest order.
    async fn gc_unfinished_deletions(&self, before_ms: i64, limit: usize) -> Result<Vec<Digest>>;
}

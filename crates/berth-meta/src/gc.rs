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
//! serialized on the blob's row.** The deleting transaction re-checks, under that
//! serialization, that the blob is still unreferenced and its mark still old, then
//! deletes the bytes (through the caller's [`BlobDeleter`]) *before* the row and before
//! the transaction ends. Every referencing write (`commit_blob`, `mount_blob`,
//! `put_manifest`, `pin_blob`) takes the same serialization. SQLite has it for free (one
//! writer, `BEGIN IMMEDIATE`, also across processes); PostgreSQL takes
//! `pg_advisory_xact_lock(hashtext(digest))` in the deleting transaction and in each
//! referencing one (or `SELECT ... FOR UPDATE` on the `blobs` row, inserting a missing
//! row first), so that the re-check sees every committed reference.

use std::sync::Arc;

use berth_types::Digest;

use crate::Result;

/// Deletes one blob's bytes; blocking (it runs inside the store's transaction). Returns
/// the error text when the bytes could not be deleted (the row then stays).
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

    /// Deletes each blob of `digests` that is still unreferenced (no link, manifest
    /// reference or pin) and marked at or before `cutoff_ms`: its bytes through `delete`,
    /// then its row, serialized with every referencing write (see the module doc).
    /// Returns the deleted blobs.
    async fn gc_delete_blobs(
        &self,
        digests: &[Digest],
        cutoff_ms: i64,
        delete: BlobDeleter,
    ) -> Result<Vec<GcBlob>>;

    /// Which of `digests` have neither a `blobs` row nor a pin: bytes no row records
    /// (left by a crash between moving an upload into place and recording it).
    async fn gc_unrecorded(&self, digests: &[Digest]) -> Result<Vec<Digest>>;
    /// Deletes the bytes of each of `digests` that still has neither row nor pin, under
    /// the same serialization as [`GcStore::gc_delete_blobs`]. Returns those deleted.
    async fn gc_delete_unrecorded(
        &self,
        digests: &[Digest],
        delete: BlobDeleter,
    ) -> Result<Vec<Digest>>;
}

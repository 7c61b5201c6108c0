//! What the archive storage class needs from the meta store ([`ArchiveStore`]).
//!
//! An image is `ACTIVE` (pullable), `ARCHIVED` (listed, not pullable; its blobs have a
//! verified copy in the archive tier) or `ACTIVATING` (being restored). A blob's
//! *standard* copy (in the blob store) is dropped only when nothing else needs it:
//!
//! - no manifest of any repository that is not `ARCHIVED` references it (an `ACTIVE` or
//!   `ACTIVATING` image keeps it);
//! - no commit has pinned it ([`crate::GcStore::pin_blob`]: an upload being moved into
//!   place, or dropped as a duplicate of these very bytes);
//! - no repository links it without also holding a manifest that references it (such a
//!   link is a push in progress: its manifest comes next).
//!
//! Dropping decides, removes the links of the archived images' repositories and records a
//! deletion in progress for the digest **in one transaction serialized with every
//! referencing write** (the same rule and record as garbage collection, see [`crate::gc`]);
//! the caller deletes the bytes after it and finishes the deletion
//! ([`crate::GcStore::gc_finish_deletions`]). A manifest push or mount that commits first
//! keeps the copy (its reference or link is seen); one that commits after finds no link
//! and is refused (`BlobNotLinked`) or becomes an ordinary upload, whose commit waits for
//! the deletion to finish and then writes the bytes again. A restore waits for it too
//! (and an `ACTIVATING` image holds its blobs, so no new drop starts). So no `ACTIVE`
//! image ever references a blob without its standard copy.

use berth_types::{Digest, RepositoryName};

use crate::gc::BlobDeleter;
use crate::Result;

/// ECR's `ImageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    Active,
    Archived,
    Activating,
}

impl ImageStatus {
    /// The model's spelling, also the stored one.
    pub fn as_api(self) -> &'static str {
        match self {
            ImageStatus::Active => "ACTIVE",
            ImageStatus::Archived => "ARCHIVED",
            ImageStatus::Activating => "ACTIVATING",
        }
    }

    pub fn from_api(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(ImageStatus::Active),
            "ARCHIVED" => Some(ImageStatus::Archived),
            "ACTIVATING" => Some(ImageStatus::Activating),
            _ => None,
        }
    }
}

/// An image's storage state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageStorage {
    pub status: ImageStatus,
    /// ECR's `lastArchivedAt` (Unix ms).
    pub archived_ms: Option<i64>,
    /// ECR's `lastActivatedAt` (Unix ms).
    pub activated_ms: Option<i64>,
}

impl ImageStorage {
    /// An image never archived.
    pub const ACTIVE: ImageStorage = ImageStorage {
        status: ImageStatus::Active,
        archived_ms: None,
        activated_ms: None,
    };
}

/// A blob an image references (config or layer), with its stored size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBlob {
    pub digest: Digest,
    pub size: u64,
}

/// What [`ArchiveStore::archive_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// The image is now `ARCHIVED`; these blobs' standard copies were dropped.
    Archived { dropped: Vec<Digest> },
    /// No such manifest in the repository (or no such repository).
    NotFound,
    /// The image is not `ACTIVE`; nothing changed.
    NotActive(ImageStatus),
    /// These blobs of the image have no archive copy recorded (a sweep removed one
    /// meanwhile); nothing changed: copy them and try again.
    CopyMissing(Vec<Digest>),
}

/// What one [`ArchiveStore::archive_sweep`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveSweep {
    /// Standard copies dropped (every image needing them is archived now): deletions in
    /// progress whose bytes the caller deletes.
    pub standard_dropped: Vec<Digest>,
    /// Archive copies deleted (no archived or activating image needs them).
    pub copies_deleted: Vec<Digest>,
}

#[async_trait::async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// The storage state of each image (`None` for each absent manifest), in order.
    async fn image_storage(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageStorage>>>;
    /// The images of a repository that are not plain `ACTIVE`-never-archived, by digest
    /// (for lifecycle evaluation, which needs every image's storage class).
    async fn storage_states(&self, repo: &RepositoryName) -> Result<Vec<(Digest, ImageStorage)>>;
    /// The blobs an image references with their sizes; `None` when there is no such manifest.
    async fn image_blobs(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Vec<ImageBlob>>>;
    /// Which of `digests` have an archive copy recorded, in order.
    async fn archived_copies(&self, digests: &[Digest]) -> Result<Vec<bool>>;
    /// Records a verified archive copy (idempotent).
    async fn record_archive_copy(
        &self,
        digest: &Digest,
        size: u64,
        stored_size: u64,
        now_ms: i64,
    ) -> Result<()>;
    /// `ACTIVE` → `ARCHIVED` when every blob of the image has an archive copy, then drops
    /// each of its blobs' standard copies that nothing else needs (module doc): the
    /// archived repositories' links go and a deletion in progress is recorded, in the same
    /// transaction. The caller deletes the `dropped` bytes, then finishes the deletions.
    async fn archive_image(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now_ms: i64,
    ) -> Result<ArchiveOutcome>;
    /// `ARCHIVED` → `ACTIVATING`. Returns the status before (`None`: no such image);
    /// changes nothing unless it was `ARCHIVED`.
    async fn begin_activation(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageStatus>>;
    /// `ACTIVATING` → `ACTIVE` once the caller has put every blob's standard copy back:
    /// links the blobs into the repository again and marks their standard copies kept.
    /// Returns false (and changes nothing) when the image is gone or not `ACTIVATING`.
    async fn finish_activation(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        now_ms: i64,
    ) -> Result<bool>;
    /// Every `ACTIVATING` image (repository name, digest): restores to resume after a restart.
    async fn activating_images(&self) -> Result<Vec<(RepositoryName, Digest)>>;
    /// Whether a manifest of the repository that is `ARCHIVED` or `ACTIVATING` references
    /// the blob (to tell a pull why a blob is unavailable).
    async fn blob_archived_in(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;
    /// Up to `limit` of each: drops standard copies of archived blobs nothing needs any
    /// more (an `ACTIVE` image sharing them was deleted; as [`ArchiveStore::archive_image`]
    /// drops them: the caller deletes `standard_dropped`'s bytes and finishes), and deletes
    /// archive copies that no `ARCHIVED` or `ACTIVATING` image references (their images
    /// were restored or deleted), re-checked and deleted through `delete_copy` inside one
    /// write transaction (archive-tier bytes are still deleted there).
    async fn archive_sweep(&self, limit: usize, delete_copy: BlobDeleter) -> Result<ArchiveSweep>;
}

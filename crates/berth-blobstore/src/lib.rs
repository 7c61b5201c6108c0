//! # berth-blobstore
//!
//! Bytes, keyed by digest, stored once for the whole registry. This crate knows nothing
//! of repositories, links or HTTP: the meta store decides who may see a blob; this store
//! only keeps bytes durable and streams them back.
//!
//! Two kinds of object live here:
//! - **blobs**: immutable, named by their digest, written only by committing an upload
//!   whose digest the caller has already verified;
//! - **uploads**: append-only temporary objects named by an upload id.
//!
//! Writing goes through a *blocking* [`UploadSink`] so that the caller can hash and write
//! each buffer in a single pass on a blocking thread; reading is an async stream.
//!
//! To add a backend (S3 is next), implement [`BlobStore`] and run [`suite`] against it.
//!
//! May depend on: `berth-types`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod archive;
pub mod disk;
pub mod suite;

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use berth_types::Digest;

pub use archive::{ArchiveTier, DiskArchive};
pub use disk::{DiskBlobStore, DiskOptions};

/// A stream of byte chunks read from the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    #[error("upload {0} not found")]
    UploadNotFound(String),
    #[error("upload {id} holds {actual} bytes, not the {expected} the write assumed")]
    UploadOffsetMismatch {
        id: String,
        expected: u64,
        actual: u64,
    },
    #[error("storage is full")]
    StorageFull(#[source] io::Error),
    /// An archive copy (or its source) does not yield the blob's digest and size.
    #[error("archive copy of {digest} is not valid: {reason}")]
    ArchiveCorrupt { digest: Digest, reason: String },
    #[error("storage I/O failed")]
    Io(#[source] io::Error),
}

impl From<io::Error> for BlobStoreError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            BlobStoreError::StorageFull(e)
        } else {
            BlobStoreError::Io(e)
        }
    }
}

pub type Result<T, E = BlobStoreError> = std::result::Result<T, E>;

/// A byte range within a blob, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What the store knows of one committed blob: for garbage collection, which compares
/// the store's contents with the meta store's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// When the bytes were last written (Unix ms): a blob file that no row records is only
    /// reclaimed once this is older than the grace period.
    pub modified_ms: i64,
}

/// A blocking, append-only writer into an upload. Used from a blocking thread.
pub trait UploadSink: Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Appends all of `chunks`, in order (one vectored write where the backend can).
    fn write_chunks(&mut self, chunks: &[Bytes]) -> Result<()> {
        for c in chunks {
            self.write_all(c)?;
        }
        Ok(())
    }
    /// Flushes what was written and returns the upload's new size. Not yet durable:
    /// durability comes with [`BlobStore::commit_upload`].
    fn finish(self: Box<Self>) -> Result<u64>;
    /// Discards everything this sink wrote, leaving the upload as it was when opened.
    fn abort(self: Box<Self>) -> Result<()>;
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a committed blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Streams a committed blob, or the given inclusive range of it.
    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream>;

    /// Size and modification time of a committed blob, or `None`.
    async fn blob_info(&self, digest: &Digest) -> Result<Option<BlobInfo>>;

    /// Committed blobs in digest order (as text, `algorithm:hex`) strictly after `after`,
    /// at most `limit`. Uploads in progress are never listed (garbage collection walks
    /// this list and must not see them). S3 maps it to `ListObjectsV2` with `StartAfter`.
    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<BlobInfo>>;

    /// Deletes a committed blob's bytes. Deleting an absent blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Creates an empty upload.
    async fn create_upload(&self, id: &str) -> Result<()>;

    /// Current size of an upload, or `None` when it does not exist.
    async fn upload_size(&self, id: &str) -> Result<Option<u64>>;

    /// Opens a sink that appends to the upload, which must currently hold exactly `offset` bytes.
    async fn upload_sink(&self, id: &str, offset: u64) -> Result<Box<dyn UploadSink>>;

    /// Streams the upload's bytes so far (to rebuild a hash state after a restart).
    async fn read_upload(&self, id: &str) -> Result<ByteStream>;

    /// Durably turns the upload into the blob `digest`, whose content the caller has verified.
    /// If the blob already exists the upload is simply discarded (deduplication).
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()>;

    /// Deletes an upload. Deleting an absent upload is not an error.
    async fn abort_upload(&self, id: &str) -> Result<()>;

    /// Every upload id present, for expiry of abandoned uploads.
    async fn list_uploads(&self) -> Result<Vec<String>>;
}

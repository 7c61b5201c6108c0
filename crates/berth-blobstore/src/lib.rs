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
//! Writing goes through an async [`UploadSink`] that hashes each buffer as it writes it
//! (single pass) and, when it finishes, saves the running hash state *with the upload*: any
//! process (another node, or this one after a restart) continues a chunked upload from
//! that state without reading its bytes again. Reading is an async stream.
//!
//! To add a backend, implement [`BlobStore`] and run the shared suite against it
//! ([`blob_store_suite!`], behind the `suite` feature).
//!
//! May depend on: `berth-types`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod archive;
pub mod disk;
pub mod s3;
#[cfg(any(test, feature = "suite"))]
pub mod suite;

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use berth_types::{Algorithm, Digest, Hasher};

pub use archive::{ArchiveTier, DiskArchive};
pub use disk::{DiskBlobStore, DiskOptions};
pub use s3::{S3BlobStore, S3Options, S3StartupProblem};

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
    /// The hash state saved with an upload does not decode (damaged, or written by an
    /// incompatible version).
    #[error("upload {id} has a damaged hash state: {source}")]
    UploadStateCorrupt {
        id: String,
        #[source]
        source: berth_types::DigestError,
    },
    /// The upload's bytes cannot be read back to hash them with another algorithm (an S3
    /// upload whose bytes are already in multipart parts).
    #[error("upload {id} cannot be re-hashed as {algorithm}: its bytes are not readable until it completes")]
    UploadNotRehashable { id: String, algorithm: &'static str },
    /// At commit, the hash saved with the upload is not the digest the caller verified (a
    /// write from another node came in between).
    #[error("upload {id} now hashes to {actual}, not {expected}")]
    UploadChanged {
        id: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("storage is full")]
    StorageFull(#[source] io::Error),
    /// An archive copy (or its source) does not yield the blob's digest and size.
    #[error("archive copy of {digest} is not valid: {reason}")]
    ArchiveCorrupt { digest: Digest, reason: String },
    #[error("storage I/O failed")]
    Io(#[source] io::Error),
    /// A request to the object store failed (after the client's retries).
    #[error("object store request failed")]
    Remote(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The object store cannot be used with this configuration (bad endpoint, wrong
    /// credentials, missing bucket): found when the store is opened.
    #[error("cannot use the object store")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Upload ids are what the registry makes (UUIDs): letters, digits and '-', so they are
/// safe as a file name and as one key segment.
pub(crate) fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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

/// An upload present in the store, as listed for the sweeper of abandoned uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub id: String,
    /// When the upload was created or last had a write finished (Unix ms, the store's own
    /// clock: file mtime on disk, `LastModified` of its newest object on S3). Every node
    /// sees the same time, so an upload without a metadata row (one being created, or a
    /// single-request push) is only swept once this is older than the idle limit.
    pub modified_ms: i64,
}

/// What an upload holds after a sink finished: its size and the hash of all its bytes.
#[derive(Clone)]
pub struct Written {
    pub size: u64,
    /// The running hash; `hasher.finish()` is the digest of the upload so far.
    pub hasher: Hasher,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("size", &self.size)
            .field("algorithm", &self.hasher.algorithm())
            .finish()
    }
}

/// An append-only writer into an upload that hashes what it writes.
#[async_trait::async_trait]
pub trait UploadSink: Send {
    /// Appends `chunks` in order (the request's own buffers: no copy where the backend can
    /// avoid one). After an error the sink is broken: call [`UploadSink::abort`].
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()>;
    /// Makes what was written part of the upload and saves the running hash state with it,
    /// then returns both. Not yet durable on disk: durability comes with
    /// [`BlobStore::commit_upload`]. If it fails, the upload is as it was when opened.
    async fn finish(self: Box<Self>) -> Result<Written>;
    /// Discards everything this sink wrote, leaving the upload as it was when opened.
    async fn abort(self: Box<Self>) -> Result<()>;
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

    /// Opens a sink that appends to the upload, which must currently hold exactly `offset`
    /// bytes, continuing the hash saved with the upload in `algorithm` (when the saved hash
    /// is of another algorithm, or missing, the backend hashes the upload's bytes again).
    async fn upload_sink(
        &self,
        id: &str,
        offset: u64,
        algorithm: Algorithm,
    ) -> Result<Box<dyn UploadSink>>;

    /// Durably turns the upload into the blob `digest`, whose content the caller has verified
    /// (from the hash its sink returned). A backend that other nodes write to checks the
    /// saved hash again ([`BlobStoreError::UploadChanged`]). If the blob already exists the
    /// upload is simply discarded (deduplication).
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()>;

    /// Deletes an upload. Deleting an absent upload is not an error.
    async fn abort_upload(&self, id: &str) -> Result<()>;

    /// Every upload present, with its last write time, for expiry of abandoned uploads.
    async fn list_uploads(&self) -> Result<Vec<UploadInfo>>;

    /// A URL that lets its holder `GET` the committed blob directly from the storage for
    /// `expires`, or `None` when the backend serves bytes only through Berth (disk).
    async fn presign(&self, digest: &Digest, expires: Duration) -> Result<Option<url::Url>>;
}

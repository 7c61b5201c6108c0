//! The registry's domain error, in domain words. Edges map it to the wire once.

use berth_blobstore::BlobStoreError;
use berth_meta::MetaError;
use berth_types::{Digest, DigestError, ManifestError, NameError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Also what a push to a missing repository gets when no creation template applies
    /// (worded as ECR's `/v2` answers it).
    #[error("repository {0} does not exist")]
    RepositoryNotFound(String),
    #[error("invalid repository name: {0}")]
    InvalidName(String),
    #[error("blob {0} not found in the repository")]
    BlobNotFound(Digest),
    #[error("upload {0} not found")]
    UploadNotFound(String),
    #[error("upload is invalid: {0}")]
    UploadInvalid(String),
    #[error("chunk starts at {requested} but the upload holds {current} bytes")]
    UploadOutOfOrder { requested: u64, current: u64 },
    #[error("invalid digest: {0}")]
    InvalidDigest(#[from] DigestError),
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size invalid: {0}")]
    SizeInvalid(String),
    #[error("invalid tag: {0}")]
    InvalidTag(String),
    #[error("manifest {0} not found")]
    ManifestNotFound(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(#[from] ManifestError),
    #[error("manifest references blob {0}, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    /// A config or layer descriptor whose `size` is not the stored blob's: clients
    /// verify sizes when pulling, so such an image could never be pulled.
    #[error("manifest declares blob {digest} as {declared} bytes, but the stored blob has {stored} bytes")]
    DescriptorSizeMismatch {
        digest: Digest,
        declared: u64,
        stored: u64,
    },
    /// A blob delete while a manifest of the repository uses the blob: pulling that
    /// image would fail, so the link stays.
    #[error(
        "blob {digest} is used by manifest {manifest} of the repository; delete the manifest first"
    )]
    BlobReferenced { digest: Digest, manifest: Digest },
    #[error("index references manifest {0}, which is not in the repository")]
    ManifestChildUnknown(Digest),
    #[error("manifest {digest} is referenced by index {index}; delete the index first")]
    ManifestReferenced { digest: Digest, index: Digest },
    /// The repository's tag mutability setting forbids moving this existing tag.
    #[error("The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the repository is immutable.")]
    TagImmutable { repository: String, tag: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    // -- The archive storage class (archive.rs). --
    /// A pull of an image that is `ARCHIVED` (or `ACTIVATING`): not pullable until restored.
    #[error("{}", archived_message(reference, *restoring))]
    ImageArchived { reference: String, restoring: bool },
    /// A pull of a blob whose standard copy went to the archive with this repository's
    /// archived images.
    #[error("blob {0} is archived with its image; restore the image with UpdateImageStorageClass --target-storage-class STANDARD")]
    BlobArchived(Digest),
    /// A storage class change the image's status does not allow (ECR's
    /// `ImageStorageClassUpdateNotSupportedException`).
    #[error("{0}")]
    StorageClassUnchanged(String),
    // -- End of the archive storage class. --
    #[error("the range {start}-{end} is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { start: u64, end: u64, size: u64 },
    #[error("storage is full")]
    StorageFull,
    /// A commit of a blob whose earlier copy garbage collection is still deleting, after
    /// waiting for it: the collector died mid-deletion and a later pass finishes it. The
    /// client should retry later (OCI `UNAVAILABLE`, 503 with `Retry-After`).
    #[error("blob {0} is being deleted by garbage collection; retry the upload in a minute")]
    BlobBeingDeleted(Digest),
    #[error("internal storage failure")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn archived_message(reference: &str, restoring: bool) -> String {
    if restoring {
        format!("the image {reference} is being restored from the archive; pull it again once its imageStatus is ACTIVE")
    } else {
        format!("the image {reference} is archived; restore it with UpdateImageStorageClass --target-storage-class STANDARD")
    }
}

impl From<NameError> for RegistryError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::InvalidName(n) | NameError::InvalidAccount(n) => {
                RegistryError::InvalidName(n)
            }
            NameError::InvalidTag(t) => RegistryError::InvalidTag(t),
            NameError::InvalidDigest(d) => RegistryError::InvalidDigest(d),
        }
    }
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::RepositoryNotFound(r) => RegistryError::RepositoryNotFound(r),
            MetaError::BlobNotLinked(d) => RegistryError::ManifestBlobUnknown(d),
            MetaError::ChildManifestMissing(d) => RegistryError::ManifestChildUnknown(d),
            MetaError::BlobReferenced { digest, manifest } => {
                RegistryError::BlobReferenced { digest, manifest }
            }
            MetaError::ManifestReferenced { digest, index } => {
                RegistryError::ManifestReferenced { digest, index }
            }
            MetaError::UploadNotFound(u) => RegistryError::UploadNotFound(u),
            MetaError::TagImmutable { repository, tag } => {
                RegistryError::TagImmutable { repository, tag }
            }
            MetaError::StorageFull => RegistryError::StorageFull,
            // Only the ECR API's repository operations produce these; no /v2 path does.
            // A commit waits out a deletion in progress; this one outlived the wait (its
            // collector died): a later pass finishes it, and the client's retry succeeds.
            MetaError::BlobBeingDeleted(d) => RegistryError::BlobBeingDeleted(d),
            e @ (MetaError::Database(_)
            | MetaError::RepositoryAlreadyExists(_)
            | MetaError::RepositoryNotEmpty(_)) => RegistryError::Internal(Box::new(e)),
        }
    }
}

impl From<BlobStoreError> for RegistryError {
    fn from(e: BlobStoreError) -> Self {
        match e {
            BlobStoreError::BlobNotFound(d) => RegistryError::BlobNotFound(d),
            BlobStoreError::UploadNotFound(u) => RegistryError::UploadNotFound(u),
            BlobStoreError::UploadOffsetMismatch {
                expected, actual, ..
            } => RegistryError::UploadOutOfOrder {
                requested: expected,
                current: actual,
            },
            BlobStoreError::StorageFull(_) => RegistryError::StorageFull,
            // Another node appended between this node's check and its commit.
            BlobStoreError::UploadChanged {
                expected, actual, ..
            } => RegistryError::DigestMismatch { expected, actual },
            e @ BlobStoreError::UploadNotRehashable { .. } => {
                RegistryError::UploadInvalid(e.to_string())
            }
            e @ (BlobStoreError::Io(_)
            | BlobStoreError::Remote(_)
            | BlobStoreError::Unreachable(_)
            | BlobStoreError::ArchiveCorrupt { .. }
            | BlobStoreError::UploadStateCorrupt { .. }) => RegistryError::Internal(Box::new(e)),
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

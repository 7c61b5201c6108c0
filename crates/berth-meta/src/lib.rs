//! # berth-meta
//!
//! Every fact except blob bytes lives here, each in one place: repositories, *links*
//! (which repository may see which blob), manifests with their raw bytes and parsed
//! references, tags, the referrers index, uploads in progress and the event outbox.
//!
//! The interface is one small trait per responsibility ([`RepositoryStore`],
//! [`BlobLinkStore`], [`UploadStore`], [`ManifestStore`], [`ImageStore`],
//! [`PullTimeStore`], [`EventStore`], [`GcStore`], [`ArchiveStore`]); consumers take the
//! ones they use, and [`MetaStore`] is their sum, implemented by every backend.
//! [`sqlite::SqliteMetaStore`] is the embedded backend (a PostgreSQL backend will
//! implement the same traits and pass the same suites: `suite`, `gc_suite`, ... as named
//! per-case tests through `meta_store_suite!` and its siblings, behind the `suite`
//! feature).
//! Every write that must be atomic (a manifest with its references, tag and event) is
//! one method here and one transaction in the backend, so callers cannot half-apply it.
//!
//! Accounts and IAM (users, groups, inline policies, access keys with their secrets
//! sealed under a master key) are a second trait, [`IamStore`] (module [`iam`], sealing in
//! [`secrets`]), implemented by [`sqlite::SqliteIamStore`] on the same database.
//!
//! What online garbage collection needs (marks of unreferenced blobs and links, commit
//! pins, deletion re-checked and recorded in one transaction, the bytes deleted after it) is
//! [`GcStore`] (module [`gc`]), a supertrait of [`MetaStore`] with its own `gc_suite`.
//!
//! ECR registry configuration (repository and registry policies, resource tags, account
//! settings, repository creation templates) is a third trait, [`EcrSettingsStore`]
//! (module [`settings`]), implemented by [`sqlite::SqliteMetaStore`] itself.
//!
//! Lifecycle policies, their previews, the facts evaluation reads in one query per
//! repository and execution's conditional delete with its expiry log are a fourth trait,
//! [`LifecycleStore`] (module [`lifecycle`]), also implemented by [`sqlite::SqliteMetaStore`].
//!
//! The jobs layer's facts (outbox consumer cursors, queued jobs with leases, singleton
//! leases for periodic passes) are [`jobs::JobStore`], with its own [`jobs_suite`].
//!
//! The schema's versions are one list for every backend ([`schema`]). The PostgreSQL
//! backend (module `postgres`, cargo feature `postgres`) implements every trait here and
//! passes every shared suite.
//!
//! May depend on: `berth-types`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod archive;
pub mod gc;
pub mod iam;
pub mod jobs;
pub mod lifecycle;
pub mod lifecycle_rules;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rules;
pub mod schema;
pub mod secrets;
pub mod settings;
pub mod sqlite;
pub mod tag_mutability;
pub mod transfer;

// The shared suites: test code, compiled for this crate's tests and, through the `suite`
// feature, for other crates' tests (a dev-dependency feature), never into the binary.
#[cfg(any(test, feature = "suite"))]
pub mod archive_suite;
#[cfg(any(test, feature = "suite"))]
pub mod gc_suite;
#[cfg(any(test, feature = "suite"))]
pub mod iam_suite;
#[cfg(any(test, feature = "suite"))]
pub mod jobs_suite;
#[cfg(any(test, feature = "suite"))]
pub mod lifecycle_suite;
#[cfg(any(test, feature = "suite"))]
pub mod settings_suite;
#[cfg(any(test, feature = "suite"))]
pub mod suite;
#[cfg(any(test, feature = "suite"))]
pub mod suite_macros;
mod types;

pub use archive::ArchiveStore;
pub use gc::GcStore;
pub use iam::{IamError, IamStore};
pub use lifecycle::LifecycleStore;
pub use settings::{EcrSettingsStore, SettingsError};
pub use types::*;

use berth_types::{AccountId, Digest, RepositoryName, Tag};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("repository {0} not found")]
    RepositoryNotFound(String),
    #[error("repository {0} already exists")]
    RepositoryAlreadyExists(String),
    #[error("repository {0} still holds images; delete them first or force the deletion")]
    RepositoryNotEmpty(String),
    #[error("blob {0} is not present in the repository")]
    BlobNotLinked(Digest),
    /// `unlink_blob` of a blob a manifest of the repository still uses.
    #[error(
        "blob {digest} is used by manifest {manifest} of the repository; delete the manifest first"
    )]
    BlobReferenced { digest: Digest, manifest: Digest },
    #[error("manifest {0} referenced by the index is not present in the repository")]
    ChildManifestMissing(Digest),
    #[error("manifest {digest} is referenced by index {index}; delete the index first")]
    ManifestReferenced { digest: Digest, index: Digest },
    #[error("upload {0} not found")]
    UploadNotFound(String),
    /// The tag exists, points at another image, and the repository's tag mutability
    /// setting forbids moving it (see [`tag_mutability`]).
    #[error("tag {tag} of repository {repository} is immutable and points at another image")]
    TagImmutable { repository: String, tag: String },
    /// Garbage collection is deleting this blob's bytes (see [`gc`]): it cannot be pinned
    /// or recorded until that finishes; retry shortly.
    #[error("blob {0} is being deleted by garbage collection; retry shortly")]
    BlobBeingDeleted(Digest),
    #[error("metadata database is full (no space left on device)")]
    StorageFull,
    #[error("metadata database failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

// The metadata traits, one per cohesive responsibility, so each consumer takes what it
// uses (the registry's uploads take `UploadStore`, garbage collection `GcStore`, ...).
// A backend implements each; [`MetaStore`] is their sum, for backends and the suites.

/// Repositories: explicit (the ECR API) or created by a push, their settings.
#[async_trait::async_trait]
pub trait RepositoryStore: Send + Sync + 'static {
    // Repositories.
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool>;

    /// Names of the repositories of `account`'s registry in lexical order strictly after
    /// `after`, at most `limit`; only
    /// repositories holding at least one manifest are listed.
    async fn list_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// Creates a repository explicitly (the ECR API); `RepositoryAlreadyExists` if a row
    /// exists, whether created by the API or implicitly by a push.
    async fn create_repository(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        now_ms: i64,
    ) -> Result<RepositoryRecord>;

    async fn get_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>>;

    /// Every repository of `account`'s registry (empty ones included), in lexical order
    /// strictly after `after`, at most `limit`.
    async fn describe_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryRecord>>;

    /// Deletes a repository and, with `force`, its manifests, tags and links in one
    /// transaction (blob bytes stay for garbage collection), writing a
    /// `repository.deleted` event. Without `force`, a repository holding a manifest is
    /// `RepositoryNotEmpty`. Returns the deleted row.
    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord>;

    /// Sets the repository's tag mutability (mode and exclusion filters); returns the row.
    async fn set_tag_mutability(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
    ) -> Result<RepositoryRecord>;
}

/// Blobs and links: which repository may see which blob.
#[async_trait::async_trait]
pub trait BlobLinkStore: Send + Sync + 'static {
    // Blobs and links.
    /// Size of the blob if it is linked into the repository.
    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;

    /// Records a committed blob (global row, if new) and links it into the repository;
    /// also removes the upload row `upload_id` in the same transaction.
    async fn commit_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        upload_id: Option<&str>,
    ) -> Result<()>;

    /// Links a blob already linked in `from` into `to`; returns its size, or `None` when
    /// `from` does not hold it (then nothing changes).
    async fn mount_blob(
        &self,
        to: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>>;

    /// Removes a link; returns whether it existed. A link a manifest of the repository
    /// uses (as config or layer) stays: `BlobReferenced`, decided in the same transaction
    /// as the removal, so a concurrent push cannot lose its blob.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// Sizes of blobs linked into the repository (`None` for each absent one), in order.
    async fn linked_blobs(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<u64>>>;

    /// Whether a manifest in the repository references the blob.
    async fn blob_referenced(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;
}

/// Uploads in progress (their bytes are the blob store's).
#[async_trait::async_trait]
pub trait UploadStore: Send + Sync + 'static {
    // Uploads.
    async fn create_upload(&self, upload: &UploadRecord) -> Result<()>;

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>>;

    async fn touch_upload(&self, id: &str, now_ms: i64) -> Result<()>;

    async fn delete_upload(&self, id: &str) -> Result<bool>;

    /// Upload ids not touched since `before_ms`.
    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>>;
}

/// Manifests with their references, tags and referrers (the `/v2` view).
#[async_trait::async_trait]
pub trait ManifestStore: Send + Sync + 'static {
    // Manifests and tags.
    /// Stores a manifest (idempotent for the same digest), checking in the same transaction
    /// that every referenced blob is linked and every child manifest present, then points
    /// `tag` at it and records an event.
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        m: &NewManifest,
    ) -> Result<PutManifestOutcome>;

    async fn get_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>>;

    async fn resolve_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<Digest>>;

    /// Deletes a manifest and every tag pointing at it. Refused while an index in the
    /// repository references it.
    async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<bool>;

    /// Tags in lexical order after `after`; `None` when the repository does not exist.
    async fn list_tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>>;

    /// Manifests in the repository whose subject is `subject`.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>>;
}

/// Images as the ECR API sees them: push-time facts, tags, keyset pages, deletes.
#[async_trait::async_trait]
pub trait ImageStore: Send + Sync + 'static {
    // Images as the ECR API sees them (push-time facts, pull times, mutability).
    /// A page of images in digest order strictly after `after`, at most `limit`, with
    /// their tags; `None` when the repository does not exist. One query, whatever the
    /// repository size.
    async fn describe_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Option<Vec<ImageRecord>>>;

    /// The images with these digests (`None` for each absent one), in the given order.
    async fn describe_images_by_digest(
        &self,
        repo: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<Option<ImageRecord>>>;

    /// A page of (digest, tag) pairs, one per tag and one per untagged image, ordered by
    /// digest then tag (an untagged image sorts as the empty tag), strictly after `after`;
    /// `None` when the repository does not exist.
    async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&ImageId>,
        limit: usize,
    ) -> Result<Option<Vec<ImageId>>>;

    /// Deletes one image as ECR's BatchDeleteImage does, in one transaction: by tag (the
    /// manifest goes too when it was its last tag), by digest (with all its tags), or by
    /// both (the tag must point at the digest; then as by tag).
    async fn delete_image(
        &self,
        repo: &RepositoryName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<DeleteImageOutcome>;
}

/// Pull times and the principals whose pulls do not count.
#[async_trait::async_trait]
pub trait PullTimeStore: Send + Sync + 'static {
    /// Records pull times in one transaction, keeping the newest per image; pulls of images
    /// deleted meanwhile are dropped. Returns how many images were updated.
    async fn record_pull_times(&self, pulls: &[PullTimeUpdate]) -> Result<usize>;

    /// Adds a pull time exclusion for the registry of `account`, unless it exists or the
    /// registry already holds `limit` of them.
    async fn add_pull_time_exclusion(
        &self,
        account: &str,
        principal_arn: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<RegisterExclusionOutcome>;

    /// Removes an exclusion; returns whether it existed.
    async fn remove_pull_time_exclusion(&self, account: &str, principal_arn: &str) -> Result<bool>;

    /// Exclusions of `account` (every account's when `None`) in ARN order strictly after
    /// `after`, at most `limit`.
    async fn pull_time_exclusions(
        &self,
        account: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PullTimeExclusion>>;
}

/// The event outbox: what happened, written in the same transaction as the change.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    // Events (the outbox).
    async fn events_after(&self, after_id: i64, limit: usize) -> Result<Vec<EventRecord>>;

    /// The id of the newest event (0 when there is none).
    async fn last_event_id(&self) -> Result<i64>;
}

/// Every metadata trait of one backend: what a backend implements and the shared suites
/// test. Consumers take the narrow traits they use; `Arc<dyn MetaStore>` coerces to each.
pub trait MetaStore:
    RepositoryStore
    + BlobLinkStore
    + UploadStore
    + ManifestStore
    + ImageStore
    + PullTimeStore
    + EventStore
    + GcStore
    + ArchiveStore
{
}

impl<T> MetaStore for T where
    T: RepositoryStore
        + BlobLinkStore
        + UploadStore
        + ManifestStore
        + ImageStore
        + PullTimeStore
        + EventStore
        + GcStore
        + ArchiveStore
{
}

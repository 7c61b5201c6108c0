//! # berth-meta
//!
//! Every fact except blob bytes lives here, each in one place: repositories, *links*
//! (which repository may see which blob), manifests with their raw bytes and parsed
//! references, tags, the referrers index, uploads in progress and the event outbox.
//!
//! [`MetaStore`] is the interface; [`sqlite::SqliteMetaStore`] the embedded backend
//! (a PostgreSQL backend will implement the same trait and pass the same [`suite`]).
//! Every write that must be atomic (a manifest with its references, tag and event) is
//! one method here and one transaction in the backend, so callers cannot half-apply it.
//!
//! Accounts and IAM (users, groups, inline policies, access keys with their secrets
//! sealed under a master key) are a second trait, [`IamStore`] (module [`iam`], sealing in
//! [`secrets`]), implemented by [`sqlite::SqliteIamStore`] on the same database.
//!
//! ECR registry configuration (repository and registry policies, resource tags, account
//! settings, repository creation templates) is a third trait, [`EcrSettingsStore`]
//! (module [`settings`]), implemented by [`sqlite::SqliteMetaStore`] itself.
//!
//! May depend on: `berth-types`.

pub mod iam;
pub mod secrets;
pub mod settings;
pub mod settings_suite;
pub mod sqlite;
pub mod suite;
mod types;

pub use iam::{IamError, IamStore};
pub use settings::{EcrSettingsStore, SettingsError};
pub use types::*;

use berth_types::{Digest, RepositoryName, Tag};

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
    #[error("manifest {0} referenced by the index is not present in the repository")]
    ChildManifestMissing(Digest),
    #[error("manifest {digest} is referenced by index {index}; delete the index first")]
    ManifestReferenced { digest: Digest, index: Digest },
    #[error("upload {0} not found")]
    UploadNotFound(String),
    #[error("metadata database is full (no space left on device)")]
    StorageFull,
    #[error("metadata database failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    // Repositories.
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool>;
    /// Repository names in lexical order strictly after `after`, at most `limit`; only
    /// repositories holding at least one manifest are listed.
    async fn list_repositories(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// Creates a repository explicitly (the ECR API); `RepositoryAlreadyExists` if a row
    /// exists, whether created by the API or implicitly by a push.
    async fn create_repository(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        now_ms: i64,
    ) -> Result<RepositoryRecord>;
    async fn get_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>>;
    /// Every repository (empty ones included), in lexical order strictly after `after`,
    /// at most `limit`.
    async fn describe_repositories(
        &self,
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
    /// Removes a link; returns whether it existed.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    // Uploads.
    async fn create_upload(&self, upload: &UploadRecord) -> Result<()>;
    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>>;
    async fn touch_upload(&self, id: &str, now_ms: i64) -> Result<()>;
    async fn delete_upload(&self, id: &str) -> Result<bool>;
    /// Upload ids not touched since `before_ms`.
    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>>;

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

    // Events (the outbox).
    async fn events_after(&self, after_id: i64, limit: usize) -> Result<Vec<EventRecord>>;
}

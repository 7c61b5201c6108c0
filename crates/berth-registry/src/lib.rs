//! # berth-registry
//!
//! The core registry services behind every protocol edge: uploads and blobs, manifests
//! and tags, mounts, the referrers index, catalog and tag listing; for the ECR API also
//! image deletes, layer parts and pull times (recorded in memory, written in batches off
//! the pull path; `pull_times.rs`). Tag mutability is enforced by the meta store's push
//! transaction, so every edge refuses the same tag moves. It speaks in domain terms
//! ([`RegistryError`]) and knows nothing of HTTP; the OCI and ECR edges translate.
//!
//! Blob bytes are freed by online garbage collection ([`gc`]); a commit pins its digest
//! first so that no collection can delete the bytes it is about to record (`uploads.rs`).
//!
//! May depend on: `berth-types`, `berth-blobstore`, `berth-meta`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod archive;
mod cache;
mod cache_follower;
mod catalog;
pub mod clock;
pub mod create_on_push;
pub mod error;
pub mod gc;
mod images;
mod layer_parts;
pub mod lifecycle;
mod manifests;
mod pull_times;
mod stats;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use berth_blobstore::{BlobStore, ByteRange, ByteStream};
use berth_meta::{
    ArchiveStore, BlobLinkStore, ImageStore, ManifestStore, MetaStore, PullTimeStore,
    RepositoryStore,
};
use berth_types::{Digest, RepositoryName};

pub use cache::ServedManifest;
pub use cache_follower::CACHE_FOLLOW_EVERY;
pub use create_on_push::{ImplicitRepositories, RepositoryProvisioner, TemplateProvisioner};
pub use error::{RegistryError, Result};
pub use manifests::{ListPage, PushedManifest};
pub use stats::RegistryStats;
pub use uploads::UploadStatus;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Tunables of the core services.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Entries in each of the tag and manifest caches.
    pub cache_entries: usize,
    /// How often recorded pulls are written to the meta store (ECR's
    /// `lastRecordedPullTime`; see `pull_times.rs`).
    pub pull_time_flush_interval: Duration,
    /// Blob downloads are handed to the blob store's presigned URLs of this lifetime
    /// ([`Registry::blob_redirect`]) where the store has them; `None`: Berth serves them.
    pub blob_redirect: Option<Duration>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            cache_entries: 16_384,
            pull_time_flush_interval: Duration::from_secs(5),
            blob_redirect: None,
        }
    }
}

/// A blob ready to stream.
pub struct BlobBody {
    /// Size of the whole blob.
    pub size: u64,
    /// The range being served, if a range was asked for.
    pub range: Option<ByteRange>,
    pub stream: ByteStream,
}

/// The registry's core services. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    uploads: uploads::Uploads,
    cache: cache::ManifestCache,
    catalogs: catalog::CatalogSnapshots,
    pull_times: Arc<pull_times::PullTimes>,
    /// What a push to a missing repository does (see [`create_on_push`]).
    provisioner: Arc<dyn RepositoryProvisioner>,
    /// Where archived images' bytes go (see [`archive`]); none until installed.
    archive: std::sync::OnceLock<Arc<dyn berth_blobstore::ArchiveTier>>,
    /// Restores running in this process (repository, image).
    activations: parking_lot::Mutex<std::collections::HashSet<(RepositoryName, Digest)>>,
    blob_redirect: Option<Duration>,
}

impl Registry {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        options: RegistryOptions,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                uploads: uploads::Uploads {
                    blobs: blobs.clone(),
                    uploads: meta.clone(),
                    links: meta.clone(),
                    pins: meta.clone(),
                    active: Default::default(),
                },
                cache: cache::ManifestCache::new(options.cache_entries),
                catalogs: Default::default(),
                pull_times: pull_times::PullTimes::new(
                    meta.clone(),
                    options.pull_time_flush_interval,
                ),
                meta,
                blobs,
                provisioner: Arc::new(ImplicitRepositories),
                archive: Default::default(),
                activations: Default::default(),
                blob_redirect: options.blob_redirect,
            }),
        }
    }

    /// A registry whose pushes to missing repositories go through `provisioner` (for
    /// example [`TemplateProvisioner`], ECR's create-on-push).
    pub fn with_provisioner(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        options: RegistryOptions,
        provisioner: Arc<dyn RepositoryProvisioner>,
    ) -> Self {
        let mut registry = Self::new(meta, blobs, options);
        // Nothing else holds the Arc of a registry that was just built.
        if let Some(inner) = Arc::get_mut(&mut registry.inner) {
            inner.provisioner = provisioner;
        }
        registry
    }

    /// The create-on-push hook: every push path calls it before writing (the ECR API's
    /// InitiateLayerUpload and PutImage call it after authorization). `Ok` when the
    /// repository exists or was just created; `RepositoryNotFound` otherwise.
    pub async fn ensure_repository(&self, repo: &RepositoryName) -> Result<()> {
        self.inner.provisioner.ensure_repository(repo).await
    }

    /// The whole store, for this crate's tests; callers take the narrow views below.
    #[cfg(test)]
    pub(crate) fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    // The store's narrow views, for what the edges read directly (ECR's image and
    // repository listings, pull-time settings, layer lookups).
    pub fn repository_store(&self) -> &dyn RepositoryStore {
        &*self.inner.meta
    }
    pub fn link_store(&self) -> &dyn BlobLinkStore {
        &*self.inner.meta
    }
    pub fn manifest_store(&self) -> &dyn ManifestStore {
        &*self.inner.meta
    }
    pub fn image_store(&self) -> &dyn ImageStore {
        &*self.inner.meta
    }
    pub fn pull_time_store(&self) -> &dyn PullTimeStore {
        &*self.inner.meta
    }
    pub fn archive_store(&self) -> &dyn ArchiveStore {
        &*self.inner.meta
    }

    /// Deletes a repository (with `force`, its images too) and drops its cached
    /// manifests and tags. Errors are the meta store's (`RepositoryNotFound`,
    /// `RepositoryNotEmpty`), for the ECR edge to map.
    pub async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> std::result::Result<berth_meta::RepositoryRecord, berth_meta::MetaError> {
        let deleted = self.inner.meta.delete_repository(repo, force).await;
        if deleted.is_ok() {
            self.inner.cache.invalidate_repo(repo);
        }
        deleted
    }

    // ---- blobs ----

    /// Size of a blob visible in the repository.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.inner
            .meta
            .linked_blob(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobNotFound(digest.clone()))
    }

    /// Opens a blob visible in the repository, whole or an inclusive range of it.
    /// `range` is `(start, Some(end))` or `(start, None)` for "to the end"; a suffix
    /// range is `(u64::MAX, Some(n))` meaning the last `n` bytes.
    pub async fn open_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(Option<u64>, Option<u64>)>,
    ) -> Result<BlobBody> {
        let size = match self.inner.meta.linked_blob(repo, digest).await? {
            Some(size) => size,
            None => return Err(self.explain_missing_blob(repo, digest).await),
        };
        let range = match range {
            None => None,
            Some(spec) => Some(resolve_range(spec, size)?),
        };
        let stream = self.inner.blobs.open(digest, range).await?;
        Ok(BlobBody {
            size,
            range,
            stream,
        })
    }

    /// Where a client may download a blob visible in the repository straight from the blob
    /// store (a presigned URL), when redirects are on and the store has the bytes; `None`
    /// otherwise (then [`Registry::open_blob`] serves it, with its errors and archive
    /// handling).
    pub async fn blob_redirect(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<url::Url>> {
        let Some(lifetime) = self.inner.blob_redirect else {
            return Ok(None);
        };
        if self.inner.meta.linked_blob(repo, digest).await?.is_none() {
            return Ok(None);
        }
        // Bytes moved to the archive tier are not in the store: no URL for them.
        if self.inner.blobs.stat(digest).await?.is_none() {
            return Ok(None);
        }
        Ok(self.inner.blobs.presign(digest, lifetime).await?)
    }

    /// Removes the blob from the repository (the bytes go later, with garbage collection).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.inner.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobNotFound(digest.clone()))
        }
    }

    /// Links a blob from `from` into `to`; `None` when `from` does not hold it.
    pub async fn mount_blob(
        &self,
        to: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        self.ensure_repository(to).await?;
        if !self.inner.provisioner.mounts_allowed(to.account()).await? {
            return Ok(None);
        }
        Ok(self.inner.meta.mount_blob(to, from, digest).await?)
    }

    // ---- uploads ----

    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        self.ensure_repository(repo).await?;
        self.inner.uploads.start(repo).await
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        self.inner.uploads.status(repo, id).await
    }

    pub async fn append_upload<S>(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        self.inner.uploads.append(repo, id, start, body).await
    }

    pub async fn complete_upload<S>(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        self.inner
            .uploads
            .complete(repo, id, digest, start, body)
            .await
    }

    pub async fn push_blob<S>(&self, repo: &RepositoryName, digest: &Digest, body: S) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        self.ensure_repository(repo).await?;
        self.inner.uploads.monolithic(repo, digest, body).await
    }

    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.inner.uploads.cancel(repo, id).await
    }

    /// Removes uploads that no node wrote for `max_idle`; returns how many. Safe while
    /// other nodes write the same stores: an upload without a row may be another node's
    /// single-request push, so it too goes only once idle.
    pub async fn expire_uploads(&self, max_idle: Duration) -> Result<usize> {
        self.inner.uploads.expire(max_idle, max_idle).await
    }

    /// At the start of a process that alone writes its blob store (the disk backend, under
    /// its locked data directory) and before it serves: every upload without a row is one
    /// that a crash of this process cut off, and goes at once; rows go by `max_idle`.
    /// Never with a store that other nodes share.
    pub async fn expire_uploads_of_own_crash(&self, max_idle: Duration) -> Result<usize> {
        self.inner.uploads.expire(max_idle, Duration::ZERO).await
    }
}

/// Turns a requested range into an inclusive, satisfiable range of a blob of `size`.
pub fn resolve_range(spec: (Option<u64>, Option<u64>), size: u64) -> Result<ByteRange> {
    let unsatisfiable = |start, end| RegistryError::RangeNotSatisfiable { start, end, size };
    match spec {
        // bytes=-N: the last N bytes.
        (None, Some(n)) => {
            if n == 0 || size == 0 {
                return Err(unsatisfiable(0, 0));
            }
            let n = n.min(size);
            Ok(ByteRange {
                start: size - n,
                end: size - 1,
            })
        }
        (Some(start), end) => {
            if start >= size {
                return Err(unsatisfiable(start, end.unwrap_or(start)));
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            if end < start {
                return Err(unsatisfiable(start, end));
            }
            Ok(ByteRange { start, end })
        }
        (None, None) => Err(unsatisfiable(0, 0)),
    }
}

#[cfg(test)]
mod tests;

/// Repository `name` of the account the crate's tests use.
#[cfg(test)]
pub(crate) fn test_repo(name: &str) -> RepositoryName {
    RepositoryName::new("123456789012".parse().unwrap(), name).unwrap()
}

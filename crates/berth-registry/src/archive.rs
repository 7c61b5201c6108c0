//! The archive storage class (ECR's `UpdateImageStorageClass`): archiving an image moves
//! its blobs' bytes to the archive tier ([`berth_blobstore::ArchiveTier`]); restoring
//! brings them back byte-identical.
//!
//! **Archive** (`ACTIVE` → `ARCHIVED`, synchronous): every blob of the image without an
//! archive copy is copied (compressed, verified) and recorded; then one meta-store
//! transaction marks the image `ARCHIVED` and drops each of its blobs' standard copies that
//! no other non-archived image, pin or push in progress needs (the rule and why it is
//! race-free: `berth_meta::archive`); their bytes are deleted after that transaction, as
//! garbage collection deletes (`berth_meta::gc`). A sweep that removed a copy in between makes the
//! transaction refuse (`CopyMissing`); the copy is made again.
//!
//! **Restore** (`ARCHIVED` → `ACTIVATING` → `ACTIVE`): the status changes at once and the
//! answer is `ACTIVATING`; a background task writes each missing standard copy back (through
//! an ordinary upload of the blob store, digest checked while writing), then one transaction
//! links the blobs into the repository again and marks the image `ACTIVE`. An `ACTIVATING`
//! image counts as needing its blobs, so nothing drops them meanwhile; a restart resumes
//! unfinished restores ([`Registry::archive_maintenance_pass`]).
//!
//! **Pulls**: the manifest cache carries each manifest's status (read with the manifest on
//! a cache miss; every status change invalidates the entry), so a manifest `GET`/`HEAD` of
//! an archived image costs nothing extra and answers [`RegistryError::ImageArchived`]. A
//! blob whose standard copy was dropped is no longer linked; a `GET` of it answers
//! [`RegistryError::BlobArchived`] (a check made only on that miss). A layer an `ACTIVE`
//! image still shares keeps its standard copy and stays readable.

use std::sync::Arc;
use std::time::Duration;

use berth_blobstore::ArchiveTier;
use berth_meta::archive::{ArchiveOutcome, ArchiveSweep, ImageStatus};
use berth_meta::gc::BlobDeleter;
use berth_meta::UploadRecord;
use berth_types::{Digest, RepositoryName};

use crate::error::{RegistryError, Result};
use crate::Registry;

/// Rows per sweep transaction (each holds the write lock while deleting archive copies).
const SWEEP_BATCH: usize = 64;
/// How long a restore waits for a standard copy's deletion in progress to finish.
const RESTORE_WAIT: Duration = Duration::from_secs(10);
/// Attempts at archiving when a concurrent sweep keeps removing a fresh copy.
const ATTEMPTS: usize = 3;

impl Registry {
    /// Installs the archive tier. Without one, archiving answers `Unsupported`.
    pub fn set_archive_tier(&self, tier: Arc<dyn ArchiveTier>) {
        let _ = self.inner.archive.set(tier);
    }

    fn archive_tier(&self) -> Result<&Arc<dyn ArchiveTier>> {
        self.inner.archive.get().ok_or_else(|| {
            RegistryError::Unsupported("this registry has no archive tier configured".into())
        })
    }

    /// Deletes the bytes of standard copies the meta store dropped (recorded as deletions
    /// in progress), outside its transaction, then finishes those deletions. A failed one
    /// stays recorded: a garbage-collection pass retries it once it is old
    /// (`crate::gc::DELETION_LIFETIME`); the blob row stays while archived images reference
    /// it, so the file scan would not take the bytes.
    async fn delete_dropped(&self, dropped: &[Digest]) -> Result<()> {
        let mut gone = Vec::with_capacity(dropped.len());
        for digest in dropped {
            match self.inner.blobs.delete(digest).await {
                Ok(()) => gone.push(digest.clone()),
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "could not drop the standard copy of an archived blob")
                }
            }
        }
        if !gone.is_empty() {
            self.inner.meta.gc_finish_deletions(&gone).await?;
        }
        Ok(())
    }

    fn copy_deleter(&self) -> Result<BlobDeleter> {
        let tier = self.archive_tier()?.clone();
        let runtime = tokio::runtime::Handle::current();
        Ok(Arc::new(move |d: &Digest| {
            runtime.block_on(tier.delete(d)).map_err(|e| e.to_string())
        }))
    }

    /// Moves an image to the archive (`ACTIVE` → `ARCHIVED`); see the module doc. The
    /// lifecycle `transition` action calls this too. Errors: `ManifestNotFound`,
    /// `StorageClassUnchanged` (not `ACTIVE`), `Unsupported` (no archive tier).
    pub async fn archive_image(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let tier = self.archive_tier()?.clone();
        let not_found = || RegistryError::ManifestNotFound(digest.to_string());
        for _ in 0..ATTEMPTS {
            let state = self
                .inner
                .meta
                .image_storage(repo, std::slice::from_ref(digest))
                .await?
                .pop()
                .flatten()
                .ok_or_else(not_found)?;
            if state.status != ImageStatus::Active {
                return Err(unchanged(digest, state.status, ImageStatus::Archived));
            }
            let blobs = self
                .inner
                .meta
                .image_blobs(repo, digest)
                .await?
                .ok_or_else(not_found)?;
            let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
            let copied = self.inner.meta.archived_copies(&digests).await?;
            for (blob, has) in blobs.iter().zip(copied) {
                if has {
                    continue;
                }
                let stored = tier
                    .archive(self.inner.blobs.clone(), &blob.digest, blob.size)
                    .await?;
                self.inner
                    .meta
                    .record_archive_copy(&blob.digest, blob.size, stored, crate::now_ms())
                    .await?;
            }
            let outcome = self
                .inner
                .meta
                .archive_image(repo, digest, crate::clock::now_ms())
                .await?;
            match outcome {
                ArchiveOutcome::Archived { dropped } => {
                    self.delete_dropped(&dropped).await?;
                    self.inner.cache.invalidate(repo, None, Some(digest));
                    tracing::info!(repository = %repo, %digest, dropped = dropped.len(), "image archived");
                    return Ok(());
                }
                ArchiveOutcome::CopyMissing(_) => continue,
                ArchiveOutcome::NotFound => return Err(not_found()),
                ArchiveOutcome::NotActive(status) => {
                    return Err(unchanged(digest, status, ImageStatus::Archived))
                }
            }
        }
        Err(RegistryError::Internal(
            format!("archive copies of {digest} kept disappearing; try again").into(),
        ))
    }

    /// [`Registry::archive_image`] for the lifecycle `transition` action: an image that is
    /// no longer `ACTIVE` or was deleted since the evaluation is not an error (`false`).
    pub async fn archive_if_active(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        match self.archive_image(repo, digest).await {
            Ok(()) => Ok(true),
            Err(RegistryError::StorageClassUnchanged(_) | RegistryError::ManifestNotFound(_)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts restoring an archived image (`ARCHIVED` → `ACTIVATING`); the blobs come back
    /// in the background, then the image is `ACTIVE`. Returns the status now: `ACTIVATING`
    /// (also when a restore was already under way). Errors: `ManifestNotFound`,
    /// `StorageClassUnchanged` (already `ACTIVE`), `Unsupported` (no archive tier).
    pub async fn restore_image(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<ImageStatus> {
        self.archive_tier()?;
        match self.inner.meta.begin_activation(repo, digest).await? {
            None => Err(RegistryError::ManifestNotFound(digest.to_string())),
            Some(ImageStatus::Active) => {
                Err(unchanged(digest, ImageStatus::Active, ImageStatus::Active))
            }
            Some(_) => {
                self.inner.cache.invalidate(repo, None, Some(digest));
                self.spawn_activation(repo.clone(), digest.clone());
                Ok(ImageStatus::Activating)
            }
        }
    }

    /// Runs one restore in the background unless this process already runs it.
    fn spawn_activation(&self, repo: RepositoryName, digest: Digest) {
        let key = (repo.clone(), digest.clone());
        if !self.inner.activations.lock().insert(key.clone()) {
            return;
        }
        let registry = self.clone();
        tokio::spawn(async move {
            let result = registry.activate(&repo, &digest).await;
            registry.inner.activations.lock().remove(&key);
            match result {
                Ok(()) => {
                    tracing::info!(repository = %repo, %digest, "image restored from the archive")
                }
                // It stays ACTIVATING; the next maintenance round (or a restart) retries.
                Err(e) => {
                    tracing::error!(repository = %repo, %digest, error = %e, "restoring an image from the archive failed")
                }
            }
        });
    }

    /// Writes back every missing standard copy of the image, then marks it `ACTIVE`.
    async fn activate(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let tier = self.archive_tier()?.clone();
        let Some(blobs) = self.inner.meta.image_blobs(repo, digest).await? else {
            return Ok(()); // deleted meanwhile
        };
        // A standard copy dropped just before the restore began may still be being
        // deleted: wait until it is gone, or its deletion could remove the copy written
        // back. No new drop can start (an ACTIVATING image holds its blobs).
        let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
        let mut waited = Duration::ZERO;
        loop {
            let pending = self.inner.meta.gc_deletions_in_progress(&digests).await?;
            if pending.is_empty() {
                break;
            }
            if waited >= RESTORE_WAIT {
                // Left by a process that died; a garbage-collection pass finishes it, and
                // the next maintenance round retries this restore.
                return Err(RegistryError::Internal(
                    format!(
                        "blob {} is still being deleted; the restore is retried later",
                        pending[0]
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
        for blob in blobs {
            if self.inner.blobs.stat(&blob.digest).await?.is_some() {
                continue;
            }
            // An upload row keeps the upload sweeper away from the file while it is written.
            let id = format!("restore-{}", uuid::Uuid::new_v4().simple());
            let now = crate::now_ms();
            self.inner
                .meta
                .create_upload(&UploadRecord {
                    id: id.clone(),
                    repository: repo.clone(),
                    started_ms: now,
                    updated_ms: now,
                })
                .await?;
            let restored = tier
                .restore(self.inner.blobs.clone(), &blob.digest, blob.size, &id)
                .await;
            self.inner.meta.delete_upload(&id).await?;
            restored?;
        }
        let done = self
            .inner
            .meta
            .finish_activation(repo, digest, crate::clock::now_ms())
            .await?;
        self.inner.cache.invalidate(repo, None, Some(digest));
        if !done {
            tracing::debug!(repository = %repo, %digest, "restore finished for an image no longer activating");
        }
        Ok(())
    }

    /// Resumes restores left `ACTIVATING` (by a restart or a failure).
    pub async fn resume_activations(&self) -> Result<usize> {
        self.archive_tier()?;
        let pending = self.inner.meta.activating_images().await?;
        let n = pending.len();
        for (repo, digest) in pending {
            self.spawn_activation(repo, digest);
        }
        Ok(n)
    }

    /// Drops standard copies nothing needs any more and deletes archive copies no
    /// archived image needs (see `berth_meta::ArchiveStore::archive_sweep`), in batches.
    pub async fn sweep_archive(&self) -> Result<ArchiveSweep> {
        let copies = self.copy_deleter()?;
        let mut total = ArchiveSweep::default();
        loop {
            let page = self
                .inner
                .meta
                .archive_sweep(SWEEP_BATCH, copies.clone())
                .await?;
            self.delete_dropped(&page.standard_dropped).await?;
            let more = page.standard_dropped.len() == SWEEP_BATCH
                || page.copies_deleted.len() == SWEEP_BATCH;
            total.standard_dropped.extend(page.standard_dropped);
            total.copies_deleted.extend(page.copies_deleted);
            if !more {
                return Ok(total);
            }
        }
    }

    /// Whether an archive tier is installed (else there is nothing to maintain).
    pub fn has_archive_tier(&self) -> bool {
        self.archive_tier().is_ok()
    }

    /// Removes the temporary files a crash left in the archive tier; `berth serve` calls it
    /// at start, before any archiving of its own begins.
    pub async fn remove_archive_leftovers(&self) {
        let Ok(tier) = self.archive_tier() else {
            return;
        };
        match tier.remove_leftovers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed temporary archive files a crash left"),
            Err(e) => tracing::warn!(error = %e, "could not remove leftover archive files"),
        }
    }

    /// One pass of the archive's upkeep (`berth serve` runs it on start and every 10
    /// minutes, on one node of the cluster at a time): retries unfinished restores, then
    /// sweeps ([`Registry::sweep_archive`]). Nothing to do without an archive tier.
    pub async fn archive_maintenance_pass(&self) -> Result<()> {
        if !self.has_archive_tier() {
            return Ok(());
        }
        if let Err(e) = self.resume_activations().await {
            tracing::warn!(error = %e, "resuming restores from the archive failed");
        }
        let s = self.sweep_archive().await?;
        if s != ArchiveSweep::default() {
            tracing::info!(
                standard_dropped = s.standard_dropped.len(),
                copies_deleted = s.copies_deleted.len(),
                "archive sweep"
            );
        }
        Ok(())
    }

    /// A pull of `digest`'s bytes found no link: say so clearly when the reason is that
    /// its images in this repository are archived.
    pub(crate) async fn explain_missing_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryError {
        match self.inner.meta.blob_archived_in(repo, digest).await {
            Ok(true) => RegistryError::BlobArchived(digest.clone()),
            _ => RegistryError::BlobNotFound(digest.clone()),
        }
    }
}

/// A transition the image's status does not allow.
fn unchanged(digest: &Digest, status: ImageStatus, target: ImageStatus) -> RegistryError {
    let why = match (status, target) {
        (ImageStatus::Archived, _) => "it is already archived",
        (ImageStatus::Activating, _) => "it is being restored from the archive",
        (ImageStatus::Active, _) => "it is already in the STANDARD storage class",
    };
    RegistryError::StorageClassUnchanged(format!(
        "The storage class of image '{digest}' cannot be changed: {why}"
    ))
}

#[cfg(test)]
mod tests;

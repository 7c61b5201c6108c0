//! Blob uploads: start, append (hashing and writing each buffer once, on a blocking
//! thread), status, complete with digest verification, cancel, and expiry.
//!
//! The running hash of an upload is saved with the upload by the blob store's sink, so
//! any process (this one after a restart, or another node) continues a chunked upload
//! where it stopped without reading its bytes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::Mutex as AsyncMutex;

use berth_blobstore::{BlobStore, Written};
use berth_meta::{BlobLinkStore, GcStore, UploadRecord, UploadStore};
use berth_types::{Algorithm, Digest, RepositoryName};

use crate::error::{RegistryError, Result};
use crate::now_ms;

/// Buffers handed to the blob store's sink are coalesced up to this size.
const WRITE_BATCH: usize = 256 * 1024;
/// How often an active upload's `updated` time is written to the meta store.
const TOUCH_EVERY_MS: i64 = 60_000;
/// A request body that sends nothing for this long is cut off (its bytes so far are kept).
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write waits for another request writing to the same upload.
const UPLOAD_BUSY_WAIT: Duration = Duration::from_secs(30);
/// How long a commit waits for garbage collection to finish deleting the same digest's
/// bytes, and how often it asks again.
const PIN_WAIT: Duration = Duration::from_secs(10);
const PIN_RETRY: Duration = Duration::from_millis(50);

/// What this process remembers of an upload between requests (a cache: the meta store
/// and the blob store hold the facts).
#[derive(Default)]
pub(crate) struct Slot {
    repository: Option<RepositoryName>,
    last_touch_ms: i64,
}

/// Uploads active in this process, each behind its own lock so that concurrent
/// requests on one upload are serialised.
#[derive(Default)]
pub(crate) struct ActiveUploads {
    slots: parking_lot::Mutex<HashMap<String, Arc<AsyncMutex<Slot>>>>,
}

impl ActiveUploads {
    pub(crate) fn slot(&self, id: &str) -> Arc<AsyncMutex<Slot>> {
        self.slots.lock().entry(id.to_string()).or_default().clone()
    }
    pub(crate) fn forget(&self, id: &str) {
        self.slots.lock().remove(id);
    }
    /// How many uploads this process has open.
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().len()
    }
    /// True while a request is working on the upload (its slot is locked).
    pub(crate) fn is_busy(&self, id: &str) -> bool {
        self.slots
            .lock()
            .get(id)
            .is_some_and(|slot| slot.try_lock().is_err())
    }
}

/// Where an upload stands, as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

pub(crate) struct Uploads {
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) uploads: Arc<dyn UploadStore>,
    pub(crate) links: Arc<dyn BlobLinkStore>,
    /// Commit pins (garbage collection's side of a commit).
    pub(crate) pins: Arc<dyn GcStore>,
    pub(crate) active: ActiveUploads,
}

/// Streams `body` into the upload's sink, which hashes each buffer as it writes it.
/// Returns what the upload then holds, plus the body's error if it broke off.
async fn pump<S>(
    blobs: &dyn BlobStore,
    id: &str,
    offset: u64,
    algorithm: Algorithm,
    body: S,
) -> Result<(Written, Option<std::io::Error>)>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send,
{
    let mut sink = blobs.upload_sink(id, offset, algorithm).await?;
    let mut body = std::pin::pin!(body);
    // Batches of the request's own buffers (no copy).
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut body_error = None;
    let mut failure = None;
    loop {
        let next = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.next()).await {
            Ok(n) => n,
            Err(_) => Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client sent nothing for too long",
            ))),
        };
        match next {
            Some(Ok(chunk)) => {
                batch_bytes += chunk.len();
                batch.push(chunk);
                if batch_bytes >= WRITE_BATCH {
                    batch_bytes = 0;
                    if let Err(e) = sink.write(std::mem::take(&mut batch)).await {
                        failure = Some(e);
                        break;
                    }
                }
            }
            Some(Err(e)) => {
                body_error = Some(e);
                break;
            }
            None => break,
        }
    }
    if failure.is_none() && !batch.is_empty() {
        if let Err(e) = sink.write(batch).await {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        // Storage refused the write: give back what this request wrote, so a refused
        // chunk leaves the upload exactly as it was and can be retried.
        if let Err(undo) = sink.abort().await {
            tracing::error!(upload = id, error = %undo, "could not undo a refused write");
        }
        return Err(e.into());
    }
    let written = sink.finish().await?;
    Ok((written, body_error))
}

impl Uploads {
    pub(crate) async fn start(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        // The upload exists without a row for a moment: its fresh store time keeps every
        // node's sweep off it, and the slot this process's.
        let slot_arc = self.active.slot(&id);
        let mut slot = slot_arc.lock().await;
        self.blobs.create_upload(&id).await?;
        let created = self
            .uploads
            .create_upload(&UploadRecord {
                id: id.clone(),
                repository: repo.clone(),
                started_ms: now,
                updated_ms: now,
            })
            .await;
        if let Err(e) = created {
            drop(slot);
            self.active.forget(&id);
            let _ = self.blobs.abort_upload(&id).await;
            return Err(e.into());
        }
        slot.repository = Some(repo.clone());
        slot.last_touch_ms = now;
        Ok(UploadStatus { id, offset: 0 })
    }

    /// Checks that the upload exists and belongs to `repo`; returns the store size.
    async fn check(&self, slot: &mut Slot, id: &str, repo: &RepositoryName) -> Result<u64> {
        if slot.repository.as_ref() != Some(repo) {
            let rec = self
                .uploads
                .get_upload(id)
                .await?
                .ok_or_else(|| RegistryError::UploadNotFound(id.to_string()))?;
            if rec.repository != *repo {
                return Err(RegistryError::UploadNotFound(id.to_string()));
            }
            slot.repository = Some(rec.repository);
            slot.last_touch_ms = rec.updated_ms;
        }
        self.blobs
            .upload_size(id)
            .await?
            .ok_or_else(|| RegistryError::UploadNotFound(id.to_string()))
    }

    /// Where an upload stands. Takes no lock, so it answers even while another request
    /// is writing to the upload (the offset then includes what has arrived so far).
    pub(crate) async fn status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        self.owned(repo, id).await?;
        let offset = self
            .blobs
            .upload_size(id)
            .await?
            .ok_or_else(|| RegistryError::UploadNotFound(id.to_string()))?;
        Ok(UploadStatus {
            id: id.to_string(),
            offset,
        })
    }

    /// Checks in the meta store that the upload exists and belongs to `repo`.
    async fn owned(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        match self.uploads.get_upload(id).await? {
            Some(rec) if rec.repository == *repo => Ok(()),
            _ => Err(RegistryError::UploadNotFound(id.to_string())),
        }
    }

    /// Locks the upload's slot, waiting a bounded time for another writer.
    async fn lock_slot(&self, id: &str) -> Result<tokio::sync::OwnedMutexGuard<Slot>> {
        let slot = self.active.slot(id);
        match tokio::time::timeout(UPLOAD_BUSY_WAIT, slot.lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => Err(RegistryError::UploadInvalid(
                "another request is still writing to this upload".into(),
            )),
        }
    }

    /// Takes the upload's lock, checks ownership and the chunk's start offset, and
    /// returns the upload's size.
    async fn begin_write(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
    ) -> Result<(tokio::sync::OwnedMutexGuard<Slot>, u64)> {
        let mut slot = self.lock_slot(id).await?;
        let size = match self.check(&mut slot, id, repo).await {
            Ok(s) => s,
            Err(e) => {
                drop(slot);
                self.active.forget(id);
                return Err(e);
            }
        };
        if let Some(start) = start {
            if start != size {
                return Err(RegistryError::UploadOutOfOrder {
                    requested: start,
                    current: size,
                });
            }
        }
        Ok((slot, size))
    }

    /// Appends a chunk. `start` is the offset the client says the chunk begins at
    /// (from `Content-Range`), if it said.
    pub(crate) async fn append<S>(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let (mut slot, size) = self.begin_write(repo, id, start).await?;
        let (written, body_error) =
            pump(self.blobs.as_ref(), id, size, Algorithm::Sha256, body).await?;
        let offset = written.size;
        let now = now_ms();
        if now - slot.last_touch_ms > TOUCH_EVERY_MS {
            self.uploads.touch_upload(id, now).await?;
            slot.last_touch_ms = now;
        }
        if let Some(e) = body_error {
            return Err(RegistryError::UploadInvalid(format!(
                "request body broke off after {offset} bytes: {e}"
            )));
        }
        Ok(UploadStatus {
            id: id.to_string(),
            offset,
        })
    }

    /// Appends a final chunk (possibly empty), verifies the digest and commits the blob.
    pub(crate) async fn complete<S>(
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
        let (slot, size) = self.begin_write(repo, id, start).await?;
        let (written, body_error) =
            pump(self.blobs.as_ref(), id, size, digest.algorithm(), body).await?;
        if let Some(e) = body_error {
            return Err(RegistryError::UploadInvalid(format!(
                "request body broke off: {e}"
            )));
        }
        let size = written.size;
        let actual = written.hasher.finish();
        if &actual != digest {
            drop(slot);
            self.active.forget(id);
            self.blobs.abort_upload(id).await?;
            self.uploads.delete_upload(id).await?;
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.commit(repo, id, digest, size).await?;
        drop(slot);
        self.active.forget(id);
        Ok(size)
    }

    /// Moves the verified upload `id` into place as blob `digest` and records it in
    /// `repo`, safely against garbage collection deleting the same digest meanwhile:
    ///
    /// 1. pin the digest on behalf of the upload (from here collection leaves it be, and a
    ///    deletion that won the race has already removed the bytes);
    /// 2. move the upload into place, or drop it if the blob file exists: that file is
    ///    pinned, so it stays;
    /// 3. record the blob and link it in one transaction, which also drops the pin: the
    ///    link holds the blob from then on;
    /// 4. check that the bytes are there. Steps 1–3 make this always true while the link
    ///    lasts; it guards against a pin expired by a commit stalled for longer than
    ///    collection keeps pins. Should it fail, the client's retry moves its upload into
    ///    the empty place. (With a grace period shorter than the commit, collection may
    ///    legitimately take the unused link and the bytes already: that is not an error.)
    async fn commit(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.pin(id, digest).await?;
        let recorded = async {
            self.blobs.commit_upload(id, digest).await?;
            // For a monolithic push there is no upload row; the id still names the pin.
            self.links.commit_blob(repo, digest, size, Some(id)).await?;
            Ok::<_, RegistryError>(())
        }
        .await;
        if let Err(e) = recorded {
            if let Err(unpin) = self.pins.unpin_blob(id).await {
                tracing::warn!(upload = id, error = %unpin, "could not unpin a failed commit (it expires)");
            }
            return Err(e);
        }
        match self.blobs.stat(digest).await? {
            Some(stored) if stored == size => Ok(()),
            // Collection with a grace shorter than this commit took may already have
            // dropped the fresh link and then the bytes: the blob is simply gone again, as
            // any unreferenced blob goes, and a manifest naming it is refused as unknown.
            None if self.links.linked_blob(repo, digest).await?.is_none() => {
                tracing::debug!(%digest, "a committed blob was collected before any manifest used it");
                Ok(())
            }
            stored => Err(RegistryError::Internal(
                format!("blob {digest} was recorded but its bytes are missing or differ ({stored:?} bytes, not {size}); upload it again").into(),
            )),
        }
    }

    /// Pins `digest` for the commit `id`, waiting while garbage collection deletes the
    /// same digest's bytes (it takes a moment; only a collector that died meanwhile makes
    /// it last, until a later pass finishes its deletion).
    async fn pin(&self, id: &str, digest: &Digest) -> Result<()> {
        let mut waited = Duration::ZERO;
        loop {
            match self.pins.pin_blob(id, digest, now_ms()).await {
                Err(berth_meta::MetaError::BlobBeingDeleted(_)) if waited < PIN_WAIT => {
                    tokio::time::sleep(PIN_RETRY).await;
                    waited += PIN_RETRY;
                }
                other => return Ok(other?),
            }
        }
    }

    /// A whole blob in one request, never registered as an upload row (no write on the
    /// hot path): while it is written the store's modification time keeps every node's
    /// sweep off it, and if the process dies midway the orphaned upload is swept by
    /// [`Uploads::expire`] once idle.
    pub(crate) async fn monolithic<S>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        body: S,
    ) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let id = uuid::Uuid::new_v4().to_string();
        let slot_arc = self.active.slot(&id);
        let _guard = slot_arc.lock().await;
        let result = async {
            self.blobs.create_upload(&id).await?;
            let (written, body_error) =
                pump(self.blobs.as_ref(), &id, 0, digest.algorithm(), body).await?;
            if let Some(e) = body_error {
                return Err(RegistryError::UploadInvalid(format!(
                    "request body broke off: {e}"
                )));
            }
            let actual = written.hasher.finish();
            if &actual != digest {
                return Err(RegistryError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            self.commit(repo, &id, digest, written.size).await?;
            Ok(written.size)
        }
        .await;
        if result.is_err() {
            let _ = self.blobs.abort_upload(&id).await;
        }
        self.active.forget(&id);
        result
    }

    /// Cancels an upload. Takes no lock (a stalled writer cannot block it) and deletes
    /// the bytes before the row, so it frees space even when the disk is full.
    pub(crate) async fn cancel(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.owned(repo, id).await?;
        self.blobs.abort_upload(id).await?;
        self.active.forget(id);
        self.uploads.delete_upload(id).await?;
        Ok(())
    }

    /// Deletes uploads idle for longer than `max_idle`: rows whose upload was neither
    /// touched nor written within it, and store uploads that no row owns and that nobody
    /// wrote within `rowless_idle` (`max_idle`, or zero at the start of a process that
    /// alone writes its store). Returns how many went.
    ///
    /// Every node sweeps the same shared stores, and a node knows only its own requests,
    /// so "in progress" is decided from what every node sees: the row's `updated` time and
    /// the store's own time of the upload's last write. An upload without a row (being
    /// created, or a single-request push, which never has one) is young while any node
    /// writes it. The bound: a single request that writes for longer than `max_idle`
    /// without finishing may lose its upload to another node's sweep.
    pub(crate) async fn expire(&self, max_idle: Duration, rowless_idle: Duration) -> Result<usize> {
        let before = now_ms() - max_idle.as_millis() as i64;
        let rowless_before = now_ms() - rowless_idle.as_millis() as i64;
        let mut in_store: HashMap<String, i64> = self
            .blobs
            .list_uploads()
            .await?
            .into_iter()
            .map(|u| (u.id, u.modified_ms))
            .collect();
        let mut removed = 0;
        for id in self.uploads.stale_uploads(before).await? {
            // A chunk finished lately (on any node) counts as activity: rows are touched
            // only every `TOUCH_EVERY_MS`.
            let written_lately = in_store.get(&id).is_some_and(|&at| at >= before);
            if written_lately || self.active.is_busy(&id) {
                continue;
            }
            self.active.forget(&id);
            self.blobs.abort_upload(&id).await?;
            self.uploads.delete_upload(&id).await?;
            in_store.remove(&id);
            removed += 1;
        }
        for (id, modified_ms) in in_store {
            if modified_ms >= rowless_before || self.active.is_busy(&id) {
                continue;
            }
            if self.uploads.get_upload(&id).await?.is_none() && !self.active.is_busy(&id) {
                self.blobs.abort_upload(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

//! The blob phase of `berth migrate`: every blob the source's metadata records is copied
//! into the target's blob store through the store's ordinary upload path, streaming (one
//! chunk in memory at a time) and hashing as it goes; the upload becomes the blob only
//! if its bytes hash to the digest. A blob the target already has is re-read and hashed
//! first, and kept only if it verifies, so a run interrupted at any point resumes by
//! copying only what is missing.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;

use berth_blobstore::BlobStore;
use berth_types::Digest;

use crate::migrate_progress::Progress;

/// Upload ids of this command (`migrate-<pid>-<n>`): an interrupted run's leftovers are
/// recognized by the prefix and removed by the next run.
const UPLOAD_PREFIX: &str = "migrate-";

/// Chunks gathered before one write to the target (fewer round trips, bounded memory).
const WRITE_BATCH: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct BlobReport {
    /// Blobs the source's metadata records.
    pub blobs: u64,
    /// Blobs copied by this run, and their bytes.
    pub copied: u64,
    pub bytes_copied: u64,
    /// Blobs the target already held and that verified (a previous, interrupted run).
    pub already_present: u64,
    /// Blobs in the target that did not verify and were copied again.
    pub replaced_corrupt: u64,
    /// Blobs whose only copy is in the archive tier (copied with the archive directory).
    pub archive_only: u64,
    /// Every blob's bytes (copied or verified in place).
    pub bytes: u64,
}

/// Copies `blobs` (digest, size) from `src` to `dst`. `archive_only` are digests whose
/// standard copy was dropped by archiving: absent from `src` on purpose.
pub async fn copy_all(
    src: &Arc<dyn BlobStore>,
    dst: &Arc<dyn BlobStore>,
    blobs: &[(Digest, u64)],
    archive_only: &HashSet<Digest>,
) -> anyhow::Result<BlobReport> {
    remove_leftover_uploads(dst).await?;
    let total_bytes = blobs.iter().map(|b| b.1).sum();
    let mut progress = Progress::start("blobs", blobs.len() as u64, Some(total_bytes));
    let mut report = BlobReport {
        blobs: blobs.len() as u64,
        ..BlobReport::default()
    };
    for (n, (digest, size)) in blobs.iter().enumerate() {
        let in_source = src
            .stat(digest)
            .await
            .with_context(|| format!("reading blob {digest} in the source"))?;
        if in_source.is_none() && archive_only.contains(digest) {
            report.archive_only += 1;
            progress.bytes(*size);
            progress.items(1);
            continue;
        }
        if dst
            .stat(digest)
            .await
            .with_context(|| format!("reading blob {digest} in the target"))?
            == Some(*size)
        {
            if verify(dst, digest, *size, &mut progress).await? {
                report.already_present += 1;
                report.bytes += size;
                progress.items(1);
                continue;
            }
            tracing::warn!(%digest, "the target's copy does not verify; copying it again");
            dst.delete(digest).await?;
            report.replaced_corrupt += 1;
        }
        let Some(found) = in_source else {
            bail!(
                "blob {digest} is recorded in the source's metadata but its bytes are missing \
                 from the source's blob store; nothing was written to the target's metadata"
            );
        };
        if found != *size {
            bail!("blob {digest} in the source has {found} bytes, its metadata says {size}");
        }
        copy_one(src, dst, digest, *size, n, &mut progress).await?;
        tracing::info!(%digest, size, "copied blob");
        report.copied += 1;
        report.bytes_copied += size;
        report.bytes += size;
        progress.items(1);
    }
    progress.finish();
    Ok(report)
}

/// Streams `digest` from `src` into a new upload of `dst`, hashing as it writes; commits
/// it as the blob only if the bytes hash to `digest` and have the expected size.
async fn copy_one(
    src: &Arc<dyn BlobStore>,
    dst: &Arc<dyn BlobStore>,
    digest: &Digest,
    size: u64,
    n: usize,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let id = format!("{UPLOAD_PREFIX}{}-{n}", std::process::id());
    dst.create_upload(&id)
        .await
        .context("starting an upload in the target")?;
    let mut sink = dst
        .upload_sink(&id, 0, digest.algorithm())
        .await
        .context("opening an upload in the target")?;
    let mut stream = src
        .open(digest, None)
        .await
        .with_context(|| format!("reading blob {digest} from the source"))?;
    if let Err(e) = pump(&mut stream, sink.as_mut(), digest, progress).await {
        let _ = sink.abort().await;
        let _ = dst.abort_upload(&id).await;
        return Err(e);
    }
    let written = sink.finish().await.context("writing to the target")?;
    let actual = written.hasher.finish();
    if actual != *digest || written.size != size {
        let _ = dst.abort_upload(&id).await;
        bail!(
            "blob {digest} in the source is damaged: its {} bytes hash to {actual}; \
             nothing was written to the target's metadata",
            written.size
        );
    }
    dst.commit_upload(&id, digest)
        .await
        .with_context(|| format!("storing blob {digest} in the target"))?;
    Ok(())
}

/// Writes the whole stream into the sink, a batch of up to [`WRITE_BATCH`] at a time.
async fn pump(
    stream: &mut berth_blobstore::ByteStream,
    sink: &mut dyn berth_blobstore::UploadSink,
    digest: &Digest,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading blob {digest} from the source"))?;
        pending_len += chunk.len();
        progress.bytes(chunk.len() as u64);
        pending.push(chunk);
        if pending_len >= WRITE_BATCH {
            pending_len = 0;
            sink.write(std::mem::take(&mut pending))
                .await
                .context("writing to the target")?;
        }
    }
    if !pending.is_empty() {
        sink.write(pending).await.context("writing to the target")?;
    }
    Ok(())
}

/// Whether the target's copy of `digest` has `size` bytes hashing to `digest`.
async fn verify(
    dst: &Arc<dyn BlobStore>,
    digest: &Digest,
    size: u64,
    progress: &mut Progress,
) -> anyhow::Result<bool> {
    let mut stream = dst
        .open(digest, None)
        .await
        .with_context(|| format!("reading blob {digest} in the target"))?;
    let mut hasher = digest.algorithm().hasher();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading blob {digest} in the target"))?;
        len += chunk.len() as u64;
        progress.bytes(chunk.len() as u64);
        hasher.update(&chunk);
    }
    Ok(len == size && hasher.finish() == *digest)
}

/// Deletes uploads an interrupted run of this command left in the target.
async fn remove_leftover_uploads(dst: &Arc<dyn BlobStore>) -> anyhow::Result<()> {
    let uploads = dst
        .list_uploads()
        .await
        .context("listing uploads in the target")?;
    for u in uploads.iter().filter(|u| u.id.starts_with(UPLOAD_PREFIX)) {
        dst.abort_upload(&u.id)
            .await
            .context("removing an interrupted run's upload from the target")?;
        tracing::info!(id = %u.id, "removed an interrupted migration's upload");
    }
    Ok(())
}

//! The local-disk backend.
//!
//! Layout under the root directory:
//! ```text
//! blobs/<algorithm>/<first two hex chars>/<hex>   committed blobs, immutable
//! uploads/<upload id>                             uploads in progress, append-only
//! ```
//! A commit fsyncs the upload file, renames it into `blobs/` (atomic on one file system)
//! and fsyncs the target directory, so a blob is either wholly present or absent after
//! any crash. The caller verifies the digest before committing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use futures::stream;

use berth_types::Digest;

use crate::{BlobInfo, BlobStore, BlobStoreError, ByteRange, ByteStream, Result, UploadSink};

/// Chunk size when streaming blobs out; small enough that hundreds of concurrent
/// readers stay within a few tens of MiB.
const READ_CHUNK: usize = 128 * 1024;

#[derive(Debug, Clone)]
pub struct DiskBlobStore {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    blobs: PathBuf,
    uploads: PathBuf,
    fsync: bool,
}

/// Options of the disk backend.
#[derive(Debug, Clone, Copy)]
pub struct DiskOptions {
    /// Fsync each blob and its directory before a commit returns (survives power loss).
    /// Without it a commit survives a process crash but not a power loss.
    pub fsync: bool,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions { fsync: true }
    }
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobStoreError::Io(io::Error::other(e)))?
}

impl DiskBlobStore {
    /// Opens (creating if needed) a store rooted at `root`, fsyncing on commit.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, DiskOptions::default())
    }

    pub fn open_with(root: impl AsRef<Path>, options: DiskOptions) -> Result<Self> {
        let root = root.as_ref();
        let blobs = root.join("blobs");
        let uploads = root.join("uploads");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&uploads)?;
        Ok(DiskBlobStore {
            inner: Arc::new(Paths {
                blobs,
                uploads,
                fsync: options.fsync,
            }),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.inner
            .blobs
            .join(d.algorithm().as_str())
            .join(d.hex_prefix(2))
            .join(d.hex())
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf> {
        if !valid_upload_id(id) {
            return Err(BlobStoreError::UploadNotFound(id.to_string()));
        }
        Ok(self.inner.uploads.join(id))
    }
}

fn modified_ms(m: &fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Names in `dir` in byte order (missing directory: none).
fn sorted_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                if let Ok(name) = e?.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    Ok(names)
}

/// Walks `blobs/<alg>/<xx>/<hex>` in digest-text order, reading only the directories
/// at or after `after`'s, until `limit` blobs are found. Files that are not a valid
/// digest of their directory (stray temporary files) are skipped.
fn list_blob_files(root: &Path, after: Option<&Digest>, limit: usize) -> io::Result<Vec<BlobInfo>> {
    let after_text = after.map(|d| d.to_string()).unwrap_or_default();
    let mut out = Vec::new();
    for alg in sorted_names(root)? {
        if limit == out.len() {
            break;
        }
        if after.is_some_and(|a| alg.as_str() < a.algorithm().as_str()) {
            continue;
        }
        let alg_dir = root.join(&alg);
        for prefix in sorted_names(&alg_dir)? {
            if limit == out.len() {
                break;
            }
            if after
                .is_some_and(|a| alg == a.algorithm().as_str() && prefix.as_str() < a.hex_prefix(2))
            {
                continue;
            }
            let dir = alg_dir.join(&prefix);
            for hex in sorted_names(&dir)? {
                let text = format!("{alg}:{hex}");
                if text <= after_text {
                    continue;
                }
                let Ok(digest) = text.parse::<Digest>() else {
                    continue;
                };
                if !hex.starts_with(&prefix) {
                    continue;
                }
                let meta = match fs::metadata(dir.join(&hex)) {
                    Ok(m) => m,
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.push(BlobInfo {
                    digest,
                    size: meta.len(),
                    modified_ms: modified_ms(&meta),
                });
                if limit == out.len() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn file_stream(file: File, remaining: u64) -> ByteStream {
    // Each chunk is read on a blocking thread; at most one chunk per reader is in memory.
    let s = stream::try_unfold((file, remaining), |(f, rem)| async move {
        if rem == 0 {
            return Ok(None);
        }
        let want = rem.min(READ_CHUNK as u64) as usize;
        let (f, buf) = tokio::task::spawn_blocking(move || -> io::Result<(File, Bytes)> {
            let mut f = f;
            let mut buf = BytesMut::zeroed(want);
            f.read_exact(&mut buf)?;
            Ok((f, buf.freeze()))
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some((buf, (f, rem - want as u64))))
    });
    Box::pin(s)
}

/// Most slices handed to one `writev` (well under the kernel's IOV_MAX).
const MAX_IOVECS: usize = 256;

struct DiskSink {
    file: File,
    start: u64,
    size: u64,
    /// With fsync on, writeback of what has been written is started as it streams in
    /// (`sync_file_range`), so the fsync at commit has little left to do.
    early_writeback: bool,
    /// Bytes written since writeback was last started.
    unflushed: u64,
}

/// Start writeback every this many bytes.
const WRITEBACK_EVERY: u64 = 1 << 20;

impl DiskSink {
    fn note_written(&mut self, n: u64) {
        self.size += n;
        self.unflushed += n;
        if self.early_writeback && self.unflushed >= WRITEBACK_EVERY {
            use std::os::fd::AsRawFd;
            let from = (self.size - self.unflushed) as libc::off64_t;
            // Advisory: failure only means the fsync at commit does all the work.
            // SAFETY: a valid open descriptor and a byte range within the file. No safe
            // wrapper exists in std; nix/rustix would add a dependency for one call.
            #[allow(unsafe_code)]
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from,
                    self.unflushed as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.unflushed = 0;
        }
    }
}

impl UploadSink for DiskSink {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf)?;
        self.note_written(buf.len() as u64);
        Ok(())
    }

    /// Writes the request's own buffers with `writev`: no copy in user space.
    fn write_chunks(&mut self, chunks: &[Bytes]) -> Result<()> {
        for group in chunks.chunks(MAX_IOVECS) {
            let mut slices: Vec<io::IoSlice<'_>> = group
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| io::IoSlice::new(c))
                .collect();
            let mut bufs = &mut slices[..];
            while !bufs.is_empty() {
                let n = match self.file.write_vectored(bufs) {
                    Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                self.note_written(n as u64);
                io::IoSlice::advance_slices(&mut bufs, n);
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        Ok(self.size)
    }

    fn abort(self: Box<Self>) -> Result<()> {
        self.file.set_len(self.start)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for DiskBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream> {
        let path = self.blob_path(digest);
        let d = digest.clone();
        blocking(move || {
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobStoreError::BlobNotFound(d))
                }
                Err(e) => return Err(e.into()),
            };
            let len = file.metadata()?.len();
            let (start, count) = match range {
                Some(r) => (r.start, r.len().min(len.saturating_sub(r.start))),
                None => (0, len),
            };
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            Ok(file_stream(file, count))
        })
        .await
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(BlobInfo {
                digest: digest.clone(),
                size: m.len(),
                modified_ms: modified_ms(&m),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<BlobInfo>> {
        let root = self.inner.blobs.clone();
        let after = after.cloned();
        blocking(move || Ok(list_blob_files(&root, after.as_ref(), limit)?)).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_upload(&self, id: &str) -> Result<()> {
        let path = self.upload_path(id)?;
        // Not fsynced: an upload is only made durable when it is committed as a blob.
        // A process kill keeps it (page cache); a power loss may drop an unfinished
        // upload, which the client then restarts.
        blocking(move || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            Ok(())
        })
        .await
    }

    async fn upload_size(&self, id: &str) -> Result<Option<u64>> {
        let path = match self.upload_path(id) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        };
        match tokio::fs::metadata(path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_sink(&self, id: &str, offset: u64) -> Result<Box<dyn UploadSink>> {
        let path = self.upload_path(id)?;
        let id = id.to_string();
        let early_writeback = self.inner.fsync;
        blocking(move || {
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobStoreError::UploadNotFound(id))
                }
                Err(e) => return Err(e.into()),
            };
            let actual = file.metadata()?.len();
            if actual != offset {
                return Err(BlobStoreError::UploadOffsetMismatch {
                    id,
                    expected: offset,
                    actual,
                });
            }
            let mut file = file;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(DiskSink {
                file,
                start: offset,
                size: offset,
                early_writeback,
                unflushed: 0,
            }) as Box<dyn UploadSink>)
        })
        .await
    }

    async fn read_upload(&self, id: &str) -> Result<ByteStream> {
        let path = self.upload_path(id)?;
        let id = id.to_string();
        blocking(move || {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobStoreError::UploadNotFound(id))
                }
                Err(e) => return Err(e.into()),
            };
            let len = file.metadata()?.len();
            Ok(file_stream(file, len))
        })
        .await
    }

    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<()> {
        let src = self.upload_path(id)?;
        let dst = self.blob_path(digest);
        let id = id.to_string();
        let fsync = self.inner.fsync;
        blocking(move || {
            let file = match File::open(&src) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobStoreError::UploadNotFound(id))
                }
                Err(e) => return Err(e.into()),
            };
            let dir = dst.parent().expect("blob path has a parent");
            if dst.exists() {
                // Same digest, same bytes: keep the existing blob, drop the upload.
                drop(file);
                fs::remove_file(&src)?;
                return Ok(());
            }
            if fsync {
                file.sync_all()?;
            }
            drop(file);
            fs::create_dir_all(dir)?;
            fs::rename(&src, &dst)?;
            if fsync {
                fsync_dir(dir)?;
            }
            Ok(())
        })
        .await
    }

    async fn abort_upload(&self, id: &str) -> Result<()> {
        let path = match self.upload_path(id) {
            Ok(p) => p,
            Err(_) => return Ok(()),
        };
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_uploads(&self) -> Result<Vec<String>> {
        let dir = self.inner.uploads.clone();
        blocking(move || {
            let mut ids = Vec::new();
            for entry in fs::read_dir(dir)? {
                let name = entry?.file_name();
                if let Some(s) = name.to_str() {
                    if valid_upload_id(s) {
                        ids.push(s.to_string());
                    }
                }
            }
            Ok(ids)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disk_backend_passes_the_shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::open(dir.path()).unwrap();
        crate::suite::run(&store).await;
    }

    #[tokio::test]
    async fn disk_backend_without_fsync_passes_the_shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::open_with(dir.path(), DiskOptions { fsync: false }).unwrap();
        crate::suite::run(&store).await;
    }

    #[tokio::test]
    async fn upload_ids_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::open(dir.path()).unwrap();
        assert!(store.create_upload("../evil").await.is_err());
        assert!(store
            .upload_size("../../etc/passwd")
            .await
            .unwrap()
            .is_none());
    }
}

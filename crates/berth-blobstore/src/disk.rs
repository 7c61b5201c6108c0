//! The local-disk backend.
//!
//! Layout under the root directory:
//! ```text
//! blobs/<algorithm>/<first two hex chars>/<hex>   committed blobs, immutable
//! uploads/<upload id>                             uploads in progress, append-only
//! uploads/<upload id>.hash                        the running hash of its bytes (see `sink`)
//! ```
//! A commit fsyncs the upload file, renames it into `blobs/` (atomic on one file system)
//! and fsyncs the target directory, so a blob is either wholly present or absent after
//! any crash. The caller verifies the digest before committing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use futures::stream;

use berth_types::Digest;

use berth_types::Algorithm;

use crate::{
    BlobInfo, BlobStore, BlobStoreError, ByteRange, ByteStream, Result, UploadInfo, UploadSink,
};

mod sink;

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

use crate::valid_upload_id;

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

    async fn upload_sink(
        &self,
        id: &str,
        offset: u64,
        algorithm: Algorithm,
    ) -> Result<Box<dyn UploadSink>> {
        let path = self.upload_path(id)?;
        let id = id.to_string();
        let early_writeback = self.inner.fsync;
        let (file, hasher, path) = blocking(move || {
            let (file, hasher) = sink::open_for_append(&id, &path, offset, algorithm)?;
            Ok((file, hasher, path))
        })
        .await?;
        Ok(Box::new(sink::DiskSink::start(
            path,
            file,
            offset,
            hasher,
            early_writeback,
        )))
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
            // The hash state goes first: a crash after this leaves an upload that re-hashes
            // its bytes if continued, never a state file without its upload.
            sink::remove_state(&src)?;
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
        // State first (as in a commit), so a crash never strands a state file unlisted.
        let state_of = path.clone();
        blocking(move || Ok(sink::remove_state(&state_of)?)).await?;
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_uploads(&self) -> Result<Vec<UploadInfo>> {
        let dir = self.inner.uploads.clone();
        blocking(move || {
            let mut uploads = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if !valid_upload_id(&id) {
                    continue;
                }
                // Every write appends to the upload file, so its mtime is the last write.
                match entry.metadata() {
                    Ok(meta) => uploads.push(UploadInfo {
                        id,
                        modified_ms: modified_ms(&meta),
                    }),
                    // Committed or aborted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(uploads)
        })
        .await
    }

    /// Disk blobs are served only through Berth.
    async fn presign(
        &self,
        _digest: &Digest,
        _expires: std::time::Duration,
    ) -> Result<Option<url::Url>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A store in a temporary directory; `another` opens the same directory again, as a
    /// restarted process does.
    struct DiskBackend {
        dir: tempfile::TempDir,
        store: DiskBlobStore,
        options: DiskOptions,
    }

    #[async_trait::async_trait]
    impl crate::suite::SuiteBackend for DiskBackend {
        fn store(&self) -> &dyn BlobStore {
            &self.store
        }
        async fn another(&self) -> Box<dyn BlobStore> {
            Box::new(DiskBlobStore::open_with(self.dir.path(), self.options).unwrap())
        }
    }

    fn backend(options: DiskOptions) -> DiskBackend {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::open_with(dir.path(), options).unwrap();
        DiskBackend {
            dir,
            store,
            options,
        }
    }

    mod suite_with_fsync {
        async fn make() -> super::DiskBackend {
            super::backend(super::DiskOptions { fsync: true })
        }
        crate::blob_store_suite!(make);
    }

    mod suite_without_fsync {
        async fn make() -> super::DiskBackend {
            super::backend(super::DiskOptions { fsync: false })
        }
        crate::blob_store_suite!(make);
    }

    /// The saved hash state is what a continued upload starts from: a damaged or missing
    /// one is rebuilt from the bytes, and a state behind the file is caught up.
    #[tokio::test]
    async fn a_missing_or_damaged_hash_state_is_rebuilt_from_the_bytes() {
        let b = backend(DiskOptions::default());
        let store = &b.store;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 249) as u8).collect();
        let state = b.dir.path().join("uploads").join("u1.hash");
        for damage in ["remove", "garble", "behind"] {
            store.create_upload("u1").await.unwrap();
            let mut sink = store.upload_sink("u1", 0, Algorithm::Sha256).await.unwrap();
            sink.write(vec![Bytes::copy_from_slice(&data[..60_000])])
                .await
                .unwrap();
            sink.finish().await.unwrap();
            assert!(state.exists());
            match damage {
                "remove" => fs::remove_file(&state).unwrap(),
                "garble" => fs::write(&state, "60000\nv1:sha256:00ff\n").unwrap(),
                _ => {
                    // A process killed between writing bytes and saving the state.
                    let mut h = Algorithm::Sha256.hasher();
                    h.update(&data[..10_000]);
                    fs::write(&state, format!("10000\n{}\n", h.save())).unwrap();
                }
            }
            let mut sink = store
                .upload_sink("u1", 60_000, Algorithm::Sha256)
                .await
                .unwrap();
            sink.write(vec![Bytes::copy_from_slice(&data[60_000..])])
                .await
                .unwrap();
            let w = sink.finish().await.unwrap();
            assert_eq!(w.hasher.finish(), Digest::sha256_of(&data), "{damage}");
            store.abort_upload("u1").await.unwrap();
            assert!(!state.exists(), "abort removes the state");
        }
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

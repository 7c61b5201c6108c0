//! The archive tier: a second, cheaper home for the bytes of archived images
//! (ECR's `ARCHIVE` storage class).
//!
//! [`ArchiveTier`] is what the registry needs from it: copy a blob in from the standard
//! [`BlobStore`], put it back byte-identical, delete it. [`DiskArchive`] keeps a
//! zstd-compressed copy of each blob under its own directory (`<data dir>/archive/`); an
//! S3 backend would implement the same trait with another bucket or storage class.
//!
//! Layout: `<root>/<algorithm>/<first two hex chars>/<hex>.zst`. A copy is written to a
//! temporary file (`.tmp-*` in the same directory), fsynced, **read back and decompressed
//! to check that it yields exactly the blob's digest and size**, then renamed into place
//! and the directory fsynced. So an archive copy either is complete and verified or does
//! not exist under its name; a crash leaves at most a temporary file, which is never read
//! and is removed by [`ArchiveTier::remove_leftovers`].
//!
//! Everything streams through fixed buffers (zstd's streaming encoder and decoder): a
//! layer is never held in memory whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use berth_types::Digest;

use crate::{BlobStore, BlobStoreError, ByteStream, Result};

/// zstd level: 3 is zstd's default, a good ratio at several hundred MB/s per core.
const LEVEL: i32 = 3;
/// Buffer size when decompressing and restoring.
const CHUNK: usize = 128 * 1024;
const TMP_PREFIX: &str = ".tmp-";
/// Makes temporary names unique within the process (the pid, across processes).
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What the registry needs from an archive backend.
#[async_trait::async_trait]
pub trait ArchiveTier: Send + Sync + 'static {
    /// Copies blob `digest` (`size` bytes) out of `source` into the archive and returns the
    /// stored size. The copy counts (is visible to [`ArchiveTier::stat`]) only once it was
    /// verified to restore to exactly these bytes; otherwise
    /// [`BlobStoreError::ArchiveCorrupt`] and nothing is left.
    async fn archive(&self, source: Arc<dyn BlobStore>, digest: &Digest, size: u64) -> Result<u64>;

    /// Stored size of a verified archive copy, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Writes the archived bytes of `digest` back into `target` as upload `upload_id`,
    /// checking digest and size while writing, then commits the upload as the blob (a blob
    /// already present is left as is). On a mismatch the upload is dropped and
    /// [`BlobStoreError::ArchiveCorrupt`] returned.
    async fn restore(
        &self,
        target: Arc<dyn BlobStore>,
        digest: &Digest,
        size: u64,
        upload_id: &str,
    ) -> Result<()>;

    /// Deletes an archive copy; an absent one is not an error.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Removes what a crash left behind (never read as copies); returns how many.
    /// Called once at start-up.
    async fn remove_leftovers(&self) -> Result<usize> {
        Ok(0)
    }
}

/// The local-disk archive: zstd-compressed copies under one directory.
#[derive(Debug, Clone)]
pub struct DiskArchive {
    root: Arc<PathBuf>,
    fsync: bool,
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

/// Reads an async byte stream from a blocking thread, one chunk at a time.
struct StreamReader {
    stream: ByteStream,
    runtime: tokio::runtime::Handle,
    buf: bytes::Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(chunk) => self.buf = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// Decompresses `file` to its end, feeding every buffer to `sink`; returns the digest
/// (of `digest`'s algorithm) and the size of what came out.
fn decompress_each(
    file: File,
    like: &Digest,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(Digest, u64)> {
    let mut decoder = zstd::stream::read::Decoder::new(BufReader::new(file))?;
    let mut hasher = like.algorithm().hasher();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A truncated or garbled frame is a corrupt copy, not an I/O failure.
            Err(e) if e.raw_os_error().is_none() => {
                return Err(BlobStoreError::ArchiveCorrupt {
                    digest: like.clone(),
                    reason: format!("cannot decompress: {e}"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    Ok((hasher.finish(), total))
}

fn check(digest: &Digest, size: u64, got: &(Digest, u64)) -> Result<()> {
    if &got.0 != digest || got.1 != size {
        return Err(BlobStoreError::ArchiveCorrupt {
            digest: digest.clone(),
            reason: format!(
                "the copy yields {} ({} bytes), not {size} bytes",
                got.0, got.1
            ),
        });
    }
    Ok(())
}

impl DiskArchive {
    /// Opens (creating if needed) an archive rooted at `root`; `fsync` as the blob store's.
    pub fn open(root: impl AsRef<Path>, fsync: bool) -> Result<Self> {
        fs::create_dir_all(root.as_ref())?;
        Ok(DiskArchive {
            root: Arc::new(root.as_ref().to_path_buf()),
            fsync,
        })
    }

    /// Where the copy of `d` lives (whether or not it exists).
    pub fn path_of(&self, d: &Digest) -> PathBuf {
        self.root
            .join(d.algorithm().as_str())
            .join(d.hex_prefix(2))
            .join(format!("{}.zst", d.hex()))
    }

    /// Removes temporary files a crash left behind. They are never read as copies, so
    /// this only reclaims space.
    async fn remove_tmp_files(&self) -> Result<usize> {
        let root = self.root.clone();
        blocking(move || {
            let mut removed = 0;
            let mut dirs = vec![root.as_ref().clone()];
            while let Some(dir) = dirs.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name();
                    if entry.file_type()?.is_dir() {
                        dirs.push(entry.path());
                    } else if name.to_string_lossy().starts_with(TMP_PREFIX) {
                        fs::remove_file(entry.path())?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}

#[async_trait::async_trait]
impl ArchiveTier for DiskArchive {
    async fn archive(&self, source: Arc<dyn BlobStore>, digest: &Digest, size: u64) -> Result<u64> {
        let stream = source.open(digest, None).await?;
        let dst = self.path_of(digest);
        let digest = digest.clone();
        let fsync = self.fsync;
        let runtime = tokio::runtime::Handle::current();
        blocking(move || {
            let dir = dst
                .parent()
                .expect("archive path has a parent")
                .to_path_buf();
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(
                "{TMP_PREFIX}{}-{}-{}",
                digest.hex_prefix(16),
                std::process::id(),
                TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let result = (|| {
                let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
                let mut reader = StreamReader {
                    stream,
                    runtime,
                    buf: bytes::Bytes::new(),
                };
                // Hash what goes in too: a source that does not match its digest is refused
                // before its copy is read back.
                let mut hasher = digest.algorithm().hasher();
                let mut encoder = zstd::stream::write::Encoder::new(file, LEVEL)?;
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(BlobStoreError::from(e)),
                    };
                    hasher.update(&buf[..n]);
                    encoder.write_all(&buf[..n])?;
                    total += n as u64;
                }
                check(&digest, size, &(hasher.finish(), total))?;
                let file = encoder.finish()?;
                if fsync {
                    file.sync_all()?;
                }
                drop(file);
                // The copy counts only if it reads back as the blob.
                let got = decompress_each(File::open(&tmp)?, &digest, |_| Ok(()))?;
                check(&digest, size, &got)?;
                let stored = fs::metadata(&tmp)?.len();
                fs::rename(&tmp, &dst)?;
                if fsync {
                    fsync_dir(&dir)?;
                }
                Ok(stored)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        })
        .await
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn restore(
        &self,
        target: Arc<dyn BlobStore>,
        digest: &Digest,
        size: u64,
        upload_id: &str,
    ) -> Result<()> {
        let path = self.path_of(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobStoreError::BlobNotFound(digest.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        target.create_upload(upload_id).await?;
        let mut sink = target.upload_sink(upload_id, 0, digest.algorithm()).await?;
        // Decompression runs on a blocking thread and hands its buffers to the sink here.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let d = digest.clone();
        let decompressing = blocking(move || {
            let got = decompress_each(file, &d, |b| {
                tx.blocking_send(Bytes::copy_from_slice(b))
                    .map_err(|_| BlobStoreError::Io(io::Error::other("restore target stopped")))
            })?;
            check(&d, size, &got)
        });
        let writing = async {
            while let Some(b) = rx.recv().await {
                sink.write(vec![b]).await?;
            }
            Ok::<_, BlobStoreError>(())
        };
        let (decompressed, wrote) = tokio::join!(decompressing, writing);
        let written = match decompressed.and(wrote) {
            Ok(()) => sink.finish().await.map(|_| ()),
            Err(e) => {
                let _ = sink.abort().await;
                Err(e)
            }
        };
        match written {
            Ok(()) => target.commit_upload(upload_id, digest).await,
            Err(e) => {
                let _ = target.abort_upload(upload_id).await;
                Err(e)
            }
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_leftovers(&self) -> Result<usize> {
        self.remove_tmp_files().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DiskBlobStore;

    /// Pseudo-random, poorly compressible bytes (so several zstd blocks and buffers).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    async fn put(store: &DiskBlobStore, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        store.create_upload("u1").await.unwrap();
        let mut sink = store
            .upload_sink("u1", 0, berth_types::Algorithm::Sha256)
            .await
            .unwrap();
        sink.write(vec![bytes::Bytes::copy_from_slice(data)])
            .await
            .unwrap();
        sink.finish().await.unwrap();
        store.commit_upload("u1", &d).await.unwrap();
        d
    }

    async fn read_all(store: &DiskBlobStore, d: &Digest) -> Vec<u8> {
        let mut s = store.open(d, None).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    fn setup() -> (tempfile::TempDir, DiskBlobStore, DiskArchive) {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskBlobStore::open(dir.path().join("store")).unwrap();
        let archive = DiskArchive::open(dir.path().join("archive"), true).unwrap();
        (dir, store, archive)
    }

    #[tokio::test]
    async fn round_trip_is_byte_identical_and_compressed() {
        let (_dir, store, archive) = setup();
        for data in [Vec::new(), bytes(5 * CHUNK + 17, 7), vec![b'a'; 3 << 20]] {
            let d = put(&store, &data).await;
            let source: Arc<dyn BlobStore> = Arc::new(store.clone());
            let stored = archive
                .archive(source.clone(), &d, data.len() as u64)
                .await
                .unwrap();
            assert_eq!(archive.stat(&d).await.unwrap(), Some(stored));
            if data.len() == 3 << 20 {
                assert!(stored < 64 * 1024, "repetitive data compresses: {stored}");
            }
            store.delete(&d).await.unwrap();
            assert_eq!(store.stat(&d).await.unwrap(), None);
            archive
                .restore(source, &d, data.len() as u64, "restore-1")
                .await
                .unwrap();
            assert_eq!(read_all(&store, &d).await, data);
            archive.delete(&d).await.unwrap();
            assert_eq!(archive.stat(&d).await.unwrap(), None);
            archive.delete(&d).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_source_that_does_not_match_its_digest_is_not_archived() {
        let (_dir, store, archive) = setup();
        let data = bytes(300_000, 3);
        let d = put(&store, &data).await;
        // Corrupt the standard copy behind the store's back.
        let path = _dir
            .path()
            .join("store/blobs/sha256")
            .join(d.hex_prefix(2))
            .join(d.hex());
        let mut bad = data.clone();
        bad[1234] ^= 1;
        fs::write(&path, &bad).unwrap();
        let err = archive
            .archive(Arc::new(store.clone()), &d, data.len() as u64)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobStoreError::ArchiveCorrupt { .. }),
            "{err}"
        );
        assert_eq!(archive.stat(&d).await.unwrap(), None);
        assert_eq!(archive.remove_leftovers().await.unwrap(), 0);
        // A wrong size is refused likewise.
        fs::write(&path, &data).unwrap();
        let err = archive
            .archive(Arc::new(store.clone()), &d, data.len() as u64 + 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobStoreError::ArchiveCorrupt { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_copy_is_not_restored() {
        let (_dir, store, archive) = setup();
        let data = bytes(400_000, 11);
        let d = put(&store, &data).await;
        let source: Arc<dyn BlobStore> = Arc::new(store.clone());
        archive
            .archive(source.clone(), &d, data.len() as u64)
            .await
            .unwrap();
        store.delete(&d).await.unwrap();

        // Another blob's (valid) copy under this name: decompresses fine, wrong digest.
        let other = bytes(1000, 5);
        let od = put(&store, &other).await;
        archive.archive(source.clone(), &od, 1000).await.unwrap();
        fs::copy(archive.path_of(&od), archive.path_of(&d)).unwrap();
        let err = archive
            .restore(source.clone(), &d, data.len() as u64, "restore-2")
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobStoreError::ArchiveCorrupt { .. }),
            "{err}"
        );
        assert_eq!(store.stat(&d).await.unwrap(), None);
        assert_eq!(store.upload_size("restore-2").await.unwrap(), None);

        // A truncated frame.
        let full = fs::read(archive.path_of(&od)).unwrap();
        fs::write(archive.path_of(&d), &full[..full.len() / 2]).unwrap();
        let err = archive
            .restore(source, &d, data.len() as u64, "restore-3")
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobStoreError::ArchiveCorrupt { .. }),
            "{err}"
        );
        assert_eq!(store.stat(&d).await.unwrap(), None);
    }

    #[tokio::test]
    async fn crash_leftovers_are_ignored_and_removed() {
        let (_dir, store, archive) = setup();
        let data = bytes(10_000, 9);
        let d = put(&store, &data).await;
        // A temporary file as a crash mid-write leaves it, even with the full content.
        let dir = archive.path_of(&d).parent().unwrap().to_path_buf();
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("{TMP_PREFIX}{}-x", &d.hex()[..16])),
            b"partial",
        )
        .unwrap();
        assert_eq!(archive.stat(&d).await.unwrap(), None);
        let err = archive
            .restore(Arc::new(store.clone()), &d, 10_000, "restore-4")
            .await
            .unwrap_err();
        assert!(matches!(err, BlobStoreError::BlobNotFound(_)), "{err}");
        // Archiving still works beside it, and the leftover is then removed.
        archive
            .archive(Arc::new(store.clone()), &d, 10_000)
            .await
            .unwrap();
        assert_eq!(archive.remove_leftovers().await.unwrap(), 1);
        assert!(archive.stat(&d).await.unwrap().is_some());
    }
}

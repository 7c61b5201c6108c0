//! The disk backend's upload sink and the hash state saved beside each upload.
//!
//! A sink owns one blocking writer thread, fed through a small bounded channel with the
//! request's own buffers: the thread writes each batch with `writev` (no user-space copy)
//! and then hashes it, so every byte is written and hashed once, off the async runtime.
//!
//! When a sink finishes, the running hash is saved in `uploads/<id>.hash` as
//! `<size>\n<Hasher::save text>\n` (temporary file, then rename; not fsynced, like the upload
//! itself until its commit). Opening a sink resumes from it and hashes only the bytes past
//! the saved size (none, normally). A missing or unusable state file (an upload from an
//! older version, a state of another algorithm, a power loss that shortened the upload)
//! only costs one read of the upload: the hash is rebuilt from its bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use berth_types::{Algorithm, Hasher};

use crate::{BlobStoreError, Result, UploadSink, Written};

/// Most slices handed to one `writev` (well under the kernel's IOV_MAX).
const MAX_IOVECS: usize = 256;
/// Start writeback every this many bytes.
const WRITEBACK_EVERY: u64 = 1 << 20;
/// Batches in flight between the request and the writer thread.
const QUEUE: usize = 4;
/// Read size when a hash is rebuilt from the upload's bytes.
const REHASH_CHUNK: usize = 1 << 20;

/// The path of the hash state saved beside upload file `upload`.
pub(super) fn state_path(upload: &Path) -> PathBuf {
    let mut p = upload.as_os_str().to_owned();
    p.push(".hash");
    PathBuf::from(p)
}

fn state_tmp_path(upload: &Path) -> PathBuf {
    let mut p = upload.as_os_str().to_owned();
    p.push(".hash.tmp");
    PathBuf::from(p)
}

/// Removes the saved hash state of `upload` (and a temporary one a crash left).
pub(super) fn remove_state(upload: &Path) -> io::Result<()> {
    for p in [state_path(upload), state_tmp_path(upload)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn save_state(upload: &Path, size: u64, hasher: &Hasher) -> io::Result<()> {
    let tmp = state_tmp_path(upload);
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{size}\n{}\n", hasher.save()).as_bytes())?;
    drop(f);
    fs::rename(&tmp, state_path(upload))
}

/// The saved state, when present, readable and of `algorithm`: (bytes it covers, hasher).
fn load_state(upload: &Path, algorithm: Algorithm) -> Option<(u64, Hasher)> {
    let text = match fs::read_to_string(state_path(upload)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(upload = %upload.display(), error = %e, "upload hash state unreadable; re-hashing");
            return None;
        }
    };
    let mut lines = text.lines();
    let size = lines.next()?.parse::<u64>().ok()?;
    match Hasher::resume(lines.next()?) {
        Ok(h) if h.algorithm() == algorithm => Some((size, h)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(upload = %upload.display(), error = %e, "upload hash state damaged; re-hashing");
            None
        }
    }
}

/// The hasher of the first `size` bytes of the upload at `path`, from its saved state
/// plus whatever the state does not cover yet.
pub(super) fn resume_hasher(path: &Path, size: u64, algorithm: Algorithm) -> Result<Hasher> {
    let (from, mut hasher) = match load_state(path, algorithm) {
        Some((saved, h)) if saved <= size => (saved, h),
        _ => (0, algorithm.hasher()),
    };
    if from == size {
        return Ok(hasher);
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut reader = file.take(size - from);
    let mut buf = vec![0u8; REHASH_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hasher)
}

/// What runs on the writer thread: the file, the running hash and the writeback pacing.
struct Writer {
    file: File,
    size: u64,
    hasher: Hasher,
    /// With fsync on, writeback of what has been written is started as it streams in
    /// (`sync_file_range`), so the fsync at commit has little left to do.
    early_writeback: bool,
    /// Bytes written since writeback was last started.
    unflushed: u64,
}

impl Writer {
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

    /// Writes the buffers with `writev`, then hashes them.
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
        for c in chunks {
            self.hasher.update(c);
        }
        Ok(())
    }
}

/// The writer thread's end: the writer back, and the write error that stopped it.
type WriterEnd = (Writer, Option<BlobStoreError>);

pub(super) struct DiskSink {
    path: PathBuf,
    start: u64,
    tx: Option<mpsc::Sender<Vec<Bytes>>>,
    thread: Option<JoinHandle<WriterEnd>>,
    /// Set once the thread has ended (after a failed write).
    ended: Option<Writer>,
}

impl DiskSink {
    /// Starts the writer thread on `file`, positioned at `start`, which `hasher` covers.
    pub(super) fn start(
        path: PathBuf,
        file: File,
        start: u64,
        hasher: Hasher,
        early_writeback: bool,
    ) -> DiskSink {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(QUEUE);
        let mut writer = Writer {
            file,
            size: start,
            hasher,
            early_writeback,
            unflushed: 0,
        };
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(batch) = rx.blocking_recv() {
                if let Err(e) = writer.write_chunks(&batch) {
                    return (writer, Some(e));
                }
            }
            (writer, None)
        });
        DiskSink {
            path,
            start,
            tx: Some(tx),
            thread: Some(thread),
            ended: None,
        }
    }

    /// Closes the queue and waits for the writer thread.
    async fn join(&mut self) -> Result<(Writer, Option<BlobStoreError>)> {
        self.tx = None;
        if let Some(w) = self.ended.take() {
            return Ok((w, None));
        }
        let thread = self
            .thread
            .take()
            .ok_or_else(|| BlobStoreError::Io(io::Error::other("upload sink already closed")))?;
        thread
            .await
            .map_err(|e| BlobStoreError::Io(io::Error::other(e)))
    }

    /// Cuts the upload back to where this sink started.
    async fn undo(&self, writer: Writer) -> Result<()> {
        let start = self.start;
        super::blocking(move || Ok(writer.file.set_len(start)?)).await
    }
}

#[async_trait::async_trait]
impl UploadSink for DiskSink {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| BlobStoreError::Io(io::Error::other("upload sink is broken")))?;
        if tx.send(chunks).await.is_ok() {
            return Ok(());
        }
        // The thread stopped on a write error: report that error.
        let (writer, failure) = self.join().await?;
        self.ended = Some(writer);
        Err(failure
            .unwrap_or_else(|| BlobStoreError::Io(io::Error::other("upload writer stopped"))))
    }

    async fn finish(mut self: Box<Self>) -> Result<Written> {
        let (writer, failure) = self.join().await?;
        if let Some(e) = failure {
            if let Err(undo) = self.undo(writer).await {
                tracing::error!(upload = %self.path.display(), error = %undo, "could not undo a refused write");
            }
            return Err(e);
        }
        let path = self.path.clone();
        let start = self.start;
        super::blocking(move || {
            if let Err(e) = save_state(&path, writer.size, &writer.hasher) {
                // No state for these bytes (a full disk): give them back, so the upload
                // and its saved state still agree and the chunk can be retried.
                let _ = fs::remove_file(state_tmp_path(&path));
                writer.file.set_len(start)?;
                return Err(e.into());
            }
            Ok(Written {
                size: writer.size,
                hasher: writer.hasher,
            })
        })
        .await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let (writer, _) = self.join().await?;
        self.undo(writer).await
    }
}

/// Opens the upload at `path` for appending at `offset` (its exact size), with the hasher
/// of its bytes so far.
pub(super) fn open_for_append(
    id: &str,
    path: &Path,
    offset: u64,
    algorithm: Algorithm,
) -> Result<(File, Hasher)> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BlobStoreError::UploadNotFound(id.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let actual = file.metadata()?.len();
    if actual != offset {
        return Err(BlobStoreError::UploadOffsetMismatch {
            id: id.to_string(),
            expected: offset,
            actual,
        });
    }
    let hasher = resume_hasher(path, offset, algorithm)?;
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, hasher))
}

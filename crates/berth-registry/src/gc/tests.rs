//! The collector against the embedded backends: what it frees and when, and that it
//! never takes bytes a push is committing, a manifest uses, or an upload is writing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, TryStreamExt};

use berth_blobstore::{BlobStore, DiskBlobStore};
use berth_meta::sqlite::SqliteMetaStore;
use berth_types::{Digest, Reference, RepositoryName};

use super::{GarbageCollector, GcOptions, GcReport};
use crate::{Registry, RegistryOptions};

struct Fixture {
    registry: Registry,
    blobs: DiskBlobStore,
    gc: GarbageCollector,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    let blobs = DiskBlobStore::open(dir.path()).unwrap();
    let registry = Registry::new(
        Arc::new(meta),
        Arc::new(blobs.clone()),
        RegistryOptions::default(),
    );
    let gc = registry.garbage_collector();
    Fixture {
        registry,
        blobs,
        gc,
        _dir: dir,
    }
}

fn repo(s: &str) -> RepositoryName {
    crate::test_repo(s)
}

fn one(data: &[u8]) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

async fn push(r: &Registry, repo: &RepositoryName, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    r.push_blob(repo, &d, one(data)).await.unwrap();
    d
}

/// Pushes an image of config `cfg` and `layers` (already pushed) under `tag`.
async fn image(
    r: &Registry,
    repo: &RepositoryName,
    tag: &str,
    cfg: &[u8],
    layers: &[&[u8]],
) -> Digest {
    let cfg_d = push(r, repo, cfg).await;
    let layers: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                Digest::sha256_of(l),
                l.len()
            )
        })
        .collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{}}},"layers":[{}]}}"#,
        cfg.len(),
        layers.join(",")
    );
    let reference: Reference = tag.parse().unwrap();
    r.put_manifest(repo, &reference, None, Bytes::from(body))
        .await
        .unwrap()
        .digest
}

async fn read(r: &Registry, repo: &RepositoryName, d: &Digest) -> Vec<u8> {
    let b = r.open_blob(repo, d, None).await.unwrap();
    let chunks: Vec<Bytes> = b.stream.try_collect().await.unwrap();
    chunks.concat()
}

fn opts(grace_secs: u64, dry_run: bool) -> GcOptions {
    GcOptions {
        grace: Duration::from_secs(grace_secs),
        dry_run,
        duty: None,
        file_scan_every: None,
    }
}

fn freed(r: &GcReport) -> (u64, u64) {
    (r.blobs, r.bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_repository_frees_its_unshared_blobs_after_the_grace_period() {
    let f = fixture();
    let (a, b) = (repo("gc/a"), repo("gc/b"));
    let shared: &[u8] = &[7u8; 5000];
    let unique: &[u8] = &[9u8; 3000];
    push(&f.registry, &a, shared).await;
    push(&f.registry, &a, unique).await;
    image(&f.registry, &a, "v1", b"config a", &[shared, unique]).await;
    push(&f.registry, &b, shared).await;
    image(&f.registry, &b, "v1", b"config b!", &[shared]).await;

    // Nothing is unreferenced yet.
    let dry = f.gc.run(opts(0, true)).await.unwrap();
    assert_eq!((freed(&dry), dry.pending_blobs, dry.links), ((0, 0), 0, 0));

    f.registry.delete_repository(&a, true).await.unwrap();
    let unshared = (2u64, (unique.len() + b"config a".len()) as u64);

    // Within the grace period nothing goes; the blobs are reported pending.
    let dry = f.gc.run(opts(3600, true)).await.unwrap();
    assert_eq!(freed(&dry), (0, 0));
    assert_eq!((dry.pending_blobs, dry.pending_bytes), unshared);
    let run = f.gc.run(opts(3600, false)).await.unwrap();
    assert_eq!(freed(&run), (0, 0));
    assert_eq!((run.pending_blobs, run.pending_bytes), unshared);
    assert!(f
        .blobs
        .stat(&Digest::sha256_of(unique))
        .await
        .unwrap()
        .is_some());

    // A dry run with no grace predicts exactly what the run then frees.
    let dry = f.gc.run(opts(0, true)).await.unwrap();
    assert_eq!(freed(&dry), unshared);
    assert!(f
        .blobs
        .stat(&Digest::sha256_of(unique))
        .await
        .unwrap()
        .is_some());
    let run = f.gc.run(opts(0, false)).await.unwrap();
    assert_eq!(freed(&run), unshared);
    assert_eq!(run.pending_blobs, 0);
    assert!(f
        .blobs
        .stat(&Digest::sha256_of(unique))
        .await
        .unwrap()
        .is_none());
    assert!(f
        .blobs
        .stat(&Digest::sha256_of(b"config a"))
        .await
        .unwrap()
        .is_none());

    // The shared layer and the other repository's image are intact.
    let d = Digest::sha256_of(shared);
    assert_eq!(read(&f.registry, &b, &d).await, shared);
    let again = f.gc.run(opts(0, false)).await.unwrap();
    assert_eq!((freed(&again), again.pending_blobs), ((0, 0), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_image_frees_its_unshared_layers_and_keeps_shared_ones() {
    let f = fixture();
    let a = repo("gc/img");
    let shared: &[u8] = &[1u8; 4000];
    let only_old: &[u8] = &[2u8; 6000];
    push(&f.registry, &a, shared).await;
    push(&f.registry, &a, only_old).await;
    let old = image(&f.registry, &a, "old", b"old config", &[shared, only_old]).await;
    image(&f.registry, &a, "new", b"new config", &[shared]).await;

    f.registry.delete_image(&a, Some(&old), None).await.unwrap();
    // First its links wait out the grace period, then the blobs theirs.
    let run = f.gc.run(opts(3600, false)).await.unwrap();
    assert_eq!((freed(&run), run.links), ((0, 0), 0));
    let dry = f.gc.run(opts(0, true)).await.unwrap();
    assert_eq!(dry.links, 2);
    assert_eq!(
        freed(&dry),
        (2, (only_old.len() + b"old config".len()) as u64)
    );
    let run = f.gc.run(opts(0, false)).await.unwrap();
    assert_eq!(run.links, 2);
    assert_eq!(freed(&run), freed(&dry));
    assert!(f
        .registry
        .blob_size(&a, &Digest::sha256_of(only_old))
        .await
        .is_err());
    assert_eq!(
        read(&f.registry, &a, &Digest::sha256_of(shared)).await,
        shared
    );
    let newest = f
        .registry
        .get_manifest(&a, &"new".parse().unwrap())
        .await
        .unwrap();
    assert!(!newest.body.is_empty());
}

/// A blob that became unreferenced is pushed again, and a manifest using it, while
/// collection with no grace runs over and over. With no grace even the fresh link may go
/// before the manifest arrives (the manifest is then refused and the client pushes
/// again), but whichever wins each race, an accepted manifest finds its bytes intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn re_pushing_an_unreferenced_blob_races_collection_safely() {
    let f = fixture();
    let a = repo("gc/race");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256_of(&data);
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":{}}},"layers":[]}}"#,
        data.len()
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (gc, stop) = (f.gc.clone(), stop.clone());
        tokio::spawn(async move {
            let mut freed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                freed += gc.run(opts(0, false)).await.unwrap().blobs;
            }
            freed
        })
    };
    let tag: Reference = "t".parse().unwrap();
    let mut refused = 0;
    for i in 0..60 {
        loop {
            if i % 2 == 0 {
                f.registry.push_blob(&a, &d, one(&data)).await.unwrap();
            } else {
                let up = f.registry.start_upload(&a).await.unwrap();
                f.registry
                    .append_upload(&a, &up.id, Some(0), one(&data[..1000]))
                    .await
                    .unwrap();
                f.registry
                    .complete_upload(&a, &up.id, &d, Some(1000), one(&data[1000..]))
                    .await
                    .unwrap();
            }
            match f
                .registry
                .put_manifest(&a, &tag, None, manifest.clone())
                .await
            {
                Ok(_) => break,
                Err(crate::RegistryError::ManifestBlobUnknown(_)) => refused += 1,
                Err(e) => panic!("round {i}: {e}"),
            }
        }
        assert_eq!(read(&f.registry, &a, &d).await, data, "round {i}");
        // Unreference it again: the next round re-pushes a blob collection wants gone.
        f.registry.delete_repository(&a, true).await.unwrap();
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let freed = collector.await.unwrap();
    assert!(freed > 0, "collection never got to delete the blob");
    eprintln!("collection freed the blob {freed} times; {refused} manifests were refused and pushed again");
}

/// Moves `data` into place as a blob file without recording it, as a commit whose process
/// died in between leaves it; returns its digest.
async fn leave_unrecorded_file(blobs: &DiskBlobStore, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    blobs.create_upload("crashed").await.unwrap();
    let mut sink = blobs
        .upload_sink("crashed", 0, berth_types::Algorithm::Sha256)
        .await
        .unwrap();
    sink.write(vec![bytes::Bytes::copy_from_slice(data)])
        .await
        .unwrap();
    sink.finish().await.unwrap();
    blobs.commit_upload("crashed", &digest).await.unwrap();
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecorded_files_go_after_the_grace_period_and_uploads_are_never_touched() {
    let f = fixture();
    let a = repo("gc/files");
    // Bytes moved into place by a commit whose process died before recording them.
    let lost: &[u8] = b"bytes no row records";
    let lost_d = leave_unrecorded_file(&f.blobs, lost).await;
    // An upload in progress.
    let up = f.registry.start_upload(&a).await.unwrap();
    f.registry
        .append_upload(&a, &up.id, Some(0), one(b"half an upload"))
        .await
        .unwrap();

    let run = f.gc.run(opts(3600, false)).await.unwrap();
    assert_eq!(run.unrecorded_files, 0);
    let dry = f.gc.run(opts(0, true)).await.unwrap();
    assert_eq!(
        (dry.unrecorded_files, dry.unrecorded_bytes),
        (1, lost.len() as u64)
    );
    assert!(f.blobs.stat(&lost_d).await.unwrap().is_some());
    let run = f.gc.run(opts(0, false)).await.unwrap();
    assert_eq!(
        (run.unrecorded_files, run.unrecorded_bytes),
        (1, lost.len() as u64)
    );
    assert_eq!(run.freed_bytes(), lost.len() as u64);
    assert!(f.blobs.stat(&lost_d).await.unwrap().is_none());

    // The upload carries on and completes.
    assert_eq!(
        f.registry.upload_status(&a, &up.id).await.unwrap().offset,
        14
    );
    let d = Digest::sha256_of(b"half an upload, finished");
    f.registry
        .complete_upload(&a, &up.id, &d, Some(14), one(b", finished"))
        .await
        .unwrap();
    assert_eq!(read(&f.registry, &a, &d).await, b"half an upload, finished");
    // A fresh link awaiting its manifest is held for the grace period.
    let run = f.gc.run(opts(3600, false)).await.unwrap();
    assert_eq!((freed(&run), run.pending_blobs), ((0, 0), 1));
    assert_eq!(read(&f.registry, &a, &d).await, b"half an upload, finished");
}

/// A blob store that stops every `commit_upload` just after it has moved (or dropped)
/// the upload, until released: the moment between the bytes being in place and the meta
/// store recording them, where a collection could slip in.
struct PausingStore {
    inner: DiskBlobStore,
    committed: tokio::sync::mpsc::UnboundedSender<()>,
    resume: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

#[async_trait::async_trait]
impl BlobStore for PausingStore {
    async fn stat(&self, d: &Digest) -> berth_blobstore::Result<Option<u64>> {
        self.inner.stat(d).await
    }
    async fn blob_info(
        &self,
        d: &Digest,
    ) -> berth_blobstore::Result<Option<berth_blobstore::BlobInfo>> {
        self.inner.blob_info(d).await
    }
    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> berth_blobstore::Result<Vec<berth_blobstore::BlobInfo>> {
        self.inner.list_blobs(after, limit).await
    }
    async fn open(
        &self,
        d: &Digest,
        range: Option<berth_blobstore::ByteRange>,
    ) -> berth_blobstore::Result<berth_blobstore::ByteStream> {
        self.inner.open(d, range).await
    }
    async fn delete(&self, d: &Digest) -> berth_blobstore::Result<()> {
        self.inner.delete(d).await
    }
    async fn create_upload(&self, id: &str) -> berth_blobstore::Result<()> {
        self.inner.create_upload(id).await
    }
    async fn upload_size(&self, id: &str) -> berth_blobstore::Result<Option<u64>> {
        self.inner.upload_size(id).await
    }
    async fn upload_sink(
        &self,
        id: &str,
        offset: u64,
        algorithm: berth_types::Algorithm,
    ) -> berth_blobstore::Result<Box<dyn berth_blobstore::UploadSink>> {
        self.inner.upload_sink(id, offset, algorithm).await
    }
    async fn commit_upload(&self, id: &str, d: &Digest) -> berth_blobstore::Result<()> {
        self.inner.commit_upload(id, d).await?;
        let _ = self.committed.send(());
        self.resume.lock().await.recv().await;
        Ok(())
    }
    async fn abort_upload(&self, id: &str) -> berth_blobstore::Result<()> {
        self.inner.abort_upload(id).await
    }
    async fn list_uploads(&self) -> berth_blobstore::Result<Vec<berth_blobstore::UploadInfo>> {
        self.inner.list_uploads().await
    }
    async fn presign(
        &self,
        d: &Digest,
        expires: std::time::Duration,
    ) -> berth_blobstore::Result<Option<url::Url>> {
        self.inner.presign(d, expires).await
    }
}

/// The central hazard, made to happen every time: a blob is unreferenced and marked long
/// ago; a push of the same digest finds the file in place and drops its upload; before it
/// records the blob, a collection with no grace runs to completion. The commit's pin makes
/// that collection leave the blob alone, so the push ends with its bytes intact (without
/// the pin the collection deletes them and the push fails its final check).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collection_between_moving_an_upload_and_recording_it_leaves_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(dir.path().join("meta.db")).unwrap());
    let disk = DiskBlobStore::open(dir.path()).unwrap();
    let (committed_tx, mut committed) = tokio::sync::mpsc::unbounded_channel();
    let (resume, resume_rx) = tokio::sync::mpsc::unbounded_channel();
    let paused = Arc::new(PausingStore {
        inner: disk.clone(),
        committed: committed_tx,
        resume: tokio::sync::Mutex::new(resume_rx),
    });
    let registry = Registry::new(meta.clone(), paused.clone(), RegistryOptions::default());
    let gc = registry.garbage_collector();
    let (a, b) = (repo("gc/old"), repo("gc/new"));
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let d = Digest::sha256_of(&data);

    // Push it once (letting that commit through), then leave it unreferenced and marked.
    let first = {
        let (registry, a, d, data) = (registry.clone(), a.clone(), d.clone(), data.clone());
        tokio::spawn(async move { registry.push_blob(&a, &d, one(&data)).await })
    };
    committed.recv().await.unwrap();
    resume.send(()).unwrap();
    first.await.unwrap().unwrap();
    registry.delete_repository(&a, true).await.unwrap();
    gc.run(opts(3600, false)).await.unwrap();

    for monolithic in [true, false] {
        let push = {
            let (registry, b, d, data) = (registry.clone(), b.clone(), d.clone(), data.clone());
            tokio::spawn(async move {
                if monolithic {
                    registry.push_blob(&b, &d, one(&data)).await
                } else {
                    let up = registry.start_upload(&b).await?;
                    registry
                        .complete_upload(&b, &up.id, &d, Some(0), one(&data))
                        .await
                }
            })
        };
        // The upload was dropped as a duplicate of the existing file; nothing records it yet.
        committed.recv().await.unwrap();
        let run = gc.run(opts(0, false)).await.unwrap();
        assert_eq!(freed(&run), (0, 0), "the pinned blob was deleted");
        assert!(disk.stat(&d).await.unwrap().is_some());
        resume.send(()).unwrap();
        assert_eq!(push.await.unwrap().unwrap(), data.len() as u64);
        assert_eq!(read(&registry, &b, &d).await, data);
        // Unreferenced again for the next round; a collection without a push in flight
        // does delete it.
        registry.delete_repository(&b, true).await.unwrap();
        let run = gc.run(opts(0, false)).await.unwrap();
        assert_eq!(freed(&run), (1, data.len() as u64));
        // Re-create it as an old orphan for the next round.
        let again = {
            let (registry, a, d, data) = (registry.clone(), a.clone(), d.clone(), data.clone());
            tokio::spawn(async move { registry.push_blob(&a, &d, one(&data)).await })
        };
        committed.recv().await.unwrap();
        resume.send(()).unwrap();
        again.await.unwrap().unwrap();
        registry.delete_repository(&a, true).await.unwrap();
        gc.run(opts(3600, false)).await.unwrap();
    }
}

/// `berth serve`'s collector lists the blob files on its first pass, then only once the
/// scan interval has passed; each pass says whether it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_collector_lists_blob_files_on_its_first_pass_and_then_on_schedule() {
    let f = fixture();
    let lost: &[u8] = b"bytes a crashed commit left";
    let lost_d = leave_unrecorded_file(&f.blobs, lost).await;
    let scheduled = |every_ms: u64| GcOptions {
        file_scan_every: Some(Duration::from_millis(every_ms)),
        ..opts(3600, false)
    };

    let first = f.gc.run(scheduled(3_600_000)).await.unwrap();
    assert!(first.files_scanned);
    assert_eq!(first.unrecorded_files, 0, "still within the grace period");
    let second =
        f.gc.run(GcOptions {
            grace: Duration::ZERO,
            ..scheduled(3_600_000)
        })
        .await
        .unwrap();
    assert!(!second.files_scanned);
    assert!(f.blobs.stat(&lost_d).await.unwrap().is_some());
    // Once the interval has passed, the next pass lists the files again and frees the bytes.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let third =
        f.gc.run(GcOptions {
            grace: Duration::ZERO,
            ..scheduled(50)
        })
        .await
        .unwrap();
    assert!(third.files_scanned);
    assert_eq!(
        (third.unrecorded_files, third.unrecorded_bytes),
        (1, lost.len() as u64)
    );
    assert!(f.blobs.stat(&lost_d).await.unwrap().is_none());
}

/// A collector that dies between deciding a deletion (row gone, deletion recorded) and
/// deleting the bytes: a push of the same digest meanwhile waits and is refused rather
/// than relying on bytes about to vanish; the next pass deletes the orphaned bytes and
/// finishes the deletion; the push then succeeds with its own bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_dying_between_deciding_and_deleting_leaves_only_an_orphan() {
    let f = fixture();
    let a = repo("gc/crash");
    let data: &[u8] = b"bytes whose deletion was decided";
    let d = push(&f.registry, &a, data).await;
    f.registry.delete_repository(&a, true).await.unwrap();
    let meta = f.registry.meta().clone();
    let mut after = None;
    while let Some(next) = meta.gc_mark(after.as_ref(), 100, 0).await.unwrap().next {
        after = Some(next);
    }
    // The dead collector decided long ago (so a pass takes its deletion over) ...
    let long_ago = super::super::now_ms() - 2 * super::DELETION_LIFETIME.as_millis() as i64;
    let begun = meta
        .gc_begin_delete(std::slice::from_ref(&d), i64::MAX - 1, long_ago)
        .await
        .unwrap();
    assert_eq!(begun.len(), 1);
    // ... and died before deleting the bytes: they are still there, and no row records them.
    assert!(f.blobs.stat(&d).await.unwrap().is_some());
    assert_eq!(
        meta.gc_unrecorded(std::slice::from_ref(&d)).await.unwrap(),
        vec![d.clone()]
    );

    // A push of the same digest waits out the deletion, then gives up without recording
    // anything (its client retries).
    let refused = f.registry.push_blob(&a, &d, one(data)).await;
    assert!(refused.is_err(), "a commit relied on bytes being deleted");
    assert!(meta.linked_blob(&a, &d).await.unwrap().is_none());

    // The next pass finishes the abandoned deletion: the orphaned bytes go.
    let report = f.gc.run(opts(3600, false)).await.unwrap();
    assert_eq!(report.deletions_finished, 1);
    assert!(f.blobs.stat(&d).await.unwrap().is_none());
    assert!(meta
        .gc_unfinished_deletions(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());

    // The client's retry is an ordinary new blob.
    push(&f.registry, &a, data).await;
    assert_eq!(read(&f.registry, &a, &d).await, data);
}

//! Disk full: the real binary runs with its data directory on an 8 MiB tmpfs, and clients push until the file
//! system is full.
//!
//! The registry must answer 507 with an OCI JSON error body (never 500, never a crash), keep running, keep serving
//! what it stored before, show nothing of the push that failed (`HEAD` 404, no file under `blobs/`, no leftover
//! upload file for a monolithic push), keep its database sound, and accept pushes again once space is freed.
//!
//! Needs root to mount the tmpfs (CI runs as root). Without permission to mount, the test fails, unless
//! `BERTH_ALLOW_NO_MOUNT=1`, in which case it is skipped with a message.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]
// Test support calls libc (rlimits, mounts, signals) and slices strings it built itself.
#![allow(unsafe_code)]

mod safety_support;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use safety_support::*;

const ALLOW_NO_MOUNT_ENV: &str = "BERTH_ALLOW_NO_MOUNT";

/// A tmpfs mounted for the test; unmounted on drop (lazily if something still holds it).
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. "8m") at `path`. `Err` carries errno.
    fn mount(path: &Path, size: &str) -> Result<TmpfsMount, std::io::Error> {
        std::fs::create_dir_all(path)?;
        let target = CString::new(path.as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={size},mode=0755")).unwrap();
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(TmpfsMount {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).unwrap();
        for _ in 0..50 {
            if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "warning: could not unmount {} ({}); detaching it",
            self.path.display(),
            std::io::Error::last_os_error()
        );
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Fills the file system with `path` until it is full (ENOSPC); returns how many bytes were written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0xa5u8; 64 << 10];
    let mut written = 0u64;
    let mut size = block.len();
    loop {
        match f.write(&block[..size]) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if size == 1 {
                    break;
                }
                size = (size / 2).max(1);
            }
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    written
}

fn free_bytes(path: &Path) -> u64 {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(p.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// What a failed write must look like: 507 and `{"errors":[{"code":..,"message":..}]}` as `application/json`.
fn check_storage_full(
    what: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    if status != 507 {
        return Err(format!(
            "{what}: expected 507 Insufficient Storage, got {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("{what}: 507 with content-type {content_type:?}"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{what}: 507 body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    let e = &v["errors"][0];
    if !(e["code"].is_string() && e["message"].is_string()) {
        return Err(format!("{what}: 507 body is not an OCI error: {v}"));
    }
    Ok(())
}

/// Sends a request and checks it is either accepted with `ok` or refused as storage-full.
enum Answer {
    Ok,
    Full,
}

fn answer(
    what: &str,
    resp: Result<reqwest::blocking::Response, reqwest::Error>,
    ok: u16,
) -> Result<Answer, String> {
    let resp = resp.map_err(|e| {
        format!("{what}: no HTTP answer ({e:#}); a full disk must produce a 507, not a dropped connection")
    })?;
    let status = resp.status().as_u16();
    let ct = header(&resp, "content-type");
    let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
    if status == ok {
        return Ok(Answer::Ok);
    }
    check_storage_full(what, status, &ct, &body).map(|()| Answer::Full)
}

/// Where an upload stands, from `GET` on its URL: (bytes held, the `Range` header). `Range: 0-0` means 0 or 1
/// byte; the upload file tells which.
fn upload_offset(c: &reqwest::blocking::Client, url: &str, data: &Path) -> (u64, String) {
    let r = c
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    assert_eq!(r.status().as_u16(), 204, "GET upload status {url}");
    let range = header(&r, "range");
    let end: u64 = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("bad upload Range {range:?}"));
    if end > 0 {
        return (end + 1, range);
    }
    let id = url.rsplit('/').next().unwrap_or_default();
    let len = std::fs::metadata(data.join("uploads").join(id))
        .map(|m| m.len())
        .unwrap_or(0);
    (len, range)
}

#[test]
fn a_full_disk_gets_507_keeps_old_data_and_recovers_when_space_is_freed() {
    let started = Instant::now();
    let mut rng = Rng::from_env("disk-full");
    let work = workdir("disk-full");
    let mnt_path = work.path().join("mnt");
    let mnt = match TmpfsMount::mount(&mnt_path, "8m") {
        Ok(m) => m,
        Err(e) => {
            if std::env::var(ALLOW_NO_MOUNT_ENV).as_deref() == Ok("1") {
                eprintln!("SKIPPED: cannot mount a tmpfs ({e}); {ALLOW_NO_MOUNT_ENV}=1 is set");
                return;
            }
            panic!(
                "cannot mount a tmpfs at {} ({e}): this test needs root (CI runs as root); \
                 set {ALLOW_NO_MOUNT_ENV}=1 to skip it",
                mnt_path.display()
            );
        }
    };
    let data = mnt.path.join("data");
    // Space to give back at the end: created first so that it is really taken from the registry.
    let reserve = mnt.path.join("reserve");
    std::fs::write(&reserve, rng.bytes(2 << 20)).expect("write the reserve file");
    let mut server = Server::start(&data, &work.path().join("server"), ServerOpts::default());
    let c = server.client();
    let ep = server.ep();
    let repo = "full/app";

    // 1. Push 700 KiB blobs (monolithic) until one is refused.
    let mut stored: Vec<(String, u64)> = Vec::new();
    let mut refused: Option<(Vec<u8>, String)> = None;
    for i in 0..40 {
        let bytes = rng.bytes(700 << 10);
        match push_blob(&c, &ep, repo, &bytes, BlobMode::Monolithic) {
            Push::Acked => stored.push((sha256_digest(&bytes), bytes.len() as u64)),
            Push::Rejected(e) => {
                refused = Some((bytes, e));
                break;
            }
            Push::Lost(e) => panic!(
                "push {i} got no HTTP answer: {e}; a full disk must produce a 507\n{}",
                server.log_tail(40)
            ),
        }
    }
    let (failed_bytes, failed_answer) =
        refused.expect("40 pushes of 700 KiB all fit on an 8 MiB tmpfs?");
    let failed_digest = sha256_digest(&failed_bytes);
    eprintln!(
        "{} blobs stored, then refused: {failed_answer} ({} bytes free)",
        stored.len(),
        free_bytes(&mnt.path)
    );
    assert!(
        failed_answer.contains(": 507 Insufficient Storage (content-type \"application/json\")"),
        "a push that does not fit must get 507 with a JSON body: {failed_answer}"
    );
    assert!(!stored.is_empty(), "nothing fit before the disk was full");

    // 2. Nothing of the refused push is visible, and it left no upload file behind.
    assert_eq!(
        head_blob(&c, &ep, repo, &failed_digest),
        Ok(404),
        "HEAD of the blob whose push failed"
    );
    let (_, problems) = check_blob_files(&data);
    assert!(problems.is_empty(), "{problems:?}");
    let hex = failed_digest.trim_start_matches("sha256:");
    assert!(
        !data.join("blobs/sha256").join(&hex[..2]).join(hex).exists(),
        "a file for the failed blob exists under blobs/"
    );
    let left = upload_files(&data);
    assert!(
        left.is_empty(),
        "a failed monolithic push left upload files: {left:?}"
    );

    // 2b. A chunked upload whose PATCH does not fit: 507, the upload is left as it was (empty), and it is
    //     resumed from where GET says it stands once space is freed (step 5).
    let chunked = rng.bytes(900 << 10);
    let chunked_d = sha256_digest(&chunked);
    let chunked_url = match start_upload(&c, &ep, repo) {
        Ok(u) => u,
        Err(p) => panic!("POST to start an upload with some space left: {p:?}"),
    };
    let r = c
        .patch(&chunked_url)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("0-{}", chunked.len() - 1))
        .body(chunked.clone())
        .send();
    match answer("PATCH that does not fit", r, 202) {
        Ok(Answer::Full) => {}
        Ok(Answer::Ok) => panic!(
            "a 900 KiB PATCH fit into {} free bytes?",
            free_bytes(&mnt.path)
        ),
        Err(e) => panic!("{e}\n{}", server.log_tail(40)),
    }
    let (held, range) = upload_offset(&c, &chunked_url, &data);
    eprintln!(
        "refused PATCH of {} bytes: the upload now reports Range {range:?}",
        chunked.len()
    );
    assert_eq!(
        held,
        0,
        "a PATCH refused with 507 must leave the (empty) upload as it was; it reports Range {range:?}"
    );

    // 3. Fill the file system to the last byte, then try every kind of write: each is accepted or refused with
    //    a clean 507.
    let filler = mnt.path.join("filler");
    let filled = fill(&filler);
    eprintln!(
        "filler took the last {filled} bytes; {} bytes free",
        free_bytes(&mnt.path)
    );
    let tiny = rng.bytes(100);
    let tiny_d = sha256_digest(&tiny);
    let mut answers = Vec::new();
    let tries: Vec<(
        String,
        Result<reqwest::blocking::Response, reqwest::Error>,
        u16,
    )> = vec![
        (
            "monolithic push of 100 bytes".into(),
            c.post(with_digest(
                &ep.v2(&format!("{repo}/blobs/uploads/")),
                &tiny_d,
            ))
            .header("content-type", "application/octet-stream")
            .body(tiny.clone())
            .send(),
            201,
        ),
        (
            "monolithic push of 700 KiB".into(),
            c.post(with_digest(
                &ep.v2(&format!("{repo}/blobs/uploads/")),
                &failed_digest,
            ))
            .header("content-type", "application/octet-stream")
            .body(failed_bytes.clone())
            .send(),
            201,
        ),
        (
            "POST to start an upload".into(),
            c.post(ep.v2(&format!("{repo}/blobs/uploads/"))).send(),
            202,
        ),
    ];
    for (what, resp, ok) in tries {
        match answer(&what, resp, ok) {
            Ok(Answer::Ok) => answers.push(format!("{what}: accepted")),
            Ok(Answer::Full) => answers.push(format!("{what}: 507")),
            Err(e) => panic!("{e}\n{}", server.log_tail(40)),
        }
    }
    // A manifest over blobs that are stored: it needs only a little room in the database.
    let layers: Vec<(String, usize)> = stored
        .iter()
        .map(|(d, n)| (d.clone(), *n as usize))
        .collect();
    let config_layer = layers[0].clone();
    let manifest = image_manifest(
        (&config_layer.0, config_layer.1),
        &layers[1..],
        "while full",
    );
    let r = c
        .put(ep.v2(&format!("{repo}/manifests/while-full")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send();
    let manifest_while_full = match answer("PUT manifest while full", r, 201) {
        Ok(Answer::Ok) => true,
        Ok(Answer::Full) => false,
        Err(e) => panic!("{e}\n{}", server.log_tail(40)),
    };
    answers.push(format!(
        "PUT manifest: {}",
        if manifest_while_full {
            "accepted"
        } else {
            "507"
        }
    ));
    eprintln!("with 0 bytes free: {answers:?}");
    assert!(
        answers.iter().any(|a| a.ends_with("507")),
        "with the disk completely full, every write was accepted: {answers:?}"
    );

    // 4. The process is up, reads work, old data is whole, the refused blob is still invisible.
    assert!(
        server.is_running(),
        "berth exited on a full disk\n{}",
        server.log_tail(60)
    );
    let r = c.get(ep.v2("")).send().expect("GET /v2/ while full");
    assert_eq!(r.status().as_u16(), 200, "GET /v2/ while full");
    for (d, n) in &stored {
        verify_blob(&c, &ep, repo, d, Some(*n)).unwrap_or_else(|e| panic!("while full: {e}"));
    }
    assert_eq!(head_blob(&c, &ep, repo, &failed_digest), Ok(404));
    let (_, problems) = check_blob_files(&data);
    assert!(problems.is_empty(), "{problems:?}");
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "meta.db while the disk is full: {p:?}");

    // 5. Free space: pushes work again, the refused blob included, and everything is whole.
    std::fs::remove_file(&filler).expect("remove filler");
    std::fs::remove_file(&reserve).expect("remove reserve");
    eprintln!("freed space: {} bytes free", free_bytes(&mnt.path));
    for mode in [BlobMode::Monolithic, BlobMode::Chunked(128 << 10)] {
        let bytes = if mode == BlobMode::Monolithic {
            failed_bytes.clone()
        } else {
            rng.bytes(300 << 10)
        };
        let p = push_blob(&c, &ep, repo, &bytes, mode);
        assert_eq!(p, Push::Acked, "{mode:?} push after freeing space");
        stored.push((sha256_digest(&bytes), bytes.len() as u64));
    }
    // The upload refused while full resumes from the offset it reports and completes with the right digest:
    // whatever it kept of the refused PATCH is a true prefix of what was sent.
    let (now_held, _) = upload_offset(&c, &chunked_url, &data);
    assert_eq!(
        now_held, held,
        "the upload's offset moved while nothing was sent to it"
    );
    let next = if (held as usize) < chunked.len() {
        patch_chunk(&c, &ep, &chunked_url, held, &chunked[held as usize..])
            .unwrap_or_else(|p| panic!("resuming the refused upload at {held}: {p:?}"))
    } else {
        chunked_url.clone()
    };
    let r = c
        .put(with_digest(&next, &chunked_d))
        .header("content-length", "0")
        .send()
        .expect("PUT to complete");
    assert_eq!(
        r.status().as_u16(),
        201,
        "completing the upload refused while full, resumed at {held}: {}",
        r.text().unwrap_or_default()
    );
    stored.push((chunked_d, chunked.len() as u64));
    let layers: Vec<(String, usize)> = stored
        .iter()
        .map(|(d, n)| (d.clone(), *n as usize))
        .collect();
    let manifest = image_manifest((&layers[0].0, layers[0].1), &layers[1..], "after freeing");
    assert_eq!(
        push_manifest(&c, &ep, repo, "after-free", &manifest),
        Push::Acked,
        "manifest push after freeing space"
    );
    for (d, n) in &stored {
        verify_blob(&c, &ep, repo, d, Some(*n)).unwrap_or_else(|e| panic!("after freeing: {e}"));
    }
    let (listed, problems) = verify_listings(&c, &ep);
    assert!(problems.is_empty(), "{problems:?}");
    let mut want = vec!["after-free".to_string()];
    if manifest_while_full {
        want.insert(0, "while-full".to_string());
    }
    assert_eq!(listed.get(repo), Some(&want), "{listed:?}");
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "{p:?}");
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "berth exited with {status}");
    eprintln!("disk full test ok in {:?}", started.elapsed());
}

/// On a full disk, a `PATCH` refused with 507 leaves the upload exactly as it was (so the same chunk can be
/// retried), and `DELETE` of the upload frees its space even though the metadata database cannot grow.
#[test]
fn a_refused_patch_writes_nothing_and_its_upload_can_be_cancelled_while_full() {
    let mut rng = Rng::from_env("disk-full-cancel");
    let work = workdir("disk-full-cancel");
    let mnt_path = work.path().join("mnt");
    let mnt = match TmpfsMount::mount(&mnt_path, "4m") {
        Ok(m) => m,
        Err(e) if std::env::var(ALLOW_NO_MOUNT_ENV).as_deref() == Ok("1") => {
            eprintln!("SKIPPED: cannot mount a tmpfs ({e}); {ALLOW_NO_MOUNT_ENV}=1 is set");
            return;
        }
        Err(e) => panic!("cannot mount a tmpfs ({e}); set {ALLOW_NO_MOUNT_ENV}=1 to skip"),
    };
    let data = mnt.path.join("data");
    let server = Server::start(&data, &work.path().join("server"), ServerOpts::default());
    let c = server.client();
    let ep = server.ep();
    let repo = "full/cancel";
    let blob = rng.bytes(768 << 10);
    let first = 256usize << 10;
    let url = start_upload(&c, &ep, repo).expect("POST");
    let url = patch_chunk(&c, &ep, &url, 0, &blob[..first]).expect("first PATCH");

    // Full, but for 128 KiB: the next 512 KiB chunk cannot fit.
    let filler = mnt.path.join("filler");
    let filled = fill(&filler);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(filled.saturating_sub(128 << 10)).unwrap();
    drop(f);
    let r = c
        .patch(&url)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{first}-{}", blob.len() - 1))
        .body(blob[first..].to_vec())
        .send();
    match answer("PATCH that does not fit", r, 202) {
        Ok(Answer::Full) => {}
        Ok(Answer::Ok) => panic!("512 KiB fit into 128 KiB?"),
        Err(e) => panic!("{e}"),
    }
    let mut problems = Vec::new();
    let (held, range) = upload_offset(&c, &url, &data);
    if held != first as u64 {
        problems.push(format!(
            "after a PATCH refused with \"nothing was written\", GET {url} reports Range {range:?} \
             ({held} bytes) instead of the acknowledged 0-{}",
            first - 1
        ));
    }
    fill(&mnt.path.join("filler2"));
    let free_before = free_bytes(&mnt.path);
    let r = c.delete(&url).send().expect("DELETE upload");
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    if status != 204 {
        problems.push(format!(
            "DELETE {url} of an upload holding {held} bytes on a full disk: {status} {body}"
        ));
    }
    let left = upload_files(&data);
    if !left.is_empty() || free_bytes(&mnt.path) <= free_before {
        problems.push(format!(
            "after DELETE the upload file is still there ({left:?}); free bytes {} -> {}",
            free_before,
            free_bytes(&mnt.path)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! Online garbage collection against the real binary.
//!
//! * `gc_under_concurrent_pushes_deletes_and_re_pushes`: `berth serve` with a 1 s grace
//!   period and a 1 s interval; four threads push images that share layers (uploads,
//!   cross-repository mounts, layers skipped after a HEAD), delete images and whole
//!   repositories (the ECR API via the aws CLI), re-push layers collection has deleted,
//!   and pull-verify, while a fifth thread unlinks small blobs and uploads them again
//!   just when passes delete them (without the commit's pin this fails within seconds:
//!   the upload finds its bytes gone), for `BERTH_GC_STRESS_SECS` (default 40) seconds, while the server
//!   collects every second and `berth gc` also runs by hand beside it. Afterwards every
//!   image acknowledged and not deleted pulls intact (digests verified), and once idle the
//!   store holds no unreferenced blob and no file without a row.
//! * `gc_dry_run_reports_and_a_run_frees_a_deleted_repositorys_unshared_layers`: the
//!   `berth gc` report in both forms, and that a run frees exactly the unshared bytes.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;

const REPOS: usize = 4;
const THREADS: u64 = 4;

/// A tiny deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

#[derive(Clone)]
struct Image {
    repo: usize,
    digest: String,
    manifest: Vec<u8>,
    blobs: Vec<String>,
}

#[derive(Default)]
struct Counters {
    pushed: AtomicU64,
    refused_and_retried: AtomicU64,
    mounted: AtomicU64,
    skipped_after_head: AtomicU64,
    uploaded: AtomicU64,
    images_deleted: AtomicU64,
    repos_deleted: AtomicU64,
    pulls_verified: AtomicU64,
}

struct State {
    reg_base: String,
    /// Images acknowledged (201) and not deleted since.
    alive: Mutex<Vec<Image>>,
    /// Content of every blob ever pushed, by digest.
    content: Mutex<HashMap<String, Vec<u8>>>,
    /// Pushes and pulls of a repository hold it shared; deleting an image or the
    /// repository holds it exclusively, so the expected set changes with the server's.
    repo_locks: Vec<RwLock<()>>,
    /// Layers shared between images (and repositories).
    pool: Vec<Vec<u8>>,
    counters: Counters,
    data_dir: PathBuf,
}

fn repo_name(i: usize) -> String {
    format!("gcs/r{i}")
}

impl State {
    fn v2(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.reg_base)
    }

    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_string()
        } else {
            format!("{}{location}", self.reg_base)
        }
    }

    /// Makes `bytes` present in `repo`: skipped after a HEAD, mounted from another
    /// repository, or uploaded.
    fn ensure_blob(
        &self,
        c: &reqwest::blocking::Client,
        rng: &mut Rng,
        repo: usize,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        self.content
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_insert_with(|| bytes.to_vec());
        let name = repo_name(repo);
        let head = c
            .head(self.v2(&format!("{name}/blobs/{digest}")))
            .send()
            .expect("HEAD blob");
        if head.status().as_u16() == 200 {
            self.counters
                .skipped_after_head
                .fetch_add(1, Ordering::Relaxed);
            return digest;
        }
        let mut start = self.v2(&format!("{name}/blobs/uploads/"));
        if rng.below(2) == 0 {
            let from = repo_name((repo + 1 + rng.below(REPOS as u64 - 1) as usize) % REPOS);
            start = with_query(&with_query(&start, "mount", &digest), "from", &from);
        }
        let resp = c.post(start).send().expect("POST upload");
        match resp.status().as_u16() {
            201 => {
                self.counters.mounted.fetch_add(1, Ordering::Relaxed);
                return digest;
            }
            202 => {}
            s => panic!("POST upload: {s} {}", resp.text().unwrap_or_default()),
        }
        let location = self.resolve(&header(&resp, "location"));
        let resp = c
            .put(with_query(&location, "digest", &digest))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("PUT upload");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "PUT blob: {}",
            resp.text().unwrap_or_default()
        );
        self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
        digest
    }

    /// Pushes one image (a unique config, two or three pool layers, sometimes a unique
    /// layer); a manifest refused because collection took a link in between is pushed again.
    fn push_image(&self, c: &reqwest::blocking::Client, rng: &mut Rng, repo: usize, tag: &str) {
        let _shared = self.repo_locks[repo].read().unwrap();
        let mut layers: Vec<Vec<u8>> = (0..2 + rng.below(2))
            .map(|_| self.pool[rng.below(self.pool.len() as u64) as usize].clone())
            .collect();
        if rng.below(2) == 0 {
            let len = 1000 + rng.below(8000) as usize;
            layers.push(rng.bytes(len));
        }
        layers.dedup();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "tag": tag, "nonce": rng.next(),
        }))
        .unwrap();
        for attempt in 0..10 {
            let mut blobs = vec![self.ensure_blob(c, rng, repo, &config)];
            for l in &layers {
                blobs.push(self.ensure_blob(c, rng, repo, l));
            }
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": blobs[0], "size": config.len()},
                "layers": layers.iter().zip(&blobs[1..]).map(|(l, d)| json!({
                    "mediaType": OCI_LAYER_TAR, "digest": d, "size": l.len(),
                })).collect::<Vec<_>>(),
            }))
            .unwrap();
            let resp = c
                .put(self.v2(&format!("{}/manifests/{tag}", repo_name(repo))))
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone())
                .send()
                .expect("PUT manifest");
            let status = resp.status().as_u16();
            if status == 201 {
                self.counters.pushed.fetch_add(1, Ordering::Relaxed);
                self.alive.lock().unwrap().push(Image {
                    repo,
                    digest: sha256_digest(&manifest),
                    manifest,
                    blobs,
                });
                return;
            }
            let text = resp.text().unwrap_or_default();
            assert!(
                status == 400 && text.contains("MANIFEST_BLOB_UNKNOWN"),
                "PUT manifest (attempt {attempt}): {status} {text}"
            );
            self.counters
                .refused_and_retried
                .fetch_add(1, Ordering::Relaxed);
        }
        panic!("a manifest was refused ten times in a row");
    }

    fn pick(&self, rng: &mut Rng, repo: Option<usize>) -> Option<Image> {
        let alive = self.alive.lock().unwrap();
        let candidates: Vec<&Image> = alive
            .iter()
            .filter(|i| repo.is_none_or(|r| i.repo == r))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[rng.below(candidates.len() as u64) as usize].clone())
    }

    fn delete_image(&self, c: &reqwest::blocking::Client, rng: &mut Rng, repo: usize) {
        let _exclusive = self.repo_locks[repo].write().unwrap();
        let Some(img) = self.pick(rng, Some(repo)) else {
            return;
        };
        let resp = c
            .delete(self.v2(&format!("{}/manifests/{}", repo_name(repo), img.digest)))
            .send()
            .expect("DELETE manifest");
        assert_eq!(
            resp.status().as_u16(),
            202,
            "DELETE manifest: {}",
            resp.text().unwrap_or_default()
        );
        self.alive
            .lock()
            .unwrap()
            .retain(|i| i.digest != img.digest);
        self.counters.images_deleted.fetch_add(1, Ordering::Relaxed);
    }

    fn delete_repository(&self, repo: usize) {
        let _exclusive = self.repo_locks[repo].write().unwrap();
        let out = run(
            aws(&self.reg_base, &self.data_dir).args([
                "ecr",
                "delete-repository",
                "--repository-name",
                &repo_name(repo),
                "--force",
            ]),
            Duration::from_secs(60),
        );
        // A repository nobody pushed to since its last deletion does not exist.
        assert!(
            out.success() || out.stderr_str().contains("RepositoryNotFoundException"),
            "{}",
            out.report()
        );
        self.alive.lock().unwrap().retain(|i| i.repo != repo);
        self.counters.repos_deleted.fetch_add(1, Ordering::Relaxed);
    }

    /// Pulls an image by digest and checks the manifest and every blob byte for byte.
    fn verify(&self, c: &reqwest::blocking::Client, img: &Image) {
        let name = repo_name(img.repo);
        let resp = c
            .get(self.v2(&format!("{name}/manifests/{}", img.digest)))
            .header("accept", OCI_MANIFEST)
            .send()
            .expect("GET manifest");
        assert_eq!(
            resp.status().as_u16(),
            200,
            "GET manifest {name}@{}",
            img.digest
        );
        assert_eq!(resp.bytes().unwrap().as_ref(), img.manifest.as_slice());
        for d in &img.blobs {
            let resp = c
                .get(self.v2(&format!("{name}/blobs/{d}")))
                .send()
                .expect("GET blob");
            assert_eq!(
                resp.status().as_u16(),
                200,
                "GET blob {d} of {name}@{}",
                img.digest
            );
            let body = resp.bytes().unwrap();
            assert_eq!(
                sha256_digest(&body),
                *d,
                "blob {d} of {name}@{} is corrupt",
                img.digest
            );
        }
        self.counters.pulls_verified.fetch_add(1, Ordering::Relaxed);
    }

    fn verify_some(&self, c: &reqwest::blocking::Client, rng: &mut Rng, repo: usize) {
        let _shared = self.repo_locks[repo].read().unwrap();
        if let Some(img) = self.pick(rng, Some(repo)) {
            self.verify(c, &img);
        }
    }
}

/// The aws CLI logged in as the test administrator, pointed at the registry.
fn aws(base: &str, scratch: &Path) -> Command {
    let mut cmd = Command::new("aws");
    cmd.arg("--endpoint-url")
        .arg(base)
        .arg("--output")
        .arg("json")
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            scratch.join("no-credentials"),
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL");
    cmd
}

/// `berth gc` on the data directory; returns the JSON report.
fn berth_gc(data_dir: &Path, args: &[&str]) -> Value {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("gc")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--json")
            .args(args),
        Duration::from_secs(120),
    );
    assert!(out.success(), "berth gc {args:?}: {}", out.report());
    out.json()
}

/// `berth gc` in its readable form.
fn berth_gc_text(data_dir: &Path, args: &[&str]) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("gc")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args),
        Duration::from_secs(120),
    );
    assert!(out.success(), "berth gc {args:?}: {}", out.report());
    out.stdout_str()
}

fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn count_blob_files(data_dir: &Path) -> usize {
    let mut n = 0;
    for prefix in std::fs::read_dir(data_dir.join("blobs/sha256"))
        .into_iter()
        .flatten()
    {
        n += std::fs::read_dir(prefix.unwrap().path()).unwrap().count();
    }
    n
}

/// What the server logged as freed by its background passes.
fn freed_by_server(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("garbage collection freed"))
        .filter_map(|l| {
            let rest =
                &l[l.find("garbage collection freed ")? + "garbage collection freed ".len()..];
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn gc_under_concurrent_pushes_deletes_and_re_pushes() {
    if !require_clients(&["aws"]) {
        return;
    }
    let secs: u64 = std::env::var("BERTH_GC_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let reg = TestRegistry::start_with_env(&[
        ("BERTH_GC__GRACE_SECS", "1"),
        ("BERTH_GC__INTERVAL_SECS", "1"),
        ("BERTH_STORAGE__FSYNC", "false"),
    ]);
    let data_dir = reg.data_dir().expect("a spawned registry");
    let mut seed = Rng(0x1234_5678_9abc_def1 ^ secs);
    let pool: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let len = 4096 << (i % 6);
            seed.bytes(len)
        })
        .collect();
    let state = Arc::new(State {
        reg_base: reg.base_url(),
        alive: Mutex::default(),
        content: Mutex::default(),
        repo_locks: (0..REPOS).map(|_| RwLock::new(())).collect(),
        pool,
        counters: Counters::default(),
        data_dir: data_dir.clone(),
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let state = state.clone();
            thread::spawn(move || {
                let c = http();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1000_0001));
                let mut n = 0;
                while Instant::now() < deadline {
                    let repo = rng.below(REPOS as u64) as usize;
                    match rng.below(100) {
                        0..=59 => {
                            n += 1;
                            state.push_image(&c, &mut rng, repo, &format!("t{t}-{n}"));
                        }
                        60..=76 => state.delete_image(&c, &mut rng, repo),
                        77..=79 => state.delete_repository(repo),
                        _ => state.verify_some(&c, &mut rng, repo),
                    }
                }
            })
        })
        .collect();
    // Hot orphans: small blobs unlinked by hand and uploaded again after 0.9-2.5 s, about
    // when the server's passes delete them, so uploads keep landing on blobs that are being
    // collected; each upload must then serve its bytes.
    let hot = {
        let state = state.clone();
        thread::spawn(move || {
            let c = http();
            let mut rng = Rng(0xdead_beef_cafe_f00d);
            let blobs: Vec<Vec<u8>> = (0..32).map(|_| rng.bytes(1024)).collect();
            let mut due: Vec<Option<Instant>> = vec![None; blobs.len()];
            let name = "gcs/hot";
            let mut reuploads = 0u64;
            while Instant::now() < deadline {
                let i = rng.below(blobs.len() as u64) as usize;
                let digest = sha256_digest(&blobs[i]);
                match due[i] {
                    Some(at) if Instant::now() < at => {
                        thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    _ => {}
                }
                let resp = c
                    .post(state.v2(&format!("{name}/blobs/uploads/")))
                    .send()
                    .expect("POST upload");
                assert_eq!(resp.status().as_u16(), 202);
                let location = state.resolve(&header(&resp, "location"));
                let resp = c
                    .put(with_query(&location, "digest", &digest))
                    .header("content-type", "application/octet-stream")
                    .body(blobs[i].clone())
                    .send()
                    .expect("PUT upload");
                assert_eq!(
                    resp.status().as_u16(),
                    201,
                    "re-upload of a hot blob: {}",
                    resp.text().unwrap_or_default()
                );
                let resp = c
                    .get(state.v2(&format!("{name}/blobs/{digest}")))
                    .send()
                    .expect("GET blob");
                assert_eq!(resp.status().as_u16(), 200, "a hot blob just uploaded");
                assert_eq!(
                    sha256_digest(&resp.bytes().unwrap()),
                    digest,
                    "a hot blob just uploaded is corrupt"
                );
                reuploads += 1;
                let resp = c
                    .delete(state.v2(&format!("{name}/blobs/{digest}")))
                    .send()
                    .expect("DELETE blob");
                assert_eq!(resp.status().as_u16(), 202);
                due[i] = Some(Instant::now() + Duration::from_millis(900 + rng.below(1600)));
            }
            reuploads
        })
    };
    // `berth gc` by hand beside the server's own passes (two processes, one database).
    let mut manual_freed = 0;
    while Instant::now() + Duration::from_secs(4) < deadline {
        thread::sleep(Duration::from_secs(3));
        let report = berth_gc(&data_dir, &["--grace-secs", "1"]);
        manual_freed += report["blobs"].as_u64().unwrap();
    }
    for w in workers {
        w.join().expect("a worker failed (see above)");
    }
    let reuploads = hot
        .join()
        .expect("the hot-orphan thread failed (see above)");
    let c = &state.counters;
    eprintln!("re-uploaded {reuploads} hot blobs that were being collected");
    eprintln!(
        "pushed {} images ({} manifests refused and pushed again; blobs: {} uploaded, {} mounted, {} skipped after HEAD), \
         deleted {} images and {} repositories, verified {} pulls during the run; berth gc by hand freed {manual_freed}",
        c.pushed.load(Ordering::Relaxed),
        c.refused_and_retried.load(Ordering::Relaxed),
        c.uploaded.load(Ordering::Relaxed),
        c.mounted.load(Ordering::Relaxed),
        c.skipped_after_head.load(Ordering::Relaxed),
        c.images_deleted.load(Ordering::Relaxed),
        c.repos_deleted.load(Ordering::Relaxed),
        c.pulls_verified.load(Ordering::Relaxed),
    );

    // Every image acknowledged and not deleted pulls intact.
    let client = http();
    let alive = state.alive.lock().unwrap().clone();
    assert!(
        !alive.is_empty(),
        "no image survived: the workload is too destructive to prove anything"
    );
    for img in &alive {
        state.verify(&client, img);
    }

    // Idle now: within a few passes nothing unreferenced is left, not even within grace.
    let quiet = Instant::now();
    let report = loop {
        let r = berth_gc(&data_dir, &["--dry-run", "--grace-secs", "0"]);
        let leftover = r["blobs"].as_u64().unwrap() + r["unrecorded_files"].as_u64().unwrap();
        if leftover == 0 || quiet.elapsed() > Duration::from_secs(30) {
            break r;
        }
        thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        report["blobs"], 0,
        "unreferenced blobs left after the server's passes: {report}"
    );
    assert_eq!(report["unrecorded_files"], 0, "{report}");
    assert_eq!(report["links"], 0, "{report}");
    let needed: std::collections::BTreeSet<&String> = alive.iter().flat_map(|i| &i.blobs).collect();
    assert_eq!(
        count_blob_files(&data_dir),
        needed.len(),
        "the store holds exactly the blobs of the surviving images"
    );
    for img in &alive {
        state.verify(&client, img);
    }
    let log = reg.server_log();
    let server_freed = freed_by_server(&log);
    eprintln!(
        "the server's background passes freed {server_freed} blobs; idle after {:?}",
        quiet.elapsed()
    );
    assert!(
        server_freed > 0,
        "the background collector never freed anything:\n{log}"
    );
    assert!(
        !log.contains("bytes are missing"),
        "a commit found its bytes gone:\n{log}"
    );
    assert!(!log.contains("garbage collection failed"), "{log}");
}

#[test]
fn gc_dry_run_reports_and_a_run_frees_a_deleted_repositorys_unshared_layers() {
    if !require_clients(&["aws"]) {
        return;
    }
    let reg = TestRegistry::start_with_env(&[("BERTH_GC__ENABLED", "false")]);
    let data_dir = reg.data_dir().expect("a spawned registry");
    let suffix = unique_suffix();
    let (a, b) = (format!("gce2e/a-{suffix}"), format!("gce2e/b-{suffix}"));
    let mut rng = Rng(0xfeed_f00d);
    let shared = rng.bytes(30_000);
    let unique = rng.bytes(50_000);
    let push = |repo: &str, layers: &[&[u8]], marker: &str| -> (String, Vec<String>) {
        let config =
            serde_json::to_vec(&json!({"os": "linux", "architecture": "amd64", "m": marker}))
                .unwrap();
        let mut blobs = vec![push_blob(&reg, repo, &config)];
        for l in layers {
            blobs.push(push_blob(&reg, repo, l));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": blobs[0], "size": config.len()},
            "layers": layers.iter().zip(&blobs[1..]).map(|(l, d)| json!({
                "mediaType": OCI_LAYER_TAR, "digest": d, "size": l.len(),
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let resp = put_manifest(&reg, repo, "v1", OCI_MANIFEST, &manifest);
        assert_eq!(resp.status().as_u16(), 201);
        (config.len().to_string(), blobs)
    };
    let (config_a_len, blobs_a) = push(&a, &[&shared, &unique], "a");
    let (_, blobs_b) = push(&b, &[&shared], "b");
    let unshared_bytes = unique.len() as u64 + config_a_len.parse::<u64>().unwrap();

    // Nothing to reclaim while both repositories hold their images.
    let r = berth_gc(&data_dir, &["--dry-run", "--grace-secs", "0"]);
    assert_eq!(
        (r["blobs"].as_u64(), r["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );

    let out = run(
        aws(&reg.base_url(), &data_dir).args([
            "ecr",
            "delete-repository",
            "--repository-name",
            &a,
            "--force",
        ]),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{}", out.report());

    // With the default grace (a day) nothing is due yet: both blobs are kept, pending.
    let r = berth_gc(&data_dir, &["--dry-run"]);
    assert_eq!(r["grace_secs"], 86400, "{r}");
    assert_eq!(r["blobs"], 0, "{r}");
    assert_eq!(
        (r["pending_blobs"].as_u64(), r["pending_bytes"].as_u64()),
        (Some(2), Some(unshared_bytes)),
        "{r}"
    );

    // Without grace, the dry run reports exactly the deleted repository's unshared bytes.
    let r = berth_gc(&data_dir, &["--dry-run", "--grace-secs", "0"]);
    assert_eq!(
        (r["blobs"].as_u64(), r["bytes"].as_u64()),
        (Some(2), Some(unshared_bytes)),
        "{r}"
    );
    let text = berth_gc_text(&data_dir, &["--dry-run", "--grace-secs", "0"]);
    assert!(text.contains("would reclaim 2 blobs"), "{text}");
    assert!(
        text.contains(&format!("({unshared_bytes} bytes)")),
        "{text}"
    );
    assert!(
        blob_file(&data_dir, &blobs_a[2]).exists(),
        "a dry run deletes nothing"
    );

    // A real run frees them; the shared layer and the other repository's image stay.
    let text = berth_gc_text(&data_dir, &["--grace-secs", "0"]);
    assert!(
        text.contains(&format!(
            "reclaimed 2 blobs, {} ({unshared_bytes} bytes)",
            human(unshared_bytes)
        )),
        "{text}"
    );
    assert!(!blob_file(&data_dir, &blobs_a[0]).exists());
    assert!(!blob_file(&data_dir, &blobs_a[2]).exists());
    assert!(
        blob_file(&data_dir, &blobs_a[1]).exists(),
        "the shared layer survives"
    );
    let c = http();
    for d in &blobs_b {
        let resp = c.get(reg.v2(&format!("{b}/blobs/{d}"))).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(sha256_digest(&resp.bytes().unwrap()), *d);
    }
    let r = berth_gc(&data_dir, &["--dry-run", "--grace-secs", "0"]);
    assert_eq!(
        (r["blobs"].as_u64(), r["pending_blobs"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );

    // The freed layer can be pushed again, and serves its bytes.
    let again = push_blob(&reg, &b, &unique);
    let resp = c.get(reg.v2(&format!("{b}/blobs/{again}"))).send().unwrap();
    assert_eq!(resp.bytes().unwrap().as_ref(), unique.as_slice());
}

/// The CLI's size format (`berth gc` prints `12.3 KiB`).
fn human(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let units = ["KiB", "MiB", "GiB"];
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

//! Crash safety: the real `berth` binary is SIGKILLed at random moments while clients push, restarted on the same
//! data directory, and checked:
//!
//! * every blob and manifest whose push was acknowledged (201) before the kill pulls back byte-identical;
//! * every tag points at the last manifest acknowledged for it, or at one pushed to it later whose push was cut
//!   off by the kill (one writer per tag, so nothing else is possible);
//! * nothing partial is visible: every repository in the catalog and every tag in a tag list resolves to a
//!   manifest whose blobs all pull back whole, a blob whose push was cut off is either absent or whole, and every
//!   file under `blobs/` hashes to its name, and no upload file without an upload row outlives the restart;
//! * `meta.db` passes `PRAGMA integrity_check` and `PRAGMA foreign_key_check`;
//! * an upload in progress survives a kill: its acknowledged offset is reported after the restart and it can be
//!   completed, even when the kill cut a `PATCH` off in the middle of its body.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod safety_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use safety_support::*;

const WRITERS: usize = 4;
const ROUNDS: usize = 5;
const TAGS_PER_WRITER: usize = 3;

/// What a tag may point at: the last manifest acknowledged for it, or one pushed to it after that whose
/// push was cut off (`pending`, in push order).
#[derive(Default, Debug, Clone)]
struct TagState {
    acked: Option<String>,
    pending: Vec<String>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    blobs_acked: u64,
    manifests_acked: u64,
    lost: u64,
}

/// One client thread's view of what it pushed, kept across rounds.
struct Writer {
    id: usize,
    repo: String,
    tags: Vec<String>,
    rng: Rng,
    next_tag: usize,
    shared_layer: Arc<Vec<u8>>,
    /// Blobs that must pull back whole (acknowledged, or seen whole after a restart): digest -> size.
    must_blobs: BTreeMap<String, u64>,
    /// Blobs whose push was cut off: absent or whole.
    maybe_blobs: BTreeMap<String, u64>,
    must_manifests: BTreeSet<String>,
    maybe_manifests: BTreeSet<String>,
    manifest_bytes: HashMap<String, Vec<u8>>,
    tag_states: BTreeMap<String, TagState>,
    /// Bytes of a few blobs pushed before, pushed again now and then (the deduplicating commit path).
    recent: Vec<Vec<u8>>,
    /// Answers that are bugs whatever the timing (an error status, a transport error while the server was up).
    failures: Vec<String>,
    stats: Stats,
}

enum Step {
    Continue,
    Stop,
}

impl Writer {
    fn new(id: usize, rng: Rng, shared_layer: Arc<Vec<u8>>) -> Writer {
        Writer {
            id,
            repo: format!("crash/repo-{}", id % 2),
            tags: (0..TAGS_PER_WRITER)
                .map(|k| format!("w{id}-t{k}"))
                .collect(),
            rng,
            next_tag: 0,
            shared_layer,
            must_blobs: BTreeMap::new(),
            maybe_blobs: BTreeMap::new(),
            must_manifests: BTreeSet::new(),
            maybe_manifests: BTreeSet::new(),
            manifest_bytes: HashMap::new(),
            tag_states: BTreeMap::new(),
            recent: Vec::new(),
            failures: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Classifies a push outcome. `Lost` is expected only once the kill has begun.
    fn outcome(&mut self, p: Push, killing: &AtomicBool) -> Result<(), Step> {
        match p {
            Push::Acked => Ok(()),
            Push::Lost(e) => {
                self.stats.lost += 1;
                if !killing.load(Ordering::SeqCst) {
                    self.failures.push(format!(
                        "writer {}: transport error while the server was up: {e}",
                        self.id
                    ));
                }
                Err(Step::Stop)
            }
            Push::Rejected(e) => {
                self.failures.push(format!("writer {}: {e}", self.id));
                Err(Step::Stop)
            }
        }
    }

    fn pick_mode(&mut self) -> BlobMode {
        match self.rng.range(0, 2) {
            0 => BlobMode::Monolithic,
            1 => BlobMode::PostPut,
            _ => BlobMode::Chunked(self.rng.range(16 << 10, 256 << 10) as usize),
        }
    }

    fn push_one_blob(
        &mut self,
        c: &reqwest::blocking::Client,
        ep: &Endpoint,
        bytes: &[u8],
        mode: BlobMode,
        killing: &AtomicBool,
    ) -> Result<(), Step> {
        let d = sha256_digest(bytes);
        let n = bytes.len() as u64;
        if !self.must_blobs.contains_key(&d) {
            self.maybe_blobs.insert(d.clone(), n);
        }
        let p = push_blob(c, ep, &self.repo, bytes, mode);
        self.outcome(p, killing)?;
        self.maybe_blobs.remove(&d);
        self.must_blobs.insert(d, n);
        self.stats.blobs_acked += 1;
        Ok(())
    }

    /// Pushes one image (1-3 layers, a config, a manifest under one of this writer's tags).
    fn push_image(
        &mut self,
        c: &reqwest::blocking::Client,
        ep: &Endpoint,
        killing: &AtomicBool,
    ) -> Result<Step, Step> {
        let mut layers = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            if killing.load(Ordering::SeqCst) {
                return Ok(Step::Stop);
            }
            let roll = self.rng.range(0, 99);
            let bytes = if roll < 15 {
                self.shared_layer.to_vec()
            } else if roll < 30 && !self.recent.is_empty() {
                let i = self.rng.range(0, self.recent.len() as u64 - 1) as usize;
                self.recent[i].clone()
            } else {
                let size = if self.rng.chance(50) {
                    self.rng.range(1, 64 << 10)
                } else {
                    self.rng.range(64 << 10, 700 << 10)
                };
                self.rng.bytes(size as usize)
            };
            let mode = self.pick_mode();
            self.push_one_blob(c, ep, &bytes, mode, killing)?;
            layers.push((sha256_digest(&bytes), bytes.len()));
            if self.recent.len() >= 4 {
                self.recent.remove(0);
            }
            self.recent.push(bytes);
        }
        let note = format!("writer {} nonce {:016x}", self.id, self.rng.next_u64());
        let config = image_config(&layers, &note);
        let mode = if self.rng.chance(50) {
            BlobMode::Monolithic
        } else {
            BlobMode::PostPut
        };
        if killing.load(Ordering::SeqCst) {
            return Ok(Step::Stop);
        }
        self.push_one_blob(c, ep, &config, mode, killing)?;
        let manifest = image_manifest((&sha256_digest(&config), config.len()), &layers, &note);
        let md = sha256_digest(&manifest);
        let tag = self.tags[self.next_tag % self.tags.len()].clone();
        self.next_tag += 1;
        if killing.load(Ordering::SeqCst) {
            return Ok(Step::Stop);
        }
        self.manifest_bytes.insert(md.clone(), manifest.clone());
        self.maybe_manifests.insert(md.clone());
        self.tag_states
            .entry(tag.clone())
            .or_default()
            .pending
            .push(md.clone());
        let p = push_manifest(c, ep, &self.repo, &tag, &manifest);
        self.outcome(p, killing)?;
        self.maybe_manifests.remove(&md);
        self.must_manifests.insert(md.clone());
        self.tag_states.insert(
            tag,
            TagState {
                acked: Some(md),
                pending: Vec::new(),
            },
        );
        self.stats.manifests_acked += 1;
        Ok(Step::Continue)
    }

    /// Pushes images until the kill begins or a push fails.
    fn run(mut self, ep: Endpoint, killing: Arc<AtomicBool>) -> Writer {
        let c = client_builder(Duration::from_secs(60))
            .build()
            .expect("build client");
        while !killing.load(Ordering::SeqCst) {
            match self.push_image(&c, &ep, &killing) {
                Ok(Step::Continue) => {}
                Ok(Step::Stop) | Err(Step::Stop) | Err(Step::Continue) => break,
            }
        }
        self
    }

    /// Checks this writer's expectations against the restarted server, then narrows them to what was observed
    /// (what is visible now is durable and must stay so).
    fn verify(&mut self, c: &reqwest::blocking::Client, ep: &Endpoint, problems: &mut Vec<String>) {
        let repo = self.repo.clone();
        for (d, n) in &self.must_blobs {
            if let Err(e) = verify_blob(c, ep, &repo, d, Some(*n)) {
                problems.push(format!(
                    "writer {}: acknowledged blob {d} ({n} bytes) is not whole: {e}",
                    self.id
                ));
            }
        }
        for (d, n) in std::mem::take(&mut self.maybe_blobs) {
            match head_blob(c, ep, &repo, &d) {
                Ok(404) => {}
                Ok(200) => match verify_blob(c, ep, &repo, &d, Some(n)) {
                    Ok(()) => {
                        self.must_blobs.insert(d, n);
                    }
                    Err(e) => problems.push(format!(
                        "writer {}: blob {d} whose push was cut off is visible (HEAD 200) but not whole: {e}",
                        self.id
                    )),
                },
                Ok(s) => problems.push(format!("writer {}: HEAD blob {d}: {s}", self.id)),
                Err(e) => problems.push(e),
            }
        }
        for d in &self.must_manifests {
            match get_manifest(c, ep, &repo, d) {
                Ok(f) if f.status == 200 && f.body == self.manifest_bytes[d] && f.digest == *d => {}
                Ok(f) => problems.push(format!(
                    "writer {}: acknowledged manifest {repo}@{d}: {} digest {:?}, {} bytes (expected {})",
                    self.id,
                    f.status,
                    f.digest,
                    f.body.len(),
                    self.manifest_bytes[d].len()
                )),
                Err(e) => problems.push(e),
            }
        }
        for d in std::mem::take(&mut self.maybe_manifests) {
            match get_manifest(c, ep, &repo, &d) {
                Ok(f) if f.status == 404 => {}
                Ok(f) if f.status == 200 && f.body == self.manifest_bytes[&d] && f.digest == d => {
                    self.must_manifests.insert(d);
                }
                Ok(f) => problems.push(format!(
                    "writer {}: manifest {repo}@{d} whose push was cut off: {} digest {:?}, {} bytes",
                    self.id,
                    f.status,
                    f.digest,
                    f.body.len()
                )),
                Err(e) => problems.push(e),
            }
        }
        for (tag, st) in self.tag_states.iter_mut() {
            let f = match get_manifest(c, ep, &repo, tag) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            match f.status {
                404 if st.acked.is_none() => st.pending.clear(),
                404 => problems.push(format!(
                    "writer {}: tag {repo}:{tag} is gone; it was acknowledged at {}",
                    self.id,
                    st.acked.as_deref().unwrap_or("-")
                )),
                200 => {
                    let d = sha256_digest(&f.body);
                    let allowed = st.acked.iter().chain(st.pending.iter()).any(|a| *a == d);
                    if f.digest != d {
                        problems.push(format!(
                            "writer {}: GET {repo}:{tag}: Docker-Content-Digest {} but the body hashes to {d}",
                            self.id, f.digest
                        ));
                    } else if !allowed {
                        problems.push(format!(
                            "writer {}: tag {repo}:{tag} points at {d}; allowed: last acknowledged {:?} or \
                             cut-off pushes {:?}",
                            self.id, st.acked, st.pending
                        ));
                    } else if self.manifest_bytes.get(&d) != Some(&f.body) {
                        problems.push(format!(
                            "writer {}: tag {repo}:{tag}: body differs from what was pushed",
                            self.id
                        ));
                    } else {
                        self.must_manifests.insert(d.clone());
                        *st = TagState {
                            acked: Some(d),
                            pending: Vec::new(),
                        };
                    }
                }
                s => problems.push(format!(
                    "writer {}: GET {repo}:{tag}: {s} {}",
                    self.id,
                    String::from_utf8_lossy(&f.body)
                )),
            }
        }
    }
}

/// Everything the test checks after a restart. Returns the problems found.
fn verify_all(server: &Server, writers: &mut [Writer]) -> Vec<String> {
    let c = server.client();
    let ep = server.ep();
    let mut problems = Vec::new();
    for w in writers.iter_mut() {
        w.verify(&c, &ep, &mut problems);
    }
    let (listed, p) = verify_listings(&c, &ep);
    problems.extend(p);
    for (repo, tags) in &listed {
        let known: BTreeSet<&String> = writers
            .iter()
            .filter(|w| &w.repo == repo)
            .flat_map(|w| w.tag_states.keys())
            .collect();
        if known.is_empty() {
            problems.push(format!("catalog lists {repo}, which no writer pushed to"));
        }
        for t in tags {
            if !known.contains(t) {
                problems.push(format!(
                    "tags/list of {repo} has {t:?}, which no writer pushed"
                ));
            }
        }
    }
    for w in writers.iter() {
        for (tag, st) in &w.tag_states {
            if st.acked.is_some() && !listed.get(&w.repo).is_some_and(|t| t.contains(tag)) {
                problems.push(format!(
                    "tag {}:{tag} resolves but is missing from the catalog/tag list ({listed:?})",
                    w.repo
                ));
            }
        }
    }
    let (files, p) = check_blob_files(&server.data_dir);
    problems.extend(p);
    let expected: BTreeSet<&String> = writers.iter().flat_map(|w| w.must_blobs.keys()).collect();
    if files < expected.len() {
        problems.push(format!(
            "{} distinct acknowledged blobs but only {files} files under blobs/",
            expected.len()
        ));
    }
    problems.extend(sqlite_check(&server.data_dir));
    let orphans = orphan_upload_files(&server.data_dir);
    if !orphans.is_empty() {
        problems.push(format!(
            "upload files without an upload row survived the restart (the startup sweep should remove them): \
             {orphans:?}"
        ));
    }
    problems
}

#[test]
fn acknowledged_pushes_survive_sigkill_and_nothing_partial_is_visible() {
    let started = Instant::now();
    let mut rng = Rng::from_env("crash");
    let work = workdir("crash");
    let data = work.path().join("data");
    let mut server = Server::start(&data, work.path(), ServerOpts::default());

    let shared_layer = Arc::new(rng.bytes(300 << 10));
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|i| Writer::new(i, rng.fork(), shared_layer.clone()))
        .collect();
    let mut report = Vec::new();

    for round in 1..=ROUNDS {
        let killing = Arc::new(AtomicBool::new(false));
        let ep = server.ep();
        let before: Vec<Stats> = writers.iter().map(|w| w.stats).collect();
        let handles: Vec<_> = writers
            .drain(..)
            .map(|w| {
                let (ep, killing) = (ep.clone(), killing.clone());
                thread::spawn(move || w.run(ep, killing))
            })
            .collect();
        let delay = Duration::from_millis(rng.range(200, 1500));
        thread::sleep(delay);
        killing.store(true, Ordering::SeqCst);
        server.kill();
        writers = handles
            .into_iter()
            .map(|h| h.join().expect("writer thread panicked"))
            .collect();
        let failures: Vec<String> = writers
            .iter_mut()
            .flat_map(|w| w.failures.drain(..))
            .collect();
        assert!(
            failures.is_empty(),
            "round {round}: the registry answered pushes wrongly before the kill:\n{}\n{}",
            failures.join("\n"),
            server.log_tail(60)
        );
        let sum = |f: fn(&Stats) -> u64| -> u64 {
            writers
                .iter()
                .zip(&before)
                .map(|(w, b)| f(&w.stats) - f(b))
                .sum()
        };
        let line = format!(
            "round {round}: SIGKILL after {delay:?}; acknowledged {} blobs and {} manifests; {} pushes cut off; \
             {} files in uploads/ after the kill",
            sum(|s| s.blobs_acked),
            sum(|s| s.manifests_acked),
            sum(|s| s.lost),
            upload_files(&data).len()
        );
        eprintln!("{line}");
        report.push(line);

        let t = Instant::now();
        server.restart();
        let problems = verify_all(&server, &mut writers);
        assert!(
            problems.is_empty(),
            "round {round} (after SIGKILL at {delay:?} and restart): {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        eprintln!(
            "round {round}: restart + verification took {:?}",
            t.elapsed()
        );
    }

    let total = |f: fn(&Stats) -> u64| -> u64 { writers.iter().map(|w| f(&w.stats)).sum() };
    assert!(
        total(|s| s.manifests_acked) >= 3,
        "too few acknowledged manifests ({}) for the test to mean anything:\n{}",
        total(|s| s.manifests_acked),
        report.join("\n")
    );
    assert!(
        total(|s| s.lost) >= 1,
        "no push was ever cut off by a kill; the test did not exercise a crash:\n{}",
        report.join("\n")
    );
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "berth exited with {status} after SIGTERM");
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "after the final shutdown: {p:?}");
    eprintln!(
        "crash test: {ROUNDS} rounds, {} blobs and {} manifests acknowledged, {} pushes cut off, in {:?}",
        total(|s| s.blobs_acked),
        total(|s| s.manifests_acked),
        total(|s| s.lost),
        started.elapsed()
    );
}

/// `GET` an upload's status; returns (status, Range, Location).
fn upload_status(c: &reqwest::blocking::Client, url: &str) -> (u16, String, String) {
    let r = c
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    (
        r.status().as_u16(),
        header(&r, "range"),
        header(&r, "location"),
    )
}

#[test]
fn an_upload_in_progress_survives_sigkill_and_can_be_completed() {
    let mut rng = Rng::from_env("upload-crash");
    let work = workdir("upload-crash");
    let data = work.path().join("data");
    let mut server = Server::start(&data, work.path(), ServerOpts::default());
    let c = server.client();
    let repo = "crash/upload";

    // Part 1: three PATCHes acknowledged, then SIGKILL between requests.
    let blob = rng.bytes(3 * (300 << 10) + (200 << 10));
    let digest = sha256_digest(&blob);
    let url = start_upload(&c, &server.ep(), repo).expect("start upload");
    let mut url = path_of(&url);
    let mut offset = 0usize;
    for _ in 0..3 {
        let chunk = &blob[offset..offset + (300 << 10)];
        url = path_of(
            &patch_chunk(
                &c,
                &server.ep(),
                &server.ep().resolve(&url),
                offset as u64,
                chunk,
            )
            .unwrap_or_else(|p| panic!("PATCH before the kill: {p:?}")),
        );
        offset += chunk.len();
    }
    server.kill();
    server.restart();
    let c = server.client();
    let abs = server.ep().resolve(&url);
    let (status, range, location) = upload_status(&c, &abs);
    assert_eq!(
        (status, range.as_str()),
        (204, format!("0-{}", offset - 1).as_str()),
        "GET {abs} after SIGKILL + restart: the acknowledged {offset} bytes must be reported"
    );
    assert!(!location.is_empty(), "upload status without Location");
    // A chunk at the wrong offset is refused with where the upload stands.
    let r = c
        .patch(&abs)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-9")
        .body(vec![0u8; 10])
        .send()
        .expect("PATCH at a wrong offset");
    assert_eq!(
        r.status().as_u16(),
        416,
        "PATCH at offset 0 of a {offset}-byte upload"
    );
    assert_eq!(header(&r, "range"), format!("0-{}", offset - 1));
    let next = patch_chunk(
        &c,
        &server.ep(),
        &server.ep().resolve(&location),
        offset as u64,
        &blob[offset..],
    )
    .unwrap_or_else(|p| panic!("PATCH after the restart: {p:?}"));
    let r = c
        .put(with_digest(&next, &digest))
        .header("content-length", "0")
        .send()
        .expect("PUT to complete");
    assert_eq!(
        r.status().as_u16(),
        201,
        "completing the resumed upload: {}",
        r.text().unwrap_or_default()
    );
    verify_blob(&c, &server.ep(), repo, &digest, Some(blob.len() as u64))
        .unwrap_or_else(|e| panic!("the resumed blob: {e}"));

    // Part 2: SIGKILL while a PATCH body is still arriving. What the server holds afterwards must be a prefix of
    // what was sent, the status must say how long, and the upload must complete from there.
    let blob = rng.bytes((256 << 10) + (2 << 20));
    let digest = sha256_digest(&blob);
    let first = 256usize << 10;
    let url = start_upload(&c, &server.ep(), repo).expect("start upload");
    let url = patch_chunk(&c, &server.ep(), &url, 0, &blob[..first]).expect("first PATCH");
    let sent = Arc::new(AtomicU64::new(0));
    let rest = blob[first..].to_vec();
    let rest_len = rest.len() as u64;
    let trickle = Trickle {
        data: rest,
        pos: 0,
        chunk: 64 << 10,
        pause: Duration::from_millis(25),
        sent: sent.clone(),
    };
    let patch_url = url.clone();
    let patcher = thread::spawn(move || {
        let c = client_builder(Duration::from_secs(60)).build().unwrap();
        c.patch(&patch_url)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{first}-{}", first as u64 + rest_len - 1),
            )
            .body(reqwest::blocking::Body::sized(trickle, rest_len))
            .send()
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(Ordering::SeqCst) < (1 << 20) {
        assert!(
            Instant::now() < deadline,
            "the trickled PATCH made no progress"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(150));
    server.kill();
    // Read after the kill: an upper bound on what could have reached the server.
    let at_kill = sent.load(Ordering::SeqCst);
    let patched = patcher.join().expect("patch thread");
    assert!(
        patched.is_err(),
        "the PATCH should have been cut off by the kill, got {patched:?}"
    );
    server.restart();
    let c = server.client();
    let abs = server.ep().resolve(&path_of(&url));
    let (status, range, location) = upload_status(&c, &abs);
    assert_eq!(status, 204, "GET {abs} after a kill mid-PATCH");
    let held: u64 = range
        .strip_prefix("0-")
        .and_then(|e| e.parse::<u64>().ok())
        .map(|e| e + 1)
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    eprintln!(
        "kill mid-PATCH: {first} bytes acknowledged, {} more sent before the kill, the server kept {held}",
        at_kill
    );
    assert!(
        held >= first as u64 && held <= first as u64 + at_kill,
        "after the kill the upload holds {held} bytes: fewer than the {first} acknowledged or more than the {} sent",
        first as u64 + at_kill
    );
    let location = server.ep().resolve(&location);
    let next = if (held as usize) < blob.len() {
        patch_chunk(&c, &server.ep(), &location, held, &blob[held as usize..])
            .unwrap_or_else(|p| panic!("resuming at {held}: {p:?}"))
    } else {
        location
    };
    let r = c
        .put(with_digest(&next, &digest))
        .header("content-length", "0")
        .send()
        .expect("PUT to complete");
    assert_eq!(
        r.status().as_u16(),
        201,
        "completing after a kill mid-PATCH (held {held}): {} -- the bytes kept are not a prefix of what was sent?",
        r.text().unwrap_or_default()
    );
    verify_blob(&c, &server.ep(), repo, &digest, Some(blob.len() as u64))
        .unwrap_or_else(|e| panic!("the blob completed after a kill mid-PATCH: {e}"));
    let p = sqlite_check(&data);
    assert!(p.is_empty(), "{p:?}");
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "berth exited with {status} after SIGTERM");
}

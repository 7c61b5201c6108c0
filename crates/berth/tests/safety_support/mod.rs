//! Shared harness for the safety tests (`safety_*.rs`): crash, concurrency, disk-full, shutdown and TLS.
//!
//! Unlike `common::TestRegistry`, a [`Server`] here is started on a data directory the test owns, so the test can
//! SIGKILL it, restart it on the same directory, send SIGTERM and watch the exit status, or put the directory on a
//! small tmpfs. Everything speaks plain HTTP/1.1 through blocking `reqwest` clients unless a test asks otherwise.
//!
//! * [`Server`]: spawn / kill / terminate the real `berth` binary; its output goes to a log file that survives
//!   restarts and is printed when a test panics.
//! * [`Rng`]: a small seeded PRNG (`BERTH_SAFETY_SEED` reproduces a run; the seed is printed).
//! * Push helpers that never panic and tell an acknowledged push from a rejected one and from a lost one.
//! * Pull-and-verify helpers, an on-disk blob-tree check and the SQLite integrity check.
// Test support calls libc (rlimits, mounts, signals) and slices strings it built itself.
#![allow(unsafe_code, clippy::string_slice)]
#![allow(dead_code)]

#[path = "../credentials/mod.rs"]
mod credentials;
pub use credentials::*;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// How long the registry may take to write its address file and answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------------------------

/// How to start `berth serve`.
#[derive(Clone, Default)]
pub struct ServerOpts {
    /// `--tls-self-signed`.
    pub tls_self_signed: bool,
    /// Extra environment variables (e.g. `BERTH_SERVER__SHUTDOWN_GRACE_SECS`).
    pub env: Vec<(String, String)>,
    /// An open-file limit (soft and hard) for the server process.
    pub nofile: Option<u64>,
    /// Return once the address is written, without checking `GET /v2/` (for servers a
    /// plain client cannot talk to, such as one that wants a PROXY protocol header).
    pub skip_ready_check: bool,
}

/// A `berth serve` process on a data directory owned by the test.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub data_dir: PathBuf,
    work_dir: PathBuf,
    log_path: PathBuf,
    opts: ServerOpts,
    starts: u32,
}

impl Server {
    /// Starts `berth serve` on `data_dir`, keeping its address file and log in `work_dir` (not on the data
    /// file system, so a full disk does not lose the log). Waits until `GET /v2/` answers 200.
    pub fn start(data_dir: &Path, work_dir: &Path, opts: ServerOpts) -> Server {
        let mut s = Server {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            log_path: work_dir.join("server.log"),
            opts,
            starts: 0,
        };
        s.spawn();
        s
    }

    /// Starts the process again on the same data directory (it must have stopped). The port changes.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() called while the server is still running"
        );
        self.spawn();
    }

    fn spawn(&mut self) {
        self.starts += 1;
        std::fs::create_dir_all(&self.work_dir).expect("create work dir");
        let addr_file = self.work_dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        use std::io::Write;
        let _ = writeln!(log, "===== safety test: start #{} =====", self.starts);
        let log2 = log.try_clone().expect("clone log handle");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--addr-file")
            .arg(&addr_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .env("RUST_BACKTRACE", "1")
            .envs(ADMIN_KEY_ENV);
        if self.opts.tls_self_signed {
            cmd.arg("--tls-self-signed");
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        // Take the server down with the test if the test process dies without running Drop.
        let nofile = self.opts.nofile;
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                if let Some(n) = nofile {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_berth")));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "berth serve exited during startup with {status}\n{}",
                    self.log_tail(80)
                );
            }
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                if let Ok(sa) = text.trim().parse::<SocketAddr>() {
                    self.addr = sa.to_string();
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berth serve wrote no address within {START_TIMEOUT:?}\n{}",
                self.log_tail(80)
            );
            thread::sleep(Duration::from_millis(20));
        }
        if self.opts.skip_ready_check {
            return;
        }
        let client = self.client_with_timeout(Duration::from_secs(5));
        let url = self.v2("");
        loop {
            let last = match client.get(&url).send() {
                Ok(r) if r.status().as_u16() == 200 => return,
                Ok(r) => format!("status {}", r.status()),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                Instant::now() < deadline,
                "GET {url} did not answer 200 within {START_TIMEOUT:?} (last: {last})\n{}",
                self.log_tail(80)
            );
            thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn pid(&self) -> Option<libc::pid_t> {
        self.child.as_ref().map(|c| c.id() as libc::pid_t)
    }

    /// The exit status if the process has exited (and reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait up to `timeout`; panics (after SIGKILL) if it does not exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.sigterm();
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => {
                self.kill();
                panic!(
                    "berth did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log_tail(80)
                );
            }
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.opts.tls_self_signed {
            "https"
        } else {
            "http"
        }
    }

    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// `<base>/v2/<path>`.
    pub fn v2(&self, path: &str) -> String {
        self.ep().v2(path)
    }

    /// Where the server answers now (changes with every restart).
    pub fn ep(&self) -> Endpoint {
        Endpoint { base: self.base() }
    }

    /// The local CA of `--tls-self-signed`.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.join("tls").join("ca.pem")).expect("read <data-dir>/tls/ca.pem")
    }

    /// A client for this server: plain HTTP/1.1, or HTTPS trusting only the server's local CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_with_timeout(Duration::from_secs(60))
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> reqwest::blocking::Client {
        let b = client_builder(timeout);
        if self.opts.tls_self_signed {
            let ca = reqwest::Certificate::from_pem(&self.ca_pem()).expect("parse ca.pem");
            b.tls_certs_only([ca]).build().expect("build https client")
        } else {
            b.build().expect("build http client")
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "--- berth server log ({}; last {} lines) ---\n{}\n--- end of server log ---",
            self.log_path.display(),
            all.len() - from,
            all[from..].join("\n")
        )
    }
}

/// Where a server answers; cheap to clone into client threads (the [`Server`] itself stays with the test).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub base: String,
}

impl Endpoint {
    /// `<base>/v2/<path>`.
    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base, path)
    }

    /// Turns a `Location` header (absolute or absolute-path) into an absolute URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{}", self.base, location)
        }
    }
}

/// The path (from `/v2/`) of a URL, to replay it against a restarted server on another port.
pub fn path_of(url: &str) -> String {
    match url.find("/v2/") {
        Some(i) => url[i..].to_string(),
        None => url.to_string(),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tail(150));
        }
        self.kill();
    }
}

/// Installs rustls' ring provider (reqwest is built without one).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A blocking client builder: no proxy, no redirects, the given timeout.
pub fn client_builder(timeout: Duration) -> reqwest::blocking::ClientBuilder {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .default_headers(admin_headers())
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// A temp directory for one test (work dir + data dir inside).
pub fn workdir(stem: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("berth-safety-{stem}-"))
        .tempdir()
        .expect("create temp dir")
}

// ---------------------------------------------------------------------------------------------------------------
// Randomness and digests
// ---------------------------------------------------------------------------------------------------------------

/// splitmix64: small, seedable, good enough for test data and timings.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// Seeded from `BERTH_SAFETY_SEED` if set, else from the clock; prints the seed so a run can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("BERTH_SAFETY_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    ^ u64::from(std::process::id()).rotate_left(32)
            });
        eprintln!("{test}: seed {seed} (replay with BERTH_SAFETY_SEED={seed})");
        Rng::new(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A derived generator (for another thread).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A header value as a string (empty when absent).
pub fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Appends `digest=<d>` to an upload URL that may already carry a query.
pub fn with_digest(url: &str, digest: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={}", digest.replace(':', "%3A"))
}

// ---------------------------------------------------------------------------------------------------------------
// Pushes that report what happened instead of panicking
// ---------------------------------------------------------------------------------------------------------------

/// The outcome of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// The registry acknowledged it (201 with the right `Docker-Content-Digest`).
    Acked,
    /// The registry answered with an unexpected status: the text says which request and what it answered.
    Rejected(String),
    /// The connection failed (e.g. the server was killed): unknown whether it was stored.
    Lost(String),
}

/// How a blob is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMode {
    /// `POST /blobs/uploads/?digest=` with the whole body.
    Monolithic,
    /// `POST`, then one `PUT ?digest=` with the whole body.
    PostPut,
    /// `POST`, `PATCH` chunks of this size with `Content-Range`, then an empty `PUT ?digest=`.
    Chunked(usize),
}

fn rejected(what: &str, resp: reqwest::blocking::Response) -> Push {
    let status = resp.status();
    let ct = header(&resp, "content-type");
    let body = resp.text().unwrap_or_default();
    Push::Rejected(format!(
        "{what}: {status} (content-type {ct:?}) {}",
        body.chars().take(400).collect::<String>()
    ))
}

fn lost(what: &str, e: reqwest::Error) -> Push {
    Push::Lost(format!("{what}: {e:#}"))
}

/// Starts an upload session; returns its absolute URL.
pub fn start_upload(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
) -> Result<String, Push> {
    let what = format!("POST /v2/{repo}/blobs/uploads/");
    let resp = c
        .post(s.v2(&format!("{repo}/blobs/uploads/")))
        .send()
        .map_err(|e| lost(&what, e))?;
    if resp.status().as_u16() != 202 {
        return Err(rejected(&what, resp));
    }
    let loc = header(&resp, "location");
    if loc.is_empty() {
        return Err(Push::Rejected(format!("{what}: 202 without Location")));
    }
    Ok(s.resolve(&loc))
}

/// `PATCH` one chunk at `start`; returns the next upload URL. Checks the `Range` the server reports.
pub fn patch_chunk(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    url: &str,
    start: u64,
    chunk: &[u8],
) -> Result<String, Push> {
    let end = start + chunk.len() as u64 - 1;
    let what = format!("PATCH {url} bytes {start}-{end}");
    let resp = c
        .patch(url)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{start}-{end}"))
        .body(chunk.to_vec())
        .send()
        .map_err(|e| lost(&what, e))?;
    if resp.status().as_u16() != 202 {
        return Err(rejected(&what, resp));
    }
    let range = header(&resp, "range");
    if range != format!("0-{end}") {
        return Err(Push::Rejected(format!(
            "{what}: 202 with Range {range:?}, expected 0-{end}"
        )));
    }
    let loc = header(&resp, "location");
    Ok(if loc.is_empty() {
        url.to_string()
    } else {
        s.resolve(&loc)
    })
}

fn expect_created(what: &str, resp: reqwest::blocking::Response, digest: &str) -> Push {
    if resp.status().as_u16() != 201 {
        return rejected(what, resp);
    }
    let got = header(&resp, "docker-content-digest");
    if got != digest {
        return Push::Rejected(format!(
            "{what}: 201 with Docker-Content-Digest {got:?}, expected {digest}"
        ));
    }
    Push::Acked
}

/// Uploads a blob in the given mode.
pub fn push_blob(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
    bytes: &[u8],
    mode: BlobMode,
) -> Push {
    let digest = sha256_digest(bytes);
    match mode {
        BlobMode::Monolithic => {
            let what = format!(
                "POST /v2/{repo}/blobs/uploads/?digest={digest} ({} bytes)",
                bytes.len()
            );
            match c
                .post(with_digest(
                    &s.v2(&format!("{repo}/blobs/uploads/")),
                    &digest,
                ))
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec())
                .send()
            {
                Ok(resp) => expect_created(&what, resp, &digest),
                Err(e) => lost(&what, e),
            }
        }
        BlobMode::PostPut => {
            let url = match start_upload(c, s, repo) {
                Ok(u) => u,
                Err(p) => return p,
            };
            let what = format!("PUT {url} digest={digest} ({} bytes)", bytes.len());
            match c
                .put(with_digest(&url, &digest))
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec())
                .send()
            {
                Ok(resp) => expect_created(&what, resp, &digest),
                Err(e) => lost(&what, e),
            }
        }
        BlobMode::Chunked(size) => {
            let mut url = match start_upload(c, s, repo) {
                Ok(u) => u,
                Err(p) => return p,
            };
            let mut start = 0u64;
            for chunk in bytes.chunks(size.max(1)) {
                url = match patch_chunk(c, s, &url, start, chunk) {
                    Ok(u) => u,
                    Err(p) => return p,
                };
                start += chunk.len() as u64;
            }
            let what = format!("PUT {url} digest={digest} (closing a chunked upload)");
            match c
                .put(with_digest(&url, &digest))
                .header("content-type", "application/octet-stream")
                .header("content-length", "0")
                .send()
            {
                Ok(resp) => expect_created(&what, resp, &digest),
                Err(e) => lost(&what, e),
            }
        }
    }
}

/// `PUT /v2/<repo>/manifests/<reference>` of an OCI image manifest.
pub fn push_manifest(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
    reference: &str,
    bytes: &[u8],
) -> Push {
    let digest = sha256_digest(bytes);
    let what = format!("PUT /v2/{repo}/manifests/{reference} ({digest})");
    match c
        .put(s.v2(&format!("{repo}/manifests/{reference}")))
        .header("content-type", OCI_MANIFEST)
        .body(bytes.to_vec())
        .send()
    {
        Ok(resp) => expect_created(&what, resp, &digest),
        Err(e) => lost(&what, e),
    }
}

/// An OCI image manifest over a config and layers given as (digest, size); `note` makes it unique.
pub fn image_manifest(config: (&str, usize), layers: &[(String, usize)], note: &str) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
        "annotations": {"org.example.note": note},
    }))
    .expect("serialize manifest")
}

/// A small image config naming the layers' digests.
pub fn image_config(layers: &[(String, usize)], note: &str) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Labels": {"note": note}},
    }))
    .expect("serialize config")
}

// ---------------------------------------------------------------------------------------------------------------
// Pulls that verify
// ---------------------------------------------------------------------------------------------------------------

/// `GET` a blob; checks status 200, length, digest of the bytes and `Docker-Content-Digest`.
pub fn verify_blob(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
    digest: &str,
    size: Option<u64>,
) -> Result<(), String> {
    let url = s.v2(&format!("{repo}/blobs/{digest}"));
    let resp = c
        .get(&url)
        .send()
        .map_err(|e| format!("GET {url}: {e:#}"))?;
    let status = resp.status().as_u16();
    let dcd = header(&resp, "docker-content-digest");
    let bytes = resp
        .bytes()
        .map_err(|e| format!("GET {url}: reading the body: {e:#}"))?;
    if status != 200 {
        return Err(format!(
            "GET {url}: {status} {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ));
    }
    let got = sha256_digest(&bytes);
    if got != digest {
        return Err(format!(
            "GET {url}: {} bytes whose digest is {got}",
            bytes.len()
        ));
    }
    if let Some(n) = size {
        if bytes.len() as u64 != n {
            return Err(format!("GET {url}: {} bytes, expected {n}", bytes.len()));
        }
    }
    if dcd != digest {
        return Err(format!("GET {url}: Docker-Content-Digest {dcd:?}"));
    }
    Ok(())
}

/// `HEAD` a blob; returns the status.
pub fn head_blob(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
    digest: &str,
) -> Result<u16, String> {
    let url = s.v2(&format!("{repo}/blobs/{digest}"));
    c.head(&url)
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("HEAD {url}: {e:#}"))
}

/// A manifest as served: status, `Docker-Content-Digest` and body.
pub struct Fetched {
    pub status: u16,
    pub digest: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub fn get_manifest(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
    repo: &str,
    reference: &str,
) -> Result<Fetched, String> {
    let url = s.v2(&format!("{repo}/manifests/{reference}"));
    let resp = c
        .get(&url)
        .header("accept", OCI_MANIFEST)
        .send()
        .map_err(|e| format!("GET {url}: {e:#}"))?;
    let status = resp.status().as_u16();
    let digest = header(&resp, "docker-content-digest");
    let content_type = header(&resp, "content-type");
    let body = resp
        .bytes()
        .map_err(|e| format!("GET {url}: reading the body: {e:#}"))?
        .to_vec();
    Ok(Fetched {
        status,
        digest,
        content_type,
        body,
    })
}

/// A JSON document from the registry (`_catalog`, `tags/list`).
pub fn get_json(c: &reqwest::blocking::Client, url: &str) -> Result<(u16, Value), String> {
    let resp = c.get(url).send().map_err(|e| format!("GET {url}: {e:#}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .map_err(|e| format!("GET {url}: reading the body: {e:#}"))?;
    let v = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "GET {url}: {status}, body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    Ok((status, v))
}

/// Strings of a JSON array field.
pub fn strings(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything listed must be whole: for every repository in `/v2/_catalog` and every tag in its
/// `tags/list`, the tag resolves to a manifest whose bytes match `Docker-Content-Digest`, and every blob the
/// manifest references pulls back with its digest and size. Returns (repositories, tags) as listed, and the
/// problems found.
pub fn verify_listings(
    c: &reqwest::blocking::Client,
    s: &Endpoint,
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut problems = Vec::new();
    let mut listed = BTreeMap::new();
    let (status, cat) = match get_json(c, &s.v2("_catalog")) {
        Ok(x) => x,
        Err(e) => return (listed, vec![e]),
    };
    if status != 200 {
        return (listed, vec![format!("GET /v2/_catalog: {status} {cat}")]);
    }
    for repo in strings(&cat, "repositories") {
        let (status, tl) = match get_json(c, &s.v2(&format!("{repo}/tags/list"))) {
            Ok(x) => x,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if status != 200 {
            problems.push(format!("GET /v2/{repo}/tags/list: {status} {tl}"));
            continue;
        }
        let tags = strings(&tl, "tags");
        if tags.is_empty() {
            problems.push(format!(
                "repository {repo} is in the catalog but has no tags (every manifest here was pushed by tag)"
            ));
        }
        for tag in &tags {
            let m = match get_manifest(c, s, &repo, tag) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if m.status != 200 {
                problems.push(format!(
                    "listed tag {repo}:{tag} does not resolve: GET manifest {} {}",
                    m.status,
                    String::from_utf8_lossy(&m.body)
                ));
                continue;
            }
            if sha256_digest(&m.body) != m.digest {
                problems.push(format!(
                    "{repo}:{tag}: Docker-Content-Digest {} but the body hashes to {}",
                    m.digest,
                    sha256_digest(&m.body)
                ));
            }
            let v: Value = match serde_json::from_slice(&m.body) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{repo}:{tag}: manifest is not JSON: {e}"));
                    continue;
                }
            };
            let mut refs = vec![v["config"].clone()];
            refs.extend(v["layers"].as_array().cloned().unwrap_or_default());
            for r in refs {
                let (Some(d), Some(n)) = (r["digest"].as_str(), r["size"].as_u64()) else {
                    problems.push(format!("{repo}:{tag}: descriptor without digest/size: {r}"));
                    continue;
                };
                if let Err(e) = verify_blob(c, s, &repo, d, Some(n)) {
                    problems.push(format!(
                        "{repo}:{tag} ({}) references a blob that is not whole: {e}",
                        m.digest
                    ));
                }
            }
        }
        listed.insert(repo, tags);
    }
    (listed, problems)
}

// ---------------------------------------------------------------------------------------------------------------
// On-disk checks
// ---------------------------------------------------------------------------------------------------------------

/// Every file under `<data>/blobs/sha256/<xx>/<hex>`: its content must hash to its name and it must sit in the
/// right fan-out directory. Returns (number of blob files, problems).
pub fn check_blob_files(data_dir: &Path) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut problems = Vec::new();
    let root = data_dir.join("blobs");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
                continue;
            }
            n += 1;
            let rel = p.strip_prefix(&root).unwrap_or(&p).to_path_buf();
            let parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if parts.len() != 3 || parts[0] != "sha256" || !parts[2].starts_with(&parts[1]) {
                problems.push(format!("unexpected file in blobs/: {}", rel.display()));
                continue;
            }
            match std::fs::read(&p) {
                Ok(bytes) => {
                    let got = hex::encode(Sha256::digest(&bytes));
                    if got != parts[2] {
                        problems.push(format!(
                            "torn or wrong blob file {}: {} bytes hashing to {got}",
                            rel.display(),
                            bytes.len()
                        ));
                    }
                }
                Err(e) => problems.push(format!("read {}: {e}", p.display())),
            }
        }
    }
    (n, problems)
}

/// Names of the files in `<data>/uploads/`.
pub fn upload_files(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("uploads"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Files in `<data>/uploads/` (an upload or its saved hash state) that no row of the `uploads` table owns (a monolithic push cut off by a crash leaves
/// one; the sweeper that runs when the server starts must remove it).
pub fn orphan_upload_files(data_dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("meta.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open meta.db read-only");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let rows: std::collections::BTreeSet<String> = conn
        .prepare("SELECT id FROM uploads")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .expect("SELECT id FROM uploads");
    // `<id>.hash` (and a `.hash.tmp` a crash left) is the saved hash state of upload `<id>`.
    let owner = |f: &str| -> String {
        let id = f.strip_suffix(".tmp").unwrap_or(f);
        id.strip_suffix(".hash").unwrap_or(id).to_string()
    };
    upload_files(data_dir)
        .into_iter()
        .filter(|f| !rows.contains(&owner(f)))
        .collect()
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` on `<data>/meta.db`, opened read-only (the server
/// may be running; WAL lets a reader in). Returns the problems (empty when the database is sound).
pub fn sqlite_check(data_dir: &Path) -> Vec<String> {
    use rusqlite::{Connection, OpenFlags};
    let path = data_dir.join("meta.db");
    let conn = match Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return vec![format!("open {} read-only: {e}", path.display())],
    };
    let _ = conn.busy_timeout(Duration::from_secs(10));
    let mut problems = Vec::new();
    match conn.prepare("PRAGMA integrity_check").and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    }) {
        Ok(rows) if rows == ["ok"] => {}
        Ok(rows) => problems.push(format!("PRAGMA integrity_check: {rows:?}")),
        Err(e) => problems.push(format!("PRAGMA integrity_check failed: {e}")),
    }
    match conn.prepare("PRAGMA foreign_key_check").and_then(|mut st| {
        st.query_map([], |r| {
            Ok(format!(
                "table {} rowid {:?} -> {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<rusqlite::Result<Vec<String>>>()
    }) {
        Ok(rows) if rows.is_empty() => {}
        Ok(rows) => problems.push(format!("PRAGMA foreign_key_check: {rows:?}")),
        Err(e) => problems.push(format!("PRAGMA foreign_key_check failed: {e}")),
    }
    problems
}

/// One integer from a query on `<data>/meta.db` (read-only).
pub fn sqlite_count(data_dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("meta.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open meta.db read-only");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A reader that hands out `data` slowly: it sleeps `pause` before each `chunk` bytes, and publishes how many
/// bytes it handed out so far in `sent`.
pub struct Trickle {
    pub data: Vec<u8>,
    pub pos: usize,
    pub chunk: usize,
    pub pause: Duration,
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() {
            return Ok(0);
        }
        let into_chunk = self.pos % self.chunk.max(1);
        if into_chunk == 0 {
            thread::sleep(self.pause);
        }
        let n = buf
            .len()
            .min(self.chunk.max(1) - into_chunk)
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.sent
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }
}

//! Shared harness for Berth's end-to-end tests (test pyramid level 4: real clients against the real binary).
//!
//! * [`TestRegistry`] starts the `berth` binary on an ephemeral loopback port with a fresh data directory and stops
//!   it when dropped (SIGTERM, then SIGKILL). With `BERTH_E2E_REGISTRY=127.0.0.1:PORT` set, the tests run against
//!   that already-running registry instead (used to check the tests themselves against CNCF distribution).
//! * [`run`] / [`run_ok`] run a command with a timeout and capture its output.
//! * [`ContainersEnv`] is a per-test podman/skopeo environment: vfs storage in a temp root, its own
//!   `registries.conf` marking the test registry insecure, its own auth file and temp dir.
//! * [`OciLayout`] builds small real OCI images in an OCI layout directory with umoci, without any network, and
//!   combines two of them into a multi-arch OCI index.
//! * [`require_clients`] makes a test fail when a client it needs is missing, unless
//!   `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`, in which case the test is skipped with a message.
//! * Small HTTP helpers (`reqwest` blocking client, `curl` wrapper, digests, blob and manifest pushes).
//!
//! Each integration test file includes this module with `mod common;` and uses only part of it.
// Test support calls libc (rlimits, mounts, signals) and slices strings it built itself.
#![allow(unsafe_code, clippy::string_slice)]
#![allow(dead_code)]

#[path = "../credentials/mod.rs"]
mod credentials;
pub use credentials::*;

use std::borrow::BorrowMut;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// Environment variable naming an already-running registry (`HOST:PORT`) to test instead of spawning `berth`.
pub const EXTERNAL_REGISTRY_ENV: &str = "BERTH_E2E_REGISTRY";
/// Environment variable that turns a missing client program from a failure into a skip.
pub const ALLOW_MISSING_CLIENTS_ENV: &str = "BERTH_E2E_ALLOW_MISSING_CLIENTS";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How long a registry may take to write its address file and answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a registry may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Default timeout for one client command (skopeo, podman, umoci, curl).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------------------------
// Registry under test
// ---------------------------------------------------------------------------------------------------------------

/// A registry for one test: a spawned `berth serve` (default) or an external one (`BERTH_E2E_REGISTRY`).
pub struct TestRegistry {
    addr: String,
    child: Option<Child>,
    /// Holds `data/`, `addr` and `server.log`; removed on drop.
    workdir: Option<TempDir>,
    /// Extra environment for `berth serve` (configuration such as `BERTH_AUTH__ANONYMOUS`).
    env: Vec<(String, String)>,
}

impl TestRegistry {
    /// Starts a fresh registry (or attaches to `BERTH_E2E_REGISTRY`) and waits until `GET /v2/` answers 200.
    pub fn start() -> Self {
        if let Some(addr) = std::env::var(EXTERNAL_REGISTRY_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
        {
            let reg = TestRegistry {
                addr: addr.trim().to_string(),
                child: None,
                workdir: None,
                env: Vec::new(),
            };
            reg.wait_ready(Instant::now() + START_TIMEOUT);
            return reg;
        }
        Self::spawn(&[])
    }

    /// Spawns a fresh `berth serve` with extra environment variables (always spawned,
    /// even when `BERTH_E2E_REGISTRY` is set, since the configuration is the point).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        Self::spawn(env)
    }

    /// Spawns `berth serve` on `workdir/data` as prepared by the test (e.g. by `berth
    /// migrate`), with extra environment variables; `workdir` is removed on drop.
    pub fn start_in(workdir: TempDir, env: &[(&str, &str)]) -> Self {
        Self::spawn_in(workdir, env)
    }

    fn spawn(env: &[(&str, &str)]) -> Self {
        let workdir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("create temp dir for the registry");
        Self::spawn_in(workdir, env)
    }

    fn spawn_in(workdir: TempDir, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(workdir.path().join("data")).expect("create data dir");
        let mut reg = TestRegistry {
            addr: String::new(),
            child: None,
            workdir: Some(workdir),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        reg.launch();
        reg
    }

    /// A registry served by something other than a spawned `berth` (a load balancer in front
    /// of spawned nodes) at `addr`: requests go there, and its "data directory" holds only a
    /// copy of `admin_credentials` (for the AWS CLI and boto3). Nothing to stop on drop.
    pub fn in_front(addr: &str, admin_credentials: &Path) -> Self {
        let workdir = tempfile::Builder::new()
            .prefix("berth-e2e-front-")
            .tempdir()
            .expect("create temp dir for the front");
        std::fs::create_dir_all(workdir.path().join("data")).expect("create data dir");
        std::fs::copy(
            admin_credentials,
            workdir.path().join("data/admin.credentials"),
        )
        .expect("copy admin.credentials");
        let reg = TestRegistry {
            addr: addr.to_string(),
            child: None,
            workdir: Some(workdir),
            env: Vec::new(),
        };
        reg.wait_ready(Instant::now() + START_TIMEOUT);
        reg
    }

    /// The process id of the spawned server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills the spawned server with SIGKILL (a crash: nothing is flushed or released); it
    /// is reaped on drop. Takes `&self` so that threads may still hold the registry.
    pub fn kill(&self) {
        if let Some(child) = &self.child {
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Stops the spawned server (SIGTERM; it must exit cleanly) and starts it again on the same data directory.
    /// The new process listens on a new port: [`TestRegistry::addr`] changes.
    pub fn restart(&mut self) {
        assert!(!self.is_external(), "cannot restart an external registry");
        let (status, by_itself) = self.stop().expect("a running server");
        assert!(
            by_itself && status.success(),
            "berth did not stop cleanly on SIGTERM ({status}, by itself: {by_itself})\n{}",
            self.server_log()
        );
        self.launch();
    }

    /// Spawns `berth serve` on the work dir's data dir and waits until it serves.
    fn launch(&mut self) {
        let workdir = self.workdir.as_ref().expect("spawned registry").path();
        let data_dir = workdir.join("data");
        let addr_file = workdir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(workdir.join("server.log"))
            .expect("open server log");
        let log2 = log.try_clone().expect("clone log handle");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--addr-file")
            .arg(&addr_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env("RUST_BACKTRACE", "1")
            .envs(ADMIN_KEY_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        // If this test process dies without running Drop (e.g. killed by the test runner's timeout), take the server
        // down with it. PR_SET_PDEATHSIG fires when the spawning *thread* exits; tests spawn from their own thread,
        // which outlives the registry value.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("failed to spawn {} serve: {e}", env!("CARGO_BIN_EXE_berth"))
        });
        self.child = Some(child);
        let reg = self;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = reg.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "berth serve exited during startup with {status}\n--- server log ---\n{}",
                    reg.server_log()
                );
            }
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                let text = text.trim();
                if let Ok(sa) = text.parse::<SocketAddr>() {
                    reg.addr = sa.to_string();
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "berth serve did not write a valid address to {} within {START_TIMEOUT:?}\n--- server log ---\n{}",
                    addr_file.display(),
                    reg.server_log()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
        reg.wait_ready(deadline);
    }

    fn wait_ready(&self, deadline: Instant) {
        let client = http_client_with_timeout(Duration::from_secs(5));
        let url = format!("{}/v2/", self.base_url());
        let mut last;
        loop {
            match client.get(&url).send() {
                // 401: serving, but the harness's key is gone (a test rotated it).
                Ok(resp) if matches!(resp.status().as_u16(), 200 | 401) => return,
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(e) => last = format!("error {e}"),
            }
            if Instant::now() > deadline {
                panic!(
                    "GET {url} did not answer 200 or 401 within {START_TIMEOUT:?} (last: {last})\n--- server log ---\n{}",
                    self.server_log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `HOST:PORT` of the registry.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://HOST:PORT/v2/` + `path` (no leading slash).
    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base_url(), path)
    }

    /// True when the tests run against `BERTH_E2E_REGISTRY` instead of a spawned `berth`.
    pub fn is_external(&self) -> bool {
        self.workdir.is_none()
    }

    /// A repository name unique to this call (tests may share an external registry).
    pub fn repo(&self, stem: &str) -> String {
        format!("e2e/{stem}-{}", unique_suffix())
    }

    /// The path and query of a URL (`/v2/...`), dropping scheme and host: survives a restart on a new port.
    pub fn path_of(url: &str) -> String {
        match url.split_once("://") {
            Some((_, rest)) => rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_else(|| "/".into()),
            None => url.to_string(),
        }
    }

    /// Turns a `Location` header (absolute or relative) into an absolute URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{}", self.base_url(), location)
        } else {
            format!("{}/{}", self.base_url(), location)
        }
    }

    /// What the spawned server wrote to stdout/stderr so far (empty for an external registry).
    pub fn server_log(&self) -> String {
        match &self.workdir {
            Some(w) => std::fs::read_to_string(w.path().join("server.log")).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The data directory of a spawned server.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.workdir.as_ref().map(|w| w.path().join("data"))
    }

    /// Sends SIGTERM to the spawned server and returns at once (see [`TestRegistry::stop`]
    /// to wait for the exit).
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("a spawned server");
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Sends SIGTERM and waits for the server to exit; SIGKILL after a timeout. Returns the exit status of a
    /// spawned server, and whether it stopped by itself (true) or had to be killed (false).
    pub fn stop(&mut self) -> Option<(ExitStatus, bool)> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, true));
        }
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((status, true));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok().map(|s| (s, false))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let stopped = self.stop();
        // (A registry `in_front` of others has no log of its own.)
        let log = self.server_log();
        if thread::panicking() && self.workdir.is_some() && !log.is_empty() {
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "--- berth server log (last {} lines; stopped: {:?}) ---",
                tail.len(),
                stopped
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("--- end of server log ---");
        } else if let Some((_, false)) = stopped {
            eprintln!(
                "warning: berth did not exit within {STOP_TIMEOUT:?} of SIGTERM and was killed"
            );
        }
    }
}

/// A short string unique within this machine for a while: time, pid and a counter.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(n.to_le_bytes());
    hex::encode(&h.finalize()[..5])
}

// ---------------------------------------------------------------------------------------------------------------
// Client programs and commands
// ---------------------------------------------------------------------------------------------------------------

/// Finds `program` on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Returns true when every program is on PATH. When one is missing, fails the test, unless
/// `BERTH_E2E_ALLOW_MISSING_CLIENTS=1`, in which case it prints why and returns false (the test then returns early).
pub fn require_clients(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var(ALLOW_MISSING_CLIENTS_ENV).as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: client program(s) {missing:?} not on PATH ({ALLOW_MISSING_CLIENTS_ENV}=1 set)"
        );
        false
    } else {
        panic!(
            "required client program(s) {missing:?} not on PATH; install them (see .ci/run) \
             or set {ALLOW_MISSING_CLIENTS_ENV}=1 to skip"
        );
    }
}

/// What a finished command printed.
pub struct CmdOutput {
    pub desc: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not JSON ({e}):\n{}",
                self.desc,
                self.stdout_str()
            )
        })
    }
    /// A readable report of the command and its output, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.desc,
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command with stdin closed, capturing stdout and stderr; kills its whole process group and panics on
/// timeout. A non-zero exit is returned, not a panic.
pub fn run(mut cmd: impl BorrowMut<Command>, timeout: Duration) -> CmdOutput {
    let cmd = cmd.borrow_mut();
    let desc = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start `{desc}`: {e}"));
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for `{desc}`: {e}"),
        }
        if Instant::now() > deadline {
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.kill();
            let status = child.wait().expect("wait after kill");
            let stdout = t_out.join().unwrap_or_default();
            let stderr = t_err.join().unwrap_or_default();
            let o = CmdOutput {
                desc,
                status,
                stdout,
                stderr,
            };
            panic!("command timed out after {timeout:?}\n{}", o.report());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    let o = CmdOutput {
        desc,
        status,
        stdout,
        stderr,
    };
    if std::env::var_os("BERTH_E2E_VERBOSE").is_some() {
        eprintln!("[{:.2}s] {}", started.elapsed().as_secs_f64(), o.report());
    }
    o
}

/// Like [`run`] with [`CMD_TIMEOUT`], and panics (with the full output) when the command fails.
pub fn run_ok(cmd: impl BorrowMut<Command>) -> CmdOutput {
    let o = run(cmd, CMD_TIMEOUT);
    assert!(o.success(), "command failed\n{}", o.report());
    o
}

/// Builds a `Command` from a program and arguments.
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

// ---------------------------------------------------------------------------------------------------------------
// podman / skopeo / buildah environment
// ---------------------------------------------------------------------------------------------------------------

/// A private containers environment for one test: vfs storage in a temp root and runroot, a `registries.conf` that
/// marks the test registry insecure, an empty auth file, a signature policy that accepts anything, its own temp dir.
///
/// skopeo 1.9 ignores `CONTAINERS_REGISTRIES_CONF`, so [`ContainersEnv::skopeo`] callers must pass
/// `--tls-verify=false` / `--src-tls-verify=false` / `--dest-tls-verify=false` explicitly; podman reads the file but
/// the tests pass `--tls-verify=false` too.
///
/// Not isolated: the blob-info cache of containers/image (`/var/lib/containers/cache` for root), which remembers
/// where blobs were seen and makes skopeo/podman try cross-repository mounts on later pushes.
pub struct ContainersEnv {
    dir: TempDir,
    registry: String,
}

impl ContainersEnv {
    pub fn new(reg: &TestRegistry) -> Self {
        // Lower-case only: podman derives an image name from an `oci:` path, and names must be lower-case.
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-e2e-containers-{}", unique_suffix()))
            .rand_bytes(0)
            .tempdir()
            .expect("temp dir for containers env");
        let p = dir.path();
        for sub in ["root", "run", "tmp", "scratch"] {
            std::fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p.join("root").display(),
            p.join("run").display()
        );
        std::fs::write(p.join("storage.conf"), storage).expect("write storage.conf");
        let registries = format!(
            "unqualified-search-registries = []\n\n[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr()
        );
        std::fs::write(p.join("registries.conf"), registries).expect("write registries.conf");
        let containers = format!(
            "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\ntmp_dir = \"{}\"\n\
             image_copy_tmp_dir = \"{}\"\ncgroup_manager = \"cgroupfs\"\n",
            p.join("events.log").display(),
            p.join("tmp").display(),
            p.join("tmp").display()
        );
        std::fs::write(p.join("containers.conf"), containers).expect("write containers.conf");
        std::fs::write(
            p.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy.json");
        // Logged in as the administrator, as `podman login` would leave it.
        let auth_json = json!({"auths": {reg.addr(): {"auth": admin_basic_token()}}});
        std::fs::write(p.join("auth.json"), auth_json.to_string()).expect("write auth.json");
        ContainersEnv {
            dir,
            registry: reg.addr().to_string(),
        }
    }

    /// Root of this environment's temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh path under the environment's scratch dir (not created).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join("scratch").join(name)
    }

    /// A command with this environment's variables set.
    pub fn cmd(&self, program: &str) -> Command {
        let p = self.dir.path();
        let mut c = Command::new(program);
        c.env("CONTAINERS_STORAGE_CONF", p.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", p.join("registries.conf"))
            .env("CONTAINERS_CONF", p.join("containers.conf"))
            .env("REGISTRY_AUTH_FILE", p.join("auth.json"))
            .env("TMPDIR", p.join("tmp"))
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("no_proxy", "127.0.0.1,localhost,::1");
        c
    }

    /// `skopeo --policy <accept anything>`; add `--*-tls-verify=false` flags per subcommand.
    pub fn skopeo(&self) -> Command {
        let mut c = self.cmd("skopeo");
        c.arg("--policy").arg(self.dir.path().join("policy.json"));
        c
    }

    /// `podman` using this environment's storage (vfs) and config files.
    pub fn podman(&self) -> Command {
        let mut c = self.cmd("podman");
        c.arg("--storage-driver").arg("vfs");
        c
    }

    /// `buildah` using this environment's storage (vfs) and config files.
    pub fn buildah(&self) -> Command {
        let mut c = self.cmd("buildah");
        c.arg("--storage-driver").arg("vfs");
        c
    }

    /// `docker://HOST:PORT/<repo>:<tag>` (or `@digest` when `reference` starts with `sha256:`).
    pub fn docker_ref(&self, repo: &str, reference: &str) -> String {
        format!("docker://{}", self.image_ref(repo, reference))
    }

    /// `HOST:PORT/<repo>:<tag>` (or `@digest`).
    pub fn image_ref(&self, repo: &str, reference: &str) -> String {
        if reference.contains(':') {
            format!("{}/{}@{}", self.registry, repo, reference)
        } else {
            format!("{}/{}:{}", self.registry, repo, reference)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Building OCI images without network (umoci)
// ---------------------------------------------------------------------------------------------------------------

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/...`).
pub struct OciLayout {
    pub dir: PathBuf,
}

/// A content descriptor as found in `index.json` or a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    fn from_json(v: &Value) -> Self {
        Descriptor {
            media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: v["digest"].as_str().expect("descriptor digest").to_string(),
            size: v["size"].as_u64().expect("descriptor size"),
        }
    }
}

impl OciLayout {
    /// `umoci init --layout <dir>`.
    pub fn init(dir: &Path) -> Self {
        run_ok(command("umoci", ["init", "--layout"]).arg(dir));
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// Opens an existing layout (e.g. one written by skopeo or podman).
    pub fn open(dir: &Path) -> Self {
        assert!(
            dir.join("index.json").is_file(),
            "{} is not an OCI layout",
            dir.display()
        );
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// `<dir>:<tag>` as umoci and skopeo's `oci:` transport spell it.
    pub fn image_arg(&self, tag: &str) -> String {
        format!("{}:{}", self.dir.display(), tag)
    }

    /// `oci:<dir>:<tag>`.
    pub fn oci_ref(&self, tag: &str) -> String {
        format!("oci:{}", self.image_arg(tag))
    }

    /// Builds image `tag` for `linux/<arch>` with one layer per file (path inside the image, contents).
    /// umoci writes the manifest without a `mediaType` field.
    pub fn add_image(&self, tag: &str, arch: &str, files: &[(&str, Vec<u8>)]) -> Descriptor {
        let image = self.image_arg(tag);
        let image = image.as_str();
        run_ok(command("umoci", ["new", "--image", image]));
        run_ok(command(
            "umoci",
            [
                "config",
                "--image",
                image,
                "--os",
                "linux",
                "--architecture",
                arch,
                "--config.cmd",
                "/bin/true",
            ],
        ));
        let staging = tempfile::tempdir().expect("staging dir");
        for (i, (path, contents)) in files.iter().enumerate() {
            let src = staging.path().join(format!("f{i}"));
            std::fs::write(&src, contents).expect("write staged file");
            let mut c = command("umoci", ["insert"]);
            if !is_root() {
                c.arg("--rootless");
            }
            c.args(["--image", image]).arg(&src).arg(path);
            run_ok(&mut c);
        }
        self.descriptor(tag)
    }

    /// A small single-platform image with `layers` files of `size` random bytes each, at `/data/file<i>.bin`.
    pub fn add_random_image(
        &self,
        tag: &str,
        arch: &str,
        layers: usize,
        size: usize,
    ) -> Descriptor {
        let files: Vec<(String, Vec<u8>)> = (0..layers)
            .map(|i| (format!("/data/file{i}.bin"), random_bytes(size)))
            .collect();
        let refs: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
        self.add_image(tag, arch, &refs)
    }

    /// Builds `<tag>-amd64` and `<tag>-arm64` and an OCI image index over both, tagged `tag`. Returns the index
    /// descriptor.
    pub fn add_multiarch_index(&self, tag: &str) -> Descriptor {
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let d = self.add_image(
                &format!("{tag}-{arch}"),
                arch,
                &[
                    (&format!("/etc/arch-{arch}"), arch.as_bytes().to_vec()),
                    ("/data/blob.bin", random_bytes(20_000)),
                ],
            );
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": d.digest,
                "size": d.size,
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).expect("serialize index");
        let digest = self.write_blob(&bytes);
        let desc = Descriptor {
            media_type: OCI_INDEX.to_string(),
            digest,
            size: bytes.len() as u64,
        };
        let mut top = self.index_json();
        top["manifests"]
            .as_array_mut()
            .expect("manifests array")
            .push(json!({
                "mediaType": OCI_INDEX,
                "digest": desc.digest,
                "size": desc.size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }));
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&top).expect("serialize index.json"),
        )
        .expect("write index.json");
        desc
    }

    /// Writes a blob into `blobs/sha256/` and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        std::fs::create_dir_all(path.parent().expect("blob dir")).expect("mkdir blobs");
        std::fs::write(&path, bytes).expect("write blob");
        digest
    }

    /// The top-level `index.json`.
    pub fn index_json(&self) -> Value {
        let bytes = std::fs::read(self.dir.join("index.json")).expect("read index.json");
        serde_json::from_slice(&bytes).expect("parse index.json")
    }

    /// The descriptor tagged `tag` in `index.json` (`org.opencontainers.image.ref.name`).
    pub fn descriptor(&self, tag: &str) -> Descriptor {
        let top = self.index_json();
        let m = top["manifests"]
            .as_array()
            .expect("manifests array")
            .iter()
            .rev()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
            .unwrap_or_else(|| panic!("no {tag} in {}/index.json: {top}", self.dir.display()));
        Descriptor::from_json(m)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("digest has algorithm");
        self.dir.join("blobs").join(alg).join(hex)
    }

    /// A blob's bytes; checks they match the digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let bytes = std::fs::read(self.blob_path(digest))
            .unwrap_or_else(|e| panic!("read blob {digest} in {}: {e}", self.dir.display()));
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob file content does not match its name"
        );
        bytes
    }

    pub fn blob_json(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.blob(digest)).expect("blob is JSON")
    }

    /// Every digest reachable from `root` (the root itself, child manifests, configs, layers), sorted.
    pub fn reachable(&self, root: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![root.to_string()];
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let bytes = self.blob(&d);
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            if v.get("schemaVersion").is_none() {
                continue; // a config or other JSON blob
            }
            if let Some(ms) = v["manifests"].as_array() {
                todo.extend(
                    ms.iter()
                        .filter_map(|m| m["digest"].as_str().map(String::from)),
                );
            }
            if let Some(c) = v["config"]["digest"].as_str() {
                seen.insert(c.to_string());
            }
            if let Some(ls) = v["layers"].as_array() {
                for l in ls {
                    if let Some(d) = l["digest"].as_str() {
                        seen.insert(d.to_string());
                    }
                }
            }
        }
        seen
    }
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------------------------
// Bytes and digests
// ---------------------------------------------------------------------------------------------------------------

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `len` pseudo-random bytes, different on every call (splitmix64 seeded from [`unique_suffix`]).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let seed_hex = unique_suffix();
    let mut state =
        u64::from_str_radix(&seed_hex[..10], 16).unwrap_or(0x9e37_79b9) ^ 0x5851_f42d_4c95_7f2d;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------------------------

/// Installs rustls' ring provider once (reqwest is built with `rustls-no-provider` for oci-client; the tests only
/// speak plain http, but building a client needs a provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn http_client_with_timeout(timeout: Duration) -> reqwest::blocking::Client {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .default_headers(admin_headers())
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("build http client")
}

/// A blocking HTTP client (follows redirects, 60 s timeout, no proxy) logged in as the
/// administrator (Basic credentials on every request).
pub fn http() -> reqwest::blocking::Client {
    http_client_with_timeout(Duration::from_secs(60))
}

/// A header value as a string (empty when absent).
pub fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Appends `key=value` to a URL that may already carry a query (distribution's `_state`).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let enc: String = value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{url}{sep}{key}={enc}")
}

/// Uploads a blob with `POST` + one `PUT ?digest=` carrying the bytes. Returns its digest.
pub fn push_blob(reg: &TestRegistry, repo: &str, bytes: &[u8]) -> String {
    let c = http();
    let digest = sha256_digest(bytes);
    let resp = c
        .post(reg.v2(&format!("{repo}/blobs/uploads/")))
        .send()
        .expect("POST upload");
    assert_eq!(
        resp.status().as_u16(),
        202,
        "POST blobs/uploads/ for {repo}"
    );
    let loc = reg.resolve(&header(&resp, "location"));
    let resp = c
        .put(with_query(&loc, "digest", &digest))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .expect("PUT upload");
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        201,
        "PUT blob {digest} to {repo}: {}",
        resp.text().unwrap_or_default()
    );
    digest
}

/// `PUT /v2/<repo>/manifests/<reference>`; returns the response for the caller to check.
pub fn put_manifest(
    reg: &TestRegistry,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> reqwest::blocking::Response {
    http()
        .put(reg.v2(&format!("{repo}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .expect("PUT manifest")
}

/// Pushes a tiny image (random layer + config) by HTTP and returns (manifest bytes, manifest digest).
pub fn push_small_image(reg: &TestRegistry, repo: &str, tag: &str) -> (Vec<u8>, String) {
    let layer = random_bytes(1024);
    let layer_digest = push_blob(reg, repo, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("config json");
    let config_digest = push_blob(reg, repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("manifest json");
    let resp = put_manifest(reg, repo, tag, OCI_MANIFEST, &manifest);
    assert_eq!(
        resp.status().as_u16(),
        201,
        "PUT manifest {repo}:{tag}: {}",
        resp.text().unwrap_or_default()
    );
    let digest = sha256_digest(&manifest);
    (manifest, digest)
}

/// One HTTP exchange made with the `curl` program.
pub struct CurlResponse {
    pub status: u16,
    /// Headers of the final response, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw_headers: String,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `curl -sS` with `args` (method, headers, data, URL...) and parses the final response.
/// `Expect: 100-continue` is disabled; proxies are bypassed.
pub fn curl(args: &[&str]) -> CurlResponse {
    let tmp = tempfile::tempdir().expect("curl temp dir");
    let hdr = tmp.path().join("headers");
    let body = tmp.path().join("body");
    let mut c = command(
        "curl",
        ["-sS", "--noproxy", "*", "--max-time", "60", "-H", "Expect:"],
    );
    c.arg("-u").arg(format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}"));
    c.arg("-D").arg(&hdr).arg("-o").arg(&body).args(args);
    let o = run(&mut c, Duration::from_secs(90));
    assert!(o.success(), "curl failed\n{}", o.report());
    let raw = std::fs::read_to_string(&hdr).unwrap_or_default();
    // Keep only the last header block (a 100 Continue or a redirect may precede it).
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            blocks.push(vec![line]);
        } else if !line.is_empty() {
            if let Some(b) = blocks.last_mut() {
                b.push(line);
            }
        }
    }
    let last = blocks
        .pop()
        .unwrap_or_else(|| panic!("no HTTP response from curl {args:?}: {raw}"));
    let status: u16 = last[0]
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {:?}", last[0]));
    let headers = last[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    CurlResponse {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
        raw_headers: raw,
    }
}

/// Writes `bytes` to a temp file for `curl --data-binary @file`.
pub fn temp_file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), bytes).expect("write temp file");
    f
}

// ---------------------------------------------------------------------------------------------------------------
// Python (boto3/botocore) scripts against a registry
// ---------------------------------------------------------------------------------------------------------------

/// Runs `tests/<script>` with python3 as `script <endpoint> <admin.credentials> <unique suffix> [extra...]`
/// against `reg` and asserts it succeeded; `None` when the test must be skipped (an external registry without
/// a data directory, or python3/boto3 missing with `BERTH_ALLOW_MISSING_BOTOCORE=1`). A script exits with 3 when
/// boto3 is not installed; without that variable a missing python3 or boto3 FAILS the test.
pub fn run_python_script(reg: &TestRegistry, script: &str, extra: &[&str]) -> Option<CmdOutput> {
    let Some(data) = reg.data_dir() else {
        eprintln!("skipped: {script} needs a spawned berth for its admin.credentials (BERTH_E2E_REGISTRY is set)");
        return None;
    };
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let allow_missing = std::env::var("BERTH_ALLOW_MISSING_BOTOCORE").as_deref() == Ok("1");
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            allow_missing,
            "python3 is missing: {script} needs python3 with boto3 (pip install boto3); \
             set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it"
        );
        eprintln!("SKIPPED {script} (no python3); BERTH_ALLOW_MISSING_BOTOCORE=1");
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&path)
        .arg(reg.base_url())
        .arg(data.join("admin.credentials"))
        .arg(unique_suffix())
        .args(extra);
    let out = run(cmd, CMD_TIMEOUT);
    if out.status.code() == Some(3) {
        assert!(
            allow_missing,
            "{}: {script} needs boto3 (pip install boto3); set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip it",
            out.stderr_str().trim()
        );
        eprintln!(
            "SKIPPED {script} ({}); BERTH_ALLOW_MISSING_BOTOCORE=1",
            out.stderr_str().trim()
        );
        return None;
    }
    assert!(
        out.success(),
        "{script} failed\n{}\nserver log:\n{}",
        out.report(),
        reg.server_log()
    );
    Some(out)
}

/// `aws --endpoint-url <reg> <args>` with nothing from the environment but the shared-credentials file
/// `creds`: no config file, region us-east-1 (the default `[registry] region`), JSON output, no retries,
/// no pager.
pub fn aws_cli(reg: &TestRegistry, creds: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("aws");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("AWS_SHARED_CREDENTIALS_FILE", creds)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .args(["--endpoint-url", &reg.base_url(), "--output", "json"])
        .args(args);
    c
}

//! A single-node [Garage](https://garagehq.deuxfleurs.fr) S3 server for tests.
//!
//! [`Garage::start`] writes a config in a temporary directory (metadata and data there
//! too, random loopback ports, a random RPC secret), runs `garage server`, assigns the node
//! a layout role and applies it, and imports one access key; [`Garage::bucket`] creates a
//! bucket that key may use. Dropping the [`Garage`] kills the server and removes its files.
//!
//! The binary is `$BERTH_GARAGE`, else `garage` on `PATH`, else `~/.cargo/bin/garage`
//! (`cargo install garage --locked`). Without it every test using the harness fails, naming
//! what to install.
//!
//! Everything here panics on failure, with the server's log: it is test code, and a
//! harness that cannot start its server is a failed test.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region Garage signs as (its default).
pub const REGION: &str = "garage";

/// How long the server may take to come up and accept the layout, a bucket or a key.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running single-node Garage. Killed and deleted on drop.
pub struct Garage {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`, the S3 API (path-style addressing).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    // Last: removed after the server is killed.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Garage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garage")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The garage program to run.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_GARAGE") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("garage");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cargo/bin/garage");
    if p.is_file() {
        return p;
    }
    panic!(
        "the Garage S3 server is needed for this test and was not found (looked at $BERTH_GARAGE, \
         PATH and ~/.cargo/bin): install it with `cargo install garage --locked`"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .unwrap_or_else(|e| panic!("reading /dev/urandom: {e}"));
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Garage {
    /// Starts a fresh server and waits until it serves S3 with an imported key.
    pub fn start() -> Garage {
        let bin = binary();
        let dir = tempfile::Builder::new()
            .prefix("berth-garage-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temporary directory for Garage: {e}"));
        let (rpc, s3) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = random_hex(32),
        );
        fs::write(&config, text).unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let log = dir.path().join("garage.log");
        let log_file =
            fs::File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning the log handle: {e}"));
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let g = Garage {
            child,
            config,
            log,
            endpoint: format!("http://127.0.0.1:{s3}"),
            region: REGION.to_string(),
            access_key_id: format!("GK{}", random_hex(12)),
            secret_access_key: random_hex(32),
            _dir: dir,
        };
        let node = g.retry("node id", &["node", "id", "-q"]);
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        g.retry(
            "layout assign",
            &["layout", "assign", "-z", "dc1", "-c", "1G", &node],
        );
        g.retry("layout apply", &["layout", "apply", "--version", "1"]);
        let (id, secret) = (g.access_key_id.clone(), g.secret_access_key.clone());
        g.retry(
            "key import",
            &["key", "import", "--yes", "-n", "berth-test", &id, &secret],
        );
        g.wait_for_s3();
        g
    }

    /// Creates `name` and lets the harness's key read, write and own it.
    pub fn bucket(&self, name: &str) {
        self.retry("bucket create", &["bucket", "create", name]);
        self.retry(
            "bucket allow",
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                name,
                "--key",
                &self.access_key_id,
            ],
        );
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `garage -c <config> <args>` until it succeeds; returns its stdout.
    fn retry(&self, what: &str, args: &[&str]) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = Command::new(binary())
                .arg("-c")
                .arg(&self.config)
                .args(args)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap_or_else(|e| panic!("running garage {what}: {e}"));
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            if Instant::now() > deadline {
                panic!(
                    "garage {what} ({args:?}) kept failing: {}{}\n--- server log ---\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the S3 port accepts connections.
    fn wait_for_s3(&self) {
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + READY_TIMEOUT;
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                panic!(
                    "Garage's S3 API never listened on {addr}\n--- server log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The directory holding the server's files.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

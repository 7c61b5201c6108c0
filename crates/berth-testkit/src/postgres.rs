//! A throwaway PostgreSQL cluster for tests: one per test binary ([`shared`]), one fresh
//! database per test ([`PgCluster::create_database`]).
//!
//! The cluster is Debian's PostgreSQL (`/usr/lib/postgresql/15/bin`, or the directory in
//! `BERTH_TEST_PG_BIN`), initialised on a private temporary directory and listening on a
//! random `127.0.0.1` port (its unix socket stays in that directory). `initdb` refuses to
//! run as root, so as root the server runs as the `postgres` system user (`setpriv`), and
//! the directory is handed to that user.
//!
//! Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`): a test database
//! is worth nothing after a crash, and it makes each commit cheap.
//!
//! TLS is on with a certificate for `localhost` and `127.0.0.1` signed by a CA generated
//! at start ([`PgCluster::ca_cert_path`]); plaintext connections are accepted too, so a
//! test chooses with its URL's `sslmode`.
//!
//! The server never outlives the test process: it is started by a small watchdog shell
//! whose standard input is a pipe from the test process. When that pipe closes — the
//! cluster is dropped, the process exits, or it is killed outright — the watchdog stops
//! the server (fast shutdown) and deletes the directory.

use crate::watchdog::{Stop, Watchdog};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian's `postgresql-15` puts its programs.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The superuser `initdb` creates; local connections are trusted (loopback only).
pub const SUPERUSER: &str = "postgres";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("PostgreSQL programs not found in {0} (install Debian's postgresql-15, or set BERTH_TEST_PG_BIN)")]
    NotInstalled(String),
    #[error("{what} failed")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {output}")]
    Command { what: String, output: String },
    #[error("PostgreSQL did not start: {0}")]
    NotStarted(String),
    #[error("cannot make the test certificate")]
    Certificate(#[from] rcgen::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The cluster of this test binary, started on first use and stopped when the process
/// ends. Panics (failing the test) when it cannot start.
pub fn shared() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match PgCluster::start() {
        Ok(c) => c,
        Err(e) => panic!("{}", error_chain(&e)),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A running cluster. Dropping it stops the server and removes its directory.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    watchdog: Mutex<Watchdog>,
    next_db: AtomicU64,
}

/// The system user to run the server as: `Some((uid, gid))` of `postgres` when we are root.
fn server_user() -> Result<Option<(u32, u32)>, HarnessError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, HarnessError> {
        let out = Command::new("id")
            .args([flag, SUPERUSER])
            .output()
            .map_err(io("id"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| HarnessError::Command {
                what: format!(
                    "id {flag} {SUPERUSER} (running as root needs the postgres system user)"
                ),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

/// `program` run as `user` (through `setpriv`, which execs it: the pid is the program's).
fn command_as(user: Option<(u32, u32)>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        }
    }
}

fn run(what: &str, cmd: &mut Command) -> Result<String, HarnessError> {
    let out = cmd.output().map_err(io(what))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Command {
            what: what.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding a loopback port"))?;
    Ok(l.local_addr().map_err(io("reading the port"))?.port())
}

impl PgCluster {
    /// Initialises and starts a new cluster, waiting until it accepts connections.
    pub fn start() -> Result<PgCluster, HarnessError> {
        let bin = std::env::var_os("BERTH_TEST_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR));
        if !bin.join("postgres").exists() {
            return Err(HarnessError::NotInstalled(bin.display().to_string()));
        }
        let user = server_user()?;
        let mut last = String::new();
        // A port found free may be taken before the server binds it: then start over on
        // another one.
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("berth-pg-")
                .tempdir()
                .map_err(io("creating the cluster directory"))?
                .keep();
            if let Err(e) = init(&bin, &dir, user) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
            let cluster = Self::spawn(&bin, &dir, user)?;
            match cluster.wait_ready() {
                Ok(()) => return Ok(cluster),
                // Dropping it stops the server and removes the directory.
                Err(e) => last = e,
            }
        }
        Err(HarnessError::NotStarted(last))
    }

    fn spawn(bin: &Path, dir: &Path, user: Option<(u32, u32)>) -> Result<PgCluster, HarnessError> {
        let port = free_port()?;
        let mut server = command_as(user, &bin.join("postgres"));
        server
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        // Fast shutdown (SIGINT); SIGKILL if it has not stopped within 10 seconds.
        let stop = Stop {
            signal: "INT",
            polls: 50,
        };
        let watchdog = Watchdog::spawn("berth-pg-watchdog", dir, "postgres.log", stop, &server)
            .map_err(io("starting the watchdog"))?;
        Ok(PgCluster {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            watchdog: Mutex::new(watchdog),
            next_db: AtomicU64::new(0),
        })
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(log) = self.watchdog.lock().map_err(|e| e.to_string())?.exited() {
                return Err(format!("the server exited: {log}"));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
                .arg(self.port.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {READY_TIMEOUT:?}: {}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("postgres.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the server's certificate (for `sslrootcert`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A connection URL for database `db` as the superuser, without TLS.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Runs SQL as the superuser in the `postgres` database; returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String, HarnessError> {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL as the superuser in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        run(
            "psql",
            Command::new(self.bin.join("psql"))
                .env("PGSSLMODE", "disable")
                .env("PGCONNECT_TIMEOUT", "10")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
                .arg(self.port.to_string())
                .args(["-d", db, "-c", sql]),
        )
    }

    /// A fresh, empty database (copied from `template0`), dropped with the returned value.
    pub fn create_database(&self) -> Result<PgDatabase<'_>, HarnessError> {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY"
        ))?;
        Ok(PgDatabase {
            cluster: self,
            name,
        })
    }
}

/// One test's database; dropped (its connections ended) with this value.
pub struct PgDatabase<'a> {
    cluster: &'a PgCluster,
    name: String,
}

impl PgDatabase<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cluster(&self) -> &PgCluster {
        self.cluster
    }

    /// A connection URL as the superuser, without TLS.
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// Runs SQL as the superuser in this database.
    pub fn psql(&self, sql: &str) -> Result<String, HarnessError> {
        self.cluster.psql_in(&self.name, sql)
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// The certificates and `initdb`, in `dir`, owned by `user`.
fn init(bin: &Path, dir: &Path, user: Option<(u32, u32)>) -> Result<(), HarnessError> {
    write_certificates(dir)?;
    if let Some((uid, gid)) = user {
        for entry in std::fs::read_dir(dir).map_err(io("listing the cluster directory"))? {
            let path = entry.map_err(io("listing the cluster directory"))?.path();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(io(format!("chown {}", path.display())))?;
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(io(format!("chown {}", dir.display())))?;
    }
    run(
        "initdb",
        command_as(user, &bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8"])
            .args(["--locale=C.UTF-8", "--no-sync", "--no-instructions"]),
    )
    .map(drop)
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
fn write_certificates(dir: &Path) -> Result<(), HarnessError> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    let write = |name: &str, bytes: &[u8], mode: u32| -> Result<(), HarnessError> {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("chmod {}", path.display())))
    };
    write("ca.crt", ca.pem().as_bytes(), 0o644)?;
    write("server.crt", cert.pem().as_bytes(), 0o644)?;
    // PostgreSQL refuses a key others can read.
    write("server.key", key.serialize_pem().as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_fresh_and_separate() {
        let cluster = shared();
        let a = cluster.create_database().unwrap();
        let b = cluster.create_database().unwrap();
        assert_ne!(a.name(), b.name());
        a.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .unwrap();
        assert_eq!(a.psql("SELECT count(*) FROM t").unwrap().trim(), "1");
        assert!(b.psql("SELECT count(*) FROM t").is_err());
        let name = a.name().to_string();
        drop(a);
        let left = cluster
            .psql(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
            ))
            .unwrap();
        assert_eq!(left.trim(), "0");
    }

    #[test]
    fn the_server_runs_unprivileged_and_stops_with_its_cluster() {
        let cluster = PgCluster::start().unwrap();
        let dir = cluster.dir.clone();
        let owner = cluster
            .psql("SELECT current_setting('data_directory')")
            .unwrap();
        assert!(owner.trim().starts_with(&*dir.to_string_lossy()), "{owner}");
        let pid: u32 = std::fs::read_to_string(dir.join("data/postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next().unwrap().to_string())
            })
            .unwrap();
        assert_ne!(uid, "0", "the server must not run as root");
        let port = cluster.port();
        drop(cluster);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "server still running"
        );
        assert!(!dir.exists(), "cluster directory left behind");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn a_killed_test_process_leaves_no_server_behind() {
        // A child process (this test binary, re-run on a helper test) starts a cluster,
        // prints its server's pid and directory, and is killed with SIGKILL.
        if std::env::var_os("BERTH_TESTKIT_CHILD").is_some() {
            return;
        }
        crate::watchdog::assert_a_killed_test_process_leaves_nothing(
            "postgres::tests::child_starts_a_cluster_and_waits",
            "server",
            READY_TIMEOUT,
        );
    }

    #[test]
    #[ignore = "run by a_killed_test_process_leaves_no_server_behind as its child"]
    fn child_starts_a_cluster_and_waits() {
        if std::env::var_os("BERTH_TESTKIT_CHILD").is_none() {
            return;
        }
        let cluster = PgCluster::start().unwrap();
        let pid = std::fs::read_to_string(cluster.dir.join("data/postmaster.pid")).unwrap();
        println!(
            "READY {} {} END",
            pid.lines().next().unwrap(),
            cluster.dir.display()
        );
        std::thread::sleep(Duration::from_secs(600));
    }
}

//! An [HAProxy](https://www.haproxy.org) load balancer in front of several servers, for
//! cluster tests.
//!
//! [`Haproxy::start`] writes a config in a temporary directory: one frontend on a random
//! `127.0.0.1` port, one backend balancing **round-robin per request** with no
//! stickiness, HTTP mode, servers health-checked with `GET <health path>` (down after two
//! failed checks, 300 ms apart), and a connection refused by a dead server retried on
//! another one (`retries`, `option redispatch`). Bodies stream through (no
//! `http-buffer-request`, no size limit) and the client and server timeouts are
//! inactivity timeouts of 10 minutes, so multi-GiB blob uploads pass. A stats socket in
//! the directory tells which servers are up ([`Haproxy::servers`]).
//!
//! The proxy never outlives the test process: like the PostgreSQL harness, it runs under a
//! small watchdog shell whose standard input is a pipe from the test process; when the pipe
//! closes (the value is dropped, the process exits or is killed outright) the watchdog
//! stops HAProxy and deletes the directory.
//!
//! The binary is `$BERTH_HAPROXY`, else `haproxy` on `PATH`, else `/usr/sbin/haproxy`
//! (Debian's `haproxy` package). Without it the harness panics naming what to install.
//! Everything here panics on failure, with HAProxy's log: it is test code.

use crate::watchdog::{Stop, Watchdog};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long HAProxy may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at a start (a port found free may be taken before HAProxy binds it).
const START_ATTEMPTS: usize = 3;

/// What the backend's servers are checked with, and how often.
#[derive(Debug, Clone)]
pub struct Options {
    /// The path of `GET` health checks (answered 200 by a healthy server).
    pub health_path: String,
    /// Time between two checks of a server.
    pub check_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            health_path: "/readyz".to_string(),
            check_interval: Duration::from_millis(300),
        }
    }
}

/// A running HAProxy. Stopped, and its directory removed, on drop.
pub struct Haproxy {
    watchdog: Watchdog,
    dir: PathBuf,
    addr: SocketAddr,
    servers: Vec<SocketAddr>,
}

impl std::fmt::Debug for Haproxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Haproxy")
            .field("addr", &self.addr)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

/// The haproxy program to run.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_HAPROXY") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("haproxy");
            if p.is_file() {
                return p;
            }
        }
    }
    let p = PathBuf::from("/usr/sbin/haproxy");
    if p.is_file() {
        return p;
    }
    panic!(
        "HAProxy is needed for this test and was not found (looked at $BERTH_HAPROXY, PATH and \
         /usr/sbin/haproxy): install it with `apt-get install haproxy`"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The configuration: see the module doc for why each setting.
fn config(dir: &Path, port: u16, servers: &[SocketAddr], opts: &Options) -> String {
    let inter = opts.check_interval.as_millis().max(1);
    let mut text = format!(
        r#"global
    maxconn 2000
    nbthread 2
    stats socket {sock} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlognull
    # Inactivity timeouts: a blob upload may stream for minutes.
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout http-request 60s
    timeout http-keep-alive 30s
    timeout queue 30s
    timeout check 2s
    # A refused connection (a dead node) is retried on another server.
    retries 3
    option redispatch 1

frontend registry
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET {health}
    http-check expect status 200
    default-server inter {inter}ms fastinter {inter}ms downinter {inter}ms fall 2 rise 2
"#,
        sock = dir.join("stats.sock").display(),
        health = opts.health_path,
    );
    for (i, s) in servers.iter().enumerate() {
        text.push_str(&format!("    server node{i} {s} check\n"));
    }
    text
}

impl Haproxy {
    /// Starts HAProxy balancing over `servers` with the default [`Options`], and waits
    /// until it listens.
    pub fn start(servers: &[SocketAddr]) -> Haproxy {
        Self::start_with(servers, &Options::default())
    }

    pub fn start_with(servers: &[SocketAddr], opts: &Options) -> Haproxy {
        let bin = binary();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("berth-haproxy-")
                .tempdir()
                .unwrap_or_else(|e| panic!("temporary directory for HAProxy: {e}"))
                .keep();
            let port = free_port();
            let cfg = dir.join("haproxy.cfg");
            fs::write(&cfg, config(&dir, port, servers, opts))
                .unwrap_or_else(|e| panic!("writing {}: {e}", cfg.display()));
            let mut server = Command::new(&bin);
            server.arg("-db").arg("-f").arg(&cfg);
            let stop = Stop {
                signal: "TERM",
                polls: 25,
            };
            let watchdog =
                Watchdog::spawn("berth-haproxy-watchdog", &dir, "haproxy.log", stop, &server)
                    .unwrap_or_else(|e| panic!("starting the HAProxy watchdog: {e}"));
            let mut h = Haproxy {
                watchdog,
                dir,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                servers: servers.to_vec(),
            };
            match h.wait_ready() {
                Ok(()) => return h,
                // Dropping it stops HAProxy and removes the directory.
                Err(e) => last = e,
            }
        }
        panic!("HAProxy did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(log) = self.watchdog.exited() {
                return Err(format!("HAProxy exited: {log}"));
            }
            if TcpStream::connect(self.addr).is_ok() && self.dir.join("stats.sock").exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening on {} after {READY_TIMEOUT:?}: {}",
                    self.addr,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The frontend's address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's servers, in config order (`node0`, `node1`, ...).
    pub fn backends(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// HAProxy's log so far (one line per request, and server state changes).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// How many requests HAProxy answered with each status so far, per server (`node0`,
    /// ...; `<NOSRV>` when none was chosen), from its request log; -1 when no answer came
    /// (the server died, or the client left). A request's line is written once it ends, a
    /// moment after its answer.
    pub fn statuses(&self) -> std::collections::BTreeMap<(String, i32), usize> {
        let mut out = std::collections::BTreeMap::new();
        for line in self.log().lines() {
            // `... registry nodes/node1 0/0/0/2/2 202 ...`: the server, timers, status.
            let mut words = line.split_whitespace();
            let Some(server) = words.find_map(|w| w.strip_prefix("nodes/")) else {
                continue;
            };
            if let Some(status) = words.nth(1).and_then(|w| w.parse::<i32>().ok()) {
                *out.entry((server.to_string(), status)).or_insert(0) += 1;
            }
        }
        out
    }

    /// Each server's name and whether HAProxy considers it up now (`show stat` on the
    /// stats socket), in config order.
    pub fn servers(&self) -> Vec<(String, bool)> {
        let csv = self.command("show stat");
        let mut out = Vec::new();
        for line in csv.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split(',').collect();
            // pxname, svname, ... status is the 18th column.
            if cols.first() == Some(&"nodes") && cols.len() > 17 {
                let name = cols.get(1).copied().unwrap_or_default();
                if name != "BACKEND" {
                    let status = cols.get(17).copied().unwrap_or_default();
                    out.push((name.to_string(), status.starts_with("UP")));
                }
            }
        }
        out
    }

    /// Waits until HAProxy's view of which servers are up is `up` (in config order);
    /// panics after `timeout`.
    pub fn wait_for_servers(&self, up: &[bool], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now: Vec<bool> = self.servers().into_iter().map(|(_, u)| u).collect();
            if now == up {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "HAProxy's servers are {now:?}, not {up:?}, after {timeout:?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One command on the stats socket; its answer.
    fn command(&self, cmd: &str) -> String {
        let path = self.dir.join("stats.sock");
        let mut s = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", path.display()));
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        s.write_all(format!("{cmd}\n").as_bytes())
            .unwrap_or_else(|e| panic!("HAProxy stats socket: {e}"));
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny HTTP server answering every request with `200 <name>` (and closing).
    fn tiny_server(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = name.as_bytes();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            }
        });
        addr
    }

    /// HAProxy's own process id (`show info`).
    fn haproxy_pid(h: &Haproxy) -> u32 {
        h.command("show info")
            .lines()
            .find_map(|l| l.strip_prefix("Pid: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_killed_test_process_leaves_no_haproxy_behind() {
        // A child process (this test binary, re-run on a helper test) starts HAProxy,
        // prints its pid and directory, and is killed with SIGKILL.
        if std::env::var_os("BERTH_TESTKIT_CHILD").is_some() {
            return;
        }
        crate::watchdog::assert_a_killed_test_process_leaves_nothing(
            "haproxy::tests::child_starts_haproxy_and_waits",
            "HAProxy",
            READY_TIMEOUT,
        );
    }

    #[test]
    #[ignore = "run by a_killed_test_process_leaves_no_haproxy_behind as its child"]
    fn child_starts_haproxy_and_waits() {
        if std::env::var_os("BERTH_TESTKIT_CHILD").is_none() {
            return;
        }
        let h = Haproxy::start(&[tiny_server("a")]);
        println!("READY {} {} END", haproxy_pid(&h), h.dir.display());
        std::thread::sleep(Duration::from_secs(600));
    }

    fn get(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.rsplit("\r\n\r\n").next().unwrap().to_string()
    }

    #[test]
    fn balances_round_robin_and_stops_with_its_value() {
        let a = tiny_server("a");
        let b = tiny_server("b");
        let h = Haproxy::start_with(
            &[a, b],
            &Options {
                health_path: "/".into(),
                ..Options::default()
            },
        );
        h.wait_for_servers(&[true, true], Duration::from_secs(10));
        let answers: Vec<String> = (0..4).map(|_| get(h.addr())).collect();
        // Each request to the next server, whichever comes first.
        assert_ne!(answers[0], answers[1], "{answers:?}");
        assert_eq!(answers[0], answers[2], "{answers:?}");
        assert_eq!(answers[1], answers[3], "{answers:?}");
        // A request's log line comes a moment after its answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut statuses = h.statuses();
        while statuses.values().sum::<usize>() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            statuses = h.statuses();
        }
        assert_eq!(statuses.values().sum::<usize>(), 4, "{statuses:?}");
        assert_eq!(statuses.get(&("node0".to_string(), 200)), Some(&2));
        let (addr, dir) = (h.addr(), h.dir.clone());
        drop(h);
        assert!(TcpStream::connect(addr).is_err(), "still listening");
        assert!(!dir.exists(), "directory left behind");
    }
}

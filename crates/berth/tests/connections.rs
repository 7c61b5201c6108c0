//! Connections under abuse, against the real binary.
//!
//! * Floods (plain HTTP and TLS), against a server limited to 1024 open files and given short deadlines: hundreds
//!   of connections at a time, thousands over the test, that send nothing, send a byte a second, go idle after one
//!   request, or stop after the HTTP/2 preface (plain) or the TLS handshake (TLS), plus a burst of 1,500 silent
//!   ones beyond the connection cap. Meanwhile a real client pushes and pulls images without a single error.
//!   Every flood connection is closed by the server within its deadline (plus a margin), and the log does not
//!   fill with accept errors.
//! * Unauthenticated uploads whose client sends the whole body before reading (as Go's does), with bodies of
//!   1 KiB, 64 KiB, 200 KiB and 1 MiB, 50 times each: every one reads its 401 (no EOF, no reset). Bodies within
//!   the drain bound leave the connection usable; a longer one gets the 401 with `Connection: close`. The same
//!   uploads with credentials succeed.
//! * `[server] proxy_protocol`: connections without a PROXY header (or from outside `proxy_protocol_from`)
//!   are closed unanswered; with a v1 or v2 header the request is served and the client's address in the
//!   header is the one the server sees (the failed-login log names it).
//! * Clients that read while they write (as Go's does) with bodies of 16 and 64 MiB, past every bound the server
//!   reads: the server stops reading but does not reset the connection before they have taken in their 401.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod safety_support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use safety_support::*;

const HANDSHAKE_SECS: u64 = 2;
const HEADER_SECS: u64 = 3;
const IDLE_SECS: u64 = 3;
/// Scheduling slack on a loaded machine on top of each deadline.
const MARGIN: Duration = Duration::from_secs(5);
/// The server's open-file limit; its default connection cap is half of it less a reserve.
const NOFILE: u64 = 1024;

fn start(name: &str, tls: bool) -> (tempfile::TempDir, Server) {
    let work = workdir(name);
    let data = work.path().join("data");
    let env = [
        ("HANDSHAKE_TIMEOUT_SECS", HANDSHAKE_SECS),
        ("HEADER_READ_TIMEOUT_SECS", HEADER_SECS),
        ("IDLE_TIMEOUT_SECS", IDLE_SECS),
    ]
    .iter()
    .map(|(k, v)| (format!("BERTH_SERVER__{k}"), v.to_string()))
    .collect();
    let opts = ServerOpts {
        tls_self_signed: tls,
        env,
        nofile: Some(NOFILE),
        ..Default::default()
    };
    let server = Server::start(&data, work.path(), opts);
    (work, server)
}

// ---------------------------------------------------------------------------------------------------------------
// Floods
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request head one byte a second.
    Slow,
    /// One request, its answer read, then nothing.
    Idle,
    /// Plain: the HTTP/2 preface and an empty SETTINGS frame, then nothing. TLS: the handshake, then nothing.
    Stalled,
}

impl Kind {
    /// How long after `since` the server must have closed it.
    fn deadline(self) -> Duration {
        match self {
            Kind::Silent => Duration::from_secs(HANDSHAKE_SECS),
            Kind::Slow | Kind::Stalled => Duration::from_secs(HANDSHAKE_SECS + HEADER_SECS),
            Kind::Idle => Duration::from_secs(IDLE_SECS),
        }
    }
}

struct FloodConn {
    kind: Kind,
    sock: TcpStream,
    /// When the deadline started (connect, or the answer for `Idle`).
    since: Instant,
    slow_sent: usize,
    next_byte: Instant,
}

const SLOW_HEAD: &[u8] =
    b"GET /v2/ HTTP/1.1\r\nHost: flood\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// What the flood saw.
#[derive(Default, Debug)]
struct FloodReport {
    opened: usize,
    closed: usize,
    /// Connections the server kept open past their deadline (+ margin): kind, how long.
    late: Vec<(Kind, Duration)>,
    setup_errors: Vec<String>,
}

struct Flood {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Flood {
    fn connect(&self, kind: Kind) -> Result<FloodConn, String> {
        let addr = self.addr.parse().expect("socket address");
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let now = Instant::now();
        let mut since = now;
        match (kind, &self.tls) {
            (Kind::Silent | Kind::Slow, _) => {}
            (Kind::Stalled, None) => sock
                .write_all(H2_PREFACE)
                .map_err(|e| format!("h2 preface: {e}"))?,
            (Kind::Idle, None) => {
                sock.write_all(b"GET /v2/ HTTP/1.1\r\nHost: flood\r\n\r\n")
                    .map_err(|e| format!("idle request: {e}"))?;
                read_head(&mut sock).map_err(|e| format!("idle answer: {e}"))?;
                since = Instant::now();
            }
            (Kind::Stalled | Kind::Idle, Some(cfg)) => {
                let name =
                    rustls::pki_types::ServerName::try_from("localhost").expect("server name");
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
                let mut tls = rustls::StreamOwned::new(conn, sock);
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                }
                if kind == Kind::Idle {
                    tls.write_all(b"GET /v2/ HTTP/1.1\r\nHost: flood\r\n\r\n")
                        .map_err(|e| format!("idle request: {e}"))?;
                    let mut buf = [0u8; 4096];
                    let n = tls
                        .read(&mut buf)
                        .map_err(|e| format!("idle answer: {e}"))?;
                    if !buf[..n].starts_with(b"HTTP/1.1 401") {
                        return Err(format!(
                            "idle answer: {:?}",
                            String::from_utf8_lossy(&buf[..n])
                        ));
                    }
                }
                since = Instant::now();
                sock = tls.sock;
            }
        }
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(FloodConn {
            kind,
            sock,
            since,
            slow_sent: 0,
            next_byte: now,
        })
    }

    /// Keeps `target` connections of `kind` open (reopening those the server closes) until `stop`, plus a
    /// one-off burst of `burst` more after 5 s; checks every close against the kind's deadline.
    fn run(&self, kind: Kind, target: usize, burst: usize, stop: &AtomicBool) -> FloodReport {
        let mut report = FloodReport::default();
        let mut open: Vec<FloodConn> = Vec::new();
        let started = Instant::now();
        let mut burst_done = false;
        while !stop.load(Ordering::Relaxed) {
            let mut wanted = target.saturating_sub(open.len());
            let round = Instant::now();
            if !burst_done && started.elapsed() > Duration::from_secs(5) {
                burst_done = true;
                wanted += burst;
            }
            for i in 0..wanted {
                match self.connect(kind) {
                    Ok(c) => {
                        open.push(c);
                        report.opened += 1;
                    }
                    Err(e) => report.setup_errors.push(format!("{kind:?}: {e}")),
                }
                // Connecting a burst takes a while: keep noticing closes meanwhile.
                if i % 25 == 24 {
                    check_closes(&mut open, &mut report);
                }
            }
            check_closes(&mut open, &mut report);
            if wanted > target {
                eprintln!(
                    "{kind:?}: opening {wanted} connections took {:?}",
                    round.elapsed()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        report
    }
}

/// Sends the next byte of slow connections that are due, and takes the connections the server has closed off
/// `open`, checking each against its deadline.
fn check_closes(open: &mut Vec<FloodConn>, report: &mut FloodReport) {
    let now = Instant::now();
    open.retain_mut(|c| {
        if c.kind == Kind::Slow && now >= c.next_byte && c.slow_sent < SLOW_HEAD.len() {
            if c.sock
                .write(&SLOW_HEAD[c.slow_sent..c.slow_sent + 1])
                .is_ok()
            {
                c.slow_sent += 1;
            }
            c.next_byte = now + Duration::from_secs(1);
        }
        let closed = poll_closed(&mut c.sock);
        let age = now - c.since;
        if closed {
            report.closed += 1;
            if age > c.kind.deadline() + MARGIN {
                report.late.push((c.kind, age));
            }
            return false;
        }
        if age > c.kind.deadline() + MARGIN + Duration::from_secs(5) {
            // Far past its deadline and still open: record it once and stop watching.
            report.late.push((c.kind, age));
            return false;
        }
        true
    });
}

/// Reads whatever is waiting; true once the server has closed the connection (EOF or reset).
fn poll_closed(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// A real client's work: push an image (a monolithic and a chunked layer) and pull it back, `rounds` times.
fn push_and_pull(server: &Server, rounds: usize) -> Vec<String> {
    let c = server.client();
    let ep = server.ep();
    let mut rng = Rng::new(9);
    let mut errors = Vec::new();
    for round in 0..rounds {
        let repo = format!("flooded/app{}", round % 3);
        let small = rng.bytes(64 * 1024);
        let large = rng.bytes(300 * 1024);
        let layers = vec![
            (sha256_digest(&small), small.len()),
            (sha256_digest(&large), large.len()),
        ];
        let config = image_config(&layers, &format!("round {round}"));
        let manifest = image_manifest(
            (&sha256_digest(&config), config.len()),
            &layers,
            &format!("round {round}"),
        );
        let pushes = [
            push_blob(&c, &ep, &repo, &small, BlobMode::Monolithic),
            push_blob(&c, &ep, &repo, &large, BlobMode::Chunked(100 * 1024)),
            push_blob(&c, &ep, &repo, &config, BlobMode::PostPut),
            push_manifest(&c, &ep, &repo, &format!("r{round}"), &manifest),
        ];
        for p in pushes {
            if p != Push::Acked {
                errors.push(format!("round {round}: {p:?}"));
            }
        }
        match get_manifest(&c, &ep, &repo, &format!("r{round}")) {
            Ok(m) if m.status == 200 && m.body == manifest => {}
            Ok(m) => errors.push(format!("round {round}: manifest GET answered {}", m.status)),
            Err(e) => errors.push(format!("round {round}: {e}")),
        }
        for (digest, size) in &layers {
            if let Err(e) = verify_blob(&c, &ep, &repo, digest, Some(*size as u64)) {
                errors.push(format!("round {round}: {e}"));
            }
        }
    }
    errors
}

fn tls_client_config(server: &Server) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&server.ca_pem()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn floods_do_not_stop_real_clients(tls: bool) {
    let (_work, server) = start(if tls { "flood-tls" } else { "flood-plain" }, tls);
    let flood = Arc::new(Flood {
        addr: server.addr.clone(),
        tls: tls.then(|| tls_client_config(&server)),
    });
    let stop = Arc::new(AtomicBool::new(false));
    // Under the cap (~480) together, so that deadlines, not the cap, close them; the burst goes over it.
    // One thread per kind, so that slow TLS handshakes do not delay noticing closes.
    let targets = [
        (Kind::Silent, 200, 1500),
        (Kind::Slow, 60, 0),
        (Kind::Idle, 60, 0),
        (Kind::Stalled, 60, 0),
    ];
    let flooders: Vec<_> = targets
        .into_iter()
        .map(|(kind, target, burst)| {
            let (flood, stop) = (flood.clone(), stop.clone());
            thread::spawn(move || flood.run(kind, target, burst, &stop))
        })
        .collect();
    // Let the flood fill up before the real client starts, and keep it going for a while after.
    thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let errors = push_and_pull(&server, 12);
    while started.elapsed() < Duration::from_secs(12) {
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let mut report = FloodReport::default();
    for f in flooders {
        let r = f.join().expect("flood thread");
        report.opened += r.opened;
        report.closed += r.closed;
        report.late.extend(r.late);
        report.setup_errors.extend(r.setup_errors);
    }
    let elapsed = started.elapsed() + Duration::from_secs(2);
    eprintln!(
        "flood over {elapsed:?}: {} connections opened, {} closed by the server, {} setup errors",
        report.opened,
        report.closed,
        report.setup_errors.len()
    );

    assert!(
        errors.is_empty(),
        "the real client failed during the flood:\n{}\n{}",
        errors.join("\n"),
        server.log_tail(40)
    );
    assert!(
        report.setup_errors.len() * 20 <= report.opened,
        "most flood connections should open (and idle ones get their 401): {report:?}"
    );
    assert!(
        report.opened >= 1500 + 400,
        "the flood opened too few connections: {report:?}"
    );
    assert!(
        report.closed >= 1500,
        "the server closed too few flood connections: {report:?}"
    );
    assert!(
        report.late.is_empty(),
        "connections stayed open past their deadline + {MARGIN:?}: {:?}\n{}",
        report.late,
        server.log_tail(40)
    );
    let log = server.log();
    let accept_errors = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_errors as u64 <= elapsed.as_secs() / 10 + 1,
        "accept errors logged {accept_errors} times in {elapsed:?}\n{}",
        server.log_tail(40)
    );
}

#[test]
fn plain_floods_of_silent_slow_idle_and_h2c_connections_do_not_stop_real_clients() {
    floods_do_not_stop_real_clients(false);
}

#[test]
fn tls_floods_of_silent_slow_idle_and_stalled_connections_do_not_stop_real_clients() {
    floods_do_not_stop_real_clients(true);
}

// ---------------------------------------------------------------------------------------------------------------
// Early answers to uploads
// ---------------------------------------------------------------------------------------------------------------

/// A response head: status and lower-cased header lines; the body (by `Content-Length`) is read and dropped.
fn read_head(sock: &mut TcpStream) -> Result<(u16, String), String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte) {
            Ok(0) => return Err(format!("EOF after {} bytes of the answer", got.len())),
            Ok(_) => got.push(byte[0]),
            Err(e) => return Err(format!("{e} after {} bytes of the answer", got.len())),
        }
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    sock.read_exact(&mut body)
        .map_err(|e| format!("answer body: {e}"))?;
    Ok((status, head))
}

/// `PUT`s `body` as a monolithic upload from a raw socket: the head, then the whole body in 16 KiB writes, and
/// only then reads the answer (a write failing because the server closed early is an error).
fn put_then_read(
    sock: &mut TcpStream,
    repo: &str,
    body: &[u8],
    auth: Option<&str>,
) -> Result<(u16, String), String> {
    let digest = sha256_digest(body).replace(':', "%3A");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /v2/{repo}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: berth\r\n{auth}\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())
        .map_err(|e| format!("writing the head: {e}"))?;
    // The server may answer as soon as it has the head; the body keeps coming regardless.
    thread::sleep(Duration::from_millis(2));
    for chunk in body.chunks(16 * 1024) {
        sock.write_all(chunk)
            .map_err(|e| format!("writing the body: {e}"))?;
    }
    read_head(sock)
}

#[test]
fn unauthenticated_uploads_read_their_401_whatever_the_body_size() {
    let (_work, server) = start("early-401", false);
    let drain_limit = 256 * 1024;
    let mut failures = Vec::new();
    for size in [1024, 64 * 1024, 200 * 1024, 1024 * 1024] {
        let body = Rng::new(size as u64).bytes(size);
        for attempt in 0..50 {
            let mut sock = TcpStream::connect(&server.addr).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            match put_then_read(&mut sock, "early/answers", &body, None) {
                Ok((401, head)) => {
                    let closes = head.contains("connection: close");
                    if size <= drain_limit {
                        // The body was drained: the connection takes another request.
                        let again = sock
                            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: berth\r\n\r\n")
                            .map_err(|e| e.to_string())
                            .and_then(|_| read_head(&mut sock));
                        if closes || !matches!(again, Ok((401, _))) {
                            failures.push(format!(
                                "{size} B #{attempt}: not reusable ({closes}, {again:?})"
                            ));
                        }
                    } else if !closes {
                        failures.push(format!(
                            "{size} B #{attempt}: 401 without Connection: close"
                        ));
                    }
                }
                Ok((status, head)) => {
                    failures.push(format!("{size} B #{attempt}: {status} {head:?}"))
                }
                Err(e) => failures.push(format!("{size} B #{attempt}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 unauthenticated uploads did not read their 401:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        server.log_tail(30)
    );
    // The same uploads with credentials are stored.
    for size in [1024, 64 * 1024, 200 * 1024, 1024 * 1024] {
        let body = Rng::new(size as u64).bytes(size);
        let mut sock = TcpStream::connect(&server.addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let answer = put_then_read(&mut sock, "early/answers", &body, Some(&admin_basic_auth()));
        assert!(
            matches!(answer, Ok((201, _))),
            "{size} B with credentials: {answer:?}"
        );
        verify_blob(
            &server.client(),
            &server.ep(),
            "early/answers",
            &sha256_digest(&body),
            Some(size as u64),
        )
        .unwrap_or_else(|e| panic!("{size} B: {e}"));
    }
}

/// Like Go's client, this one reads while it writes, and takes whichever comes first: the answer or a failed
/// write. Its body (16 and 64 MiB) is past what the server drains and past what it reads while closing, so the
/// server stops reading and closes; it must keep the socket open long enough for the client to take in the 401
/// (here: 500 ms after its head arrived; the server's bound is 2 s) instead of resetting it at once.
#[test]
fn a_client_writing_past_every_bound_still_has_time_to_take_its_401() {
    let (_work, server) = start("early-401-large", false);
    const GRACE: Duration = Duration::from_millis(500);
    let attempts: Vec<_> = [16usize << 20, 64 << 20]
        .into_iter()
        .flat_map(|size| [size; 4])
        .map(|size| {
            let addr = server.addr.clone();
            thread::spawn(move || {
                let mut sock = TcpStream::connect(&addr).expect("connect");
                sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut out = sock.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let head = format!(
                        "POST /v2/early/large/blobs/uploads/?digest=sha256%3A{} HTTP/1.1\r\nHost: berth\r\n\
                         Content-Length: {size}\r\n\r\n",
                        "0".repeat(64)
                    );
                    let chunk = vec![7u8; 64 * 1024];
                    let result = out.write_all(head.as_bytes()).and_then(|()| {
                        (0..size / chunk.len()).try_for_each(|_| out.write_all(&chunk))
                    });
                    result.err().map(|e| (Instant::now(), e))
                });
                let answer = read_head(&mut sock);
                let answered = Instant::now();
                // A busy client takes a while to act on the answer; the server must not reset meanwhile.
                while !writer.is_finished() && answered.elapsed() < GRACE {
                    thread::sleep(Duration::from_millis(10));
                }
                let _ = sock.shutdown(std::net::Shutdown::Both);
                let write_failed = writer.join().unwrap();
                match (answer, write_failed) {
                    (Ok((401, _)), None) => Ok(()),
                    (Ok((401, _)), Some((at, _))) if at >= answered + GRACE => Ok(()),
                    (answer, failed) => Err(format!(
                        "{size} B: answer {answer:?}; write failed {:?} after the answer: {:?}",
                        failed.as_ref().map(|(at, _)| at.saturating_duration_since(answered)),
                        failed.map(|(_, e)| e)
                    )),
                }
            })
        })
        .collect();
    let failures: Vec<String> = attempts
        .into_iter()
        .filter_map(|a| a.join().unwrap().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 8 clients lost their 401 to a reset:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        server.log_tail(30)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// PROXY protocol
// ---------------------------------------------------------------------------------------------------------------

/// Sends `prefix` then a `GET path` with `extra` headers on a new connection; the answer's status, or why none.
fn proxied_get(addr: &str, prefix: &[u8], path: &str, extra: &str) -> Result<u16, String> {
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = prefix.to_vec();
    req.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    sock.write_all(&req).map_err(|e| e.to_string())?;
    read_head(&mut sock).map(|(status, _)| status)
}

fn proxy_v2_ipv4(src: [u8; 4], src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst_port.to_be_bytes());
    h
}

#[test]
fn proxy_protocol_names_the_client_and_connections_without_a_header_are_closed() {
    let work = workdir("proxy-protocol");
    let data = work.path().join("data");
    let opts = |from: &str| ServerOpts {
        env: vec![
            ("BERTH_SERVER__PROXY_PROTOCOL".into(), "true".into()),
            (
                "BERTH_SERVER__PROXY_PROTOCOL_FROM".into(),
                format!("[\"{from}\"]"),
            ),
            ("BERTH_SERVER__HANDSHAKE_TIMEOUT_SECS".into(), "2".into()),
        ],
        skip_ready_check: true,
        ..Default::default()
    };
    let mut server = Server::start(&data, work.path(), opts("127.0.0.0/8"));
    let addr = server.addr.clone();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();

    // The balancer's connections: v1 and v2 headers, v2 LOCAL (health checks) included.
    let v1 = format!("PROXY TCP4 203.0.113.7 127.0.0.1 40001 {port}\r\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match proxied_get(&addr, v1.as_bytes(), "/healthz", "") {
            Ok(200) => break,
            other => assert!(
                Instant::now() < deadline,
                "GET /healthz behind a v1 header: {other:?}\n{}",
                server.log_tail(40)
            ),
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        proxied_get(
            &addr,
            &proxy_v2_ipv4([203, 0, 113, 8], 40002, port),
            "/readyz",
            ""
        ),
        Ok(200)
    );
    let local = [b"\r\n\r\n\0\r\nQUIT\n".as_slice(), &[0x20, 0x00, 0, 0]].concat();
    assert_eq!(proxied_get(&addr, &local, "/healthz", ""), Ok(200));

    // Whoever connects without a header, or with a malformed one, gets no answer at all.
    for prefix in [b"".as_slice(), b"PROXY TCP4 nonsense\r\n"] {
        let r = proxied_get(&addr, prefix, "/healthz", "");
        assert!(r.is_err(), "answered without a valid PROXY header: {r:?}");
    }
    // A silent connection is closed at the handshake deadline like any other.
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(2 + MARGIN.as_secs())))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(silent.read(&mut byte), Ok(0) | Err(_)));

    // The client's address from the header is the request's source: a failed login from "198.51.100.23" is
    // logged as coming from there, not from 127.0.0.1.
    let v2 = proxy_v2_ipv4([198, 51, 100, 23], 40003, port);
    let bad = "Authorization: Basic QUtJQUlPU0ZPRE5ON0VYQU1QTEU6d3Jvbmc=\r\n";
    assert_eq!(proxied_get(&addr, &v2, "/v2/", bad), Ok(401));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .log()
        .lines()
        .any(|l| l.contains("failed login") && l.contains("198.51.100.23"))
    {
        assert!(
            Instant::now() < deadline,
            "no failed login from 198.51.100.23 in the log:\n{}",
            server.log_tail(40)
        );
        thread::sleep(Duration::from_millis(50));
    }

    // Peers outside proxy_protocol_from are refused even with a well-formed header.
    server.terminate(Duration::from_secs(15));
    let mut server = Server::start(&data, work.path(), opts("10.9.8.0/24"));
    let addr = server.addr.clone();
    let r = proxied_get(&addr, v1.as_bytes(), "/healthz", "");
    assert!(
        r.is_err(),
        "a peer outside proxy_protocol_from was answered: {r:?}"
    );
    assert!(
        server.log().contains("not in server.proxy_protocol_from"),
        "no warning about the refused peer:\n{}",
        server.log_tail(40)
    );
    server.terminate(Duration::from_secs(15));
}

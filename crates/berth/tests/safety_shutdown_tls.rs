//! Graceful shutdown and TLS, against the real binary.
//!
//! * SIGTERM during a slow, large upload (HTTP/1.1, and HTTP/2 over TLS): the `PATCH` finishes (202, every byte
//!   kept), new connections are refused at once, an idle keep-alive connection is closed, and the process exits 0
//!   soon after the upload, well within the grace period; after a restart the upload completes.
//! * SIGTERM as soon as `--addr-file` is written: the exit is graceful.
//! * SIGTERM while a client stalls mid-request: the process still exits once the grace period is over.
//! * `--tls-self-signed`: a client trusting `<data-dir>/tls/ca.pem` gets 200 from `/v2/` over HTTP/1.1 and over
//!   HTTP/2 (and can push and pull a blob over HTTP/2); a client that does not trust the CA is refused; plain
//!   HTTP sent to the TLS port fails fast.
//! * A TLS ClientHello sent to a plain-HTTP port is answered or closed at once (clients such as skopeo try TLS
//!   first), and the server keeps serving.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]
// Test support calls libc (rlimits, mounts, signals) and slices strings it built itself.
#![allow(unsafe_code)]

mod safety_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use safety_support::*;

/// Reads from `s` until EOF, an error or `limit`; returns (bytes read, how it ended, elapsed).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, String, Duration) {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, "EOF".into(), t.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got, "still open (read timed out)".into(), t.elapsed())
            }
            Err(e) => return (got, format!("error: {e}"), t.elapsed()),
        }
        if t.elapsed() > limit {
            return (got, "still open".into(), t.elapsed());
        }
    }
}

/// Opens a keep-alive HTTP/1.1 connection and completes one `GET /v2/` on it.
fn idle_keepalive_connection(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        admin_basic_auth()
    );
    s.write_all(request.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"{}")) {
        let n = s.read(&mut buf).expect("read the /v2/ response");
        assert!(n > 0, "connection closed before the /v2/ response");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    s
}

#[test]
fn sigterm_lets_an_in_flight_upload_finish_refuses_new_connections_and_exits_zero() {
    in_flight_upload_survives_sigterm(false);
}

#[test]
fn sigterm_lets_an_in_flight_http2_upload_over_tls_finish_and_exits_zero() {
    in_flight_upload_survives_sigterm(true);
}

/// SIGTERM a quarter into a ~3 s `PATCH` of 8 MiB: over plain HTTP/1.1 (with an idle keep-alive connection
/// open too), or over TLS with HTTP/2.
fn in_flight_upload_survives_sigterm(tls: bool) {
    const GRACE_SECS: u64 = 20;
    const SIZE: usize = 8 << 20;
    let name = if tls { "sigterm-h2" } else { "sigterm" };
    let mut rng = Rng::from_env(name);
    let work = workdir(name);
    let data = work.path().join("data");
    let opts = ServerOpts {
        env: vec![(
            "BERTH_SERVER__SHUTDOWN_GRACE_SECS".into(),
            GRACE_SECS.to_string(),
        )],
        tls_self_signed: tls,
        ..Default::default()
    };
    let mut server = Server::start(&data, work.path(), opts);
    let c = server.client();
    let repo = "shutdown/slow";
    let addr = server.addr.clone();
    let mut idle = (!tls).then(|| idle_keepalive_connection(&addr));

    let blob = rng.bytes(SIZE);
    let digest = sha256_digest(&blob);
    let url = start_upload(&c, &server.ep(), repo).expect("POST");
    // 8 MiB in 64 pieces of 128 KiB, one every ~45 ms: about 3 s on the wire.
    let sent = Arc::new(AtomicU64::new(0));
    let trickle = Trickle {
        data: blob.clone(),
        pos: 0,
        chunk: 128 << 10,
        pause: Duration::from_millis(45),
        sent: sent.clone(),
    };
    let patch_url = url.clone();
    let patch_started = Instant::now();
    let patch_client = server.client_with_timeout(Duration::from_secs(120));
    let patcher = thread::spawn(move || {
        let r = patch_client
            .patch(&patch_url)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", SIZE - 1))
            .body(reqwest::blocking::Body::sized(trickle, SIZE as u64))
            .send();
        let done = Instant::now();
        r.map(|r| (r.status().as_u16(), header(&r, "range"), r.version(), done))
            .map_err(|e| format!("{e:#}"))
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(Ordering::SeqCst) < (SIZE / 4) as u64 {
        assert!(Instant::now() < deadline, "the slow PATCH made no progress");
        thread::sleep(Duration::from_millis(5));
    }
    let sent_at_term = sent.load(Ordering::SeqCst);
    server.sigterm();
    let term_at = Instant::now();
    eprintln!(
        "SIGTERM {:?} into the PATCH, {sent_at_term} of {SIZE} bytes sent",
        patch_started.elapsed()
    );

    // New connections are refused while the upload is still running.
    let refused_after = loop {
        match TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)) {
            // A reset is a refusal too: the kernel may complete a handshake into the listen
            // backlog just before the listener closes, then reset it.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break term_at.elapsed()
            }
            Err(e) => panic!("connect after SIGTERM: unexpected error {e}"),
            Ok(_) => {
                assert!(
                    term_at.elapsed() < Duration::from_millis(1500),
                    "berth still accepts connections {:?} after SIGTERM",
                    term_at.elapsed()
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let sent_at_refusal = sent.load(Ordering::SeqCst);
    assert!(
        sent_at_refusal < SIZE as u64,
        "the PATCH finished before the refusal could be checked; the test proves nothing"
    );
    assert!(
        server.is_running(),
        "berth exited while a request was in flight\n{}",
        server.log_tail(40)
    );
    // The idle keep-alive connection is closed rather than holding up the shutdown.
    if let Some(idle) = idle.as_mut() {
        let (_, how, after) = read_until_closed(idle, Duration::from_secs(5));
        assert!(
            how == "EOF" || how.starts_with("error"),
            "an idle keep-alive connection is {how} {after:?} after SIGTERM"
        );
    }

    let (status, range, version, done) = patcher.join().unwrap().unwrap_or_else(|e| {
        panic!(
            "the in-flight PATCH failed after SIGTERM: {e}\n{}",
            server.log_tail(40)
        )
    });
    assert_eq!(
        (status, range.as_str()),
        (202, format!("0-{}", SIZE - 1).as_str()),
        "the in-flight PATCH must complete after SIGTERM"
    );
    let want = if tls {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    };
    assert_eq!(version, want, "the PATCH went over the wrong protocol");
    let exit = server
        .wait_exit(Duration::from_secs(GRACE_SECS + 5))
        .unwrap_or_else(|| panic!("berth did not exit within the {GRACE_SECS} s grace period"));
    let exit_after_patch = done.elapsed();
    let exit_after_term = term_at.elapsed();
    assert!(exit.success(), "berth exited with {exit} after SIGTERM");
    assert!(
        exit_after_patch < Duration::from_secs(5),
        "berth took {exit_after_patch:?} to exit after its last request finished (grace period {GRACE_SECS} s)"
    );
    assert!(exit_after_term < Duration::from_secs(GRACE_SECS));
    eprintln!(
        "PATCH took {:?}; new connections refused {refused_after:?} after SIGTERM; exit 0 {exit_after_term:?} \
         after SIGTERM ({exit_after_patch:?} after the PATCH finished)",
        done - patch_started
    );

    // What the upload received during the shutdown is all there.
    server.restart();
    let c = server.client();
    let url = server.ep().resolve(&path_of(&url));
    let r = c.get(&url).send().unwrap();
    assert_eq!(
        (r.status().as_u16(), header(&r, "range")),
        (204, format!("0-{}", SIZE - 1))
    );
    let r = c
        .put(with_digest(&url, &digest))
        .header("content-length", "0")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    verify_blob(&c, &server.ep(), repo, &digest, Some(SIZE as u64))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn sigterm_with_a_stalled_client_exits_when_the_grace_period_is_over() {
    const GRACE_SECS: u64 = 2;
    let mut rng = Rng::from_env("sigterm-stalled");
    let work = workdir("sigterm-stalled");
    let data = work.path().join("data");
    let opts = ServerOpts {
        env: vec![(
            "BERTH_SERVER__SHUTDOWN_GRACE_SECS".into(),
            GRACE_SECS.to_string(),
        )],
        ..Default::default()
    };
    let mut server = Server::start(&data, work.path(), opts);
    let c = server.client();
    let url = start_upload(&c, &server.ep(), "shutdown/stalled").expect("POST");
    // 64 KiB, then nothing for 30 s.
    let sent = Arc::new(AtomicU64::new(0));
    let trickle = Trickle {
        data: rng.bytes(1 << 20),
        pos: 0,
        chunk: 64 << 10,
        pause: Duration::from_secs(30),
        sent: sent.clone(),
    };
    let trickle = FirstFree(Some(trickle));
    thread::spawn(move || {
        let c = client_builder(Duration::from_secs(120)).build().unwrap();
        let _ = c
            .patch(&url)
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::sized(trickle, 1 << 20))
            .send();
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the PATCH never started");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(200));
    server.sigterm();
    let t = Instant::now();
    let exit = server.wait_exit(Duration::from_secs(GRACE_SECS + 10));
    let took = t.elapsed();
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "berth did not exit {took:?} after SIGTERM with a {GRACE_SECS} s grace period and one stalled request\n{}",
            server.log_tail(40)
        )
    });
    eprintln!("stalled client: exit {exit} {took:?} after SIGTERM (grace {GRACE_SECS} s)");
    assert!(
        took >= Duration::from_millis(GRACE_SECS * 1000 - 300),
        "berth exited after {took:?}, before the {GRACE_SECS} s grace period was over, with a request in flight"
    );
    assert!(
        took < Duration::from_secs(GRACE_SECS + 3),
        "berth took {took:?} to exit with a {GRACE_SECS} s grace period"
    );
    assert!(exit.success(), "berth exited with {exit}");
}

/// A [`Trickle`] whose first piece comes without the pause.
struct FirstFree(Option<Trickle>);

impl Read for FirstFree {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let t = self.0.as_mut().unwrap();
        if t.pos == 0 {
            let pause = std::mem::replace(&mut t.pause, Duration::ZERO);
            let n = t.read(buf)?;
            t.pause = pause;
            return Ok(n);
        }
        t.read(buf)
    }
}

fn tls_client(ca: &[u8], http1_only: bool) -> reqwest::blocking::Client {
    let b = client_builder(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca).expect("ca.pem")]);
    let b = if http1_only { b.http1_only() } else { b };
    b.build().expect("https client")
}

#[test]
fn tls_self_signed_serves_http1_and_http2_and_refuses_plain_http_fast() {
    let mut rng = Rng::from_env("tls");
    let work = workdir("tls");
    let data = work.path().join("data");
    let mut server = Server::start(
        &data,
        work.path(),
        ServerOpts {
            tls_self_signed: true,
            ..Default::default()
        },
    );
    let ca = server.ca_pem();
    let https = format!("https://{}/v2/", server.addr);

    for (http1_only, want) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let c = tls_client(&ca, http1_only);
        let t = Instant::now();
        let r = c
            .get(&https)
            .send()
            .unwrap_or_else(|e| panic!("GET {https} (http1_only={http1_only}): {e:#}"));
        assert_eq!(r.status().as_u16(), 200, "GET {https} over {want:?}");
        assert_eq!(r.version(), want, "ALPN should give {want:?}");
        eprintln!(
            "GET {https} over {:?}: 200 in {:?}",
            r.version(),
            t.elapsed()
        );
    }

    // A blob round trip over HTTP/2 (request and response bodies on h2 streams).
    let c = tls_client(&ca, false);
    let ep = server.ep();
    let blob = rng.bytes(1 << 20);
    let d = sha256_digest(&blob);
    assert_eq!(
        push_blob(&c, &ep, "tls/h2", &blob, BlobMode::Monolithic),
        Push::Acked
    );
    assert_eq!(
        push_blob(
            &c,
            &ep,
            "tls/h2",
            &rng.bytes(300 << 10),
            BlobMode::Chunked(100 << 10)
        ),
        Push::Acked
    );
    let r = c.get(ep.v2(&format!("tls/h2/blobs/{d}"))).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    verify_blob(&c, &ep, "tls/h2", &d, Some(blob.len() as u64)).unwrap_or_else(|e| panic!("{e}"));

    // A client that does not trust the local CA is refused.
    let untrusting = client_builder(Duration::from_secs(10)).build().unwrap();
    let r = untrusting.get(&https).send();
    assert!(
        r.is_err(),
        "a client without the local CA got an answer: {:?}",
        r.map(|r| r.status())
    );

    // Plain HTTP to the TLS port fails fast, through a client and on a raw socket.
    let plain = client_builder(Duration::from_secs(10)).build().unwrap();
    let url = format!("http://{}/v2/", server.addr);
    let t = Instant::now();
    let r = plain.get(&url).send();
    let took = t.elapsed();
    eprintln!(
        "plain HTTP to the TLS port: {:?} after {took:?}",
        r.as_ref().map(|r| r.status()).map_err(|e| format!("{e:#}"))
    );
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.status().as_u16() != 200),
        "plain HTTP to the TLS port got 200"
    );
    assert!(
        took < Duration::from_secs(2),
        "plain HTTP to the TLS port took {took:?}"
    );
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (got, how, took) = read_until_closed(&mut s, Duration::from_secs(5));
    eprintln!(
        "raw plain request to the TLS port: {how} after {took:?}, {} bytes back ({:02x?})",
        got.len(),
        &got[..got.len().min(8)]
    );
    assert!(
        how != "still open (read timed out)" && took < Duration::from_secs(2),
        "a plain HTTP request to the TLS port left the connection {how} for {took:?}"
    );
    assert!(!got.starts_with(b"HTTP/1.1 200"));

    // Still serving, and the CA is reused on restart (clients keep trusting it).
    let r = tls_client(&ca, true).get(&https).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let exit = server.terminate(Duration::from_secs(30));
    assert!(exit.success(), "berth exited with {exit}");
    server.restart();
    assert_eq!(server.ca_pem(), ca, "the local CA changed across a restart");
    let r = tls_client(&ca, false)
        .get(format!("https://{}/v2/", server.addr))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The bytes of a TLS 1.2/1.3 ClientHello for `localhost`, as rustls sends it.
fn client_hello() -> Vec<u8> {
    install_crypto_provider();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn a_tls_client_hello_to_the_plain_http_port_is_closed_fast() {
    let work = workdir("tls-to-plain");
    let data = work.path().join("data");
    let server = Server::start(&data, work.path(), ServerOpts::default());
    let hello = client_hello();
    assert_eq!(hello[0], 0x16, "not a TLS handshake record");

    let mut s = TcpStream::connect(&server.addr).unwrap();
    let t = Instant::now();
    s.write_all(&hello).unwrap();
    let (got, how, _) = read_until_closed(&mut s, Duration::from_secs(5));
    let took = t.elapsed();
    let head = String::from_utf8_lossy(&got[..got.len().min(40)]).into_owned();
    eprintln!(
        "ClientHello ({} bytes) to the plain port: {how} after {took:?}; got {} bytes: {head:?}",
        hello.len(),
        got.len()
    );
    assert!(
        how != "still open (read timed out)" && took < Duration::from_secs(2),
        "a TLS ClientHello to the plain-HTTP port left the connection {how} for {took:?}"
    );

    // An HTTPS client pointed at the plain port gets an error quickly too.
    let c = client_builder(Duration::from_secs(10)).build().unwrap();
    let t = Instant::now();
    let r = c.get(format!("https://{}/v2/", server.addr)).send();
    let took = t.elapsed();
    eprintln!(
        "https:// to the plain port: {:?} after {took:?}",
        r.as_ref().map(|r| r.status()).map_err(|e| format!("{e:#}"))
    );
    assert!(r.is_err(), "an HTTPS request to the plain port succeeded");
    assert!(
        took < Duration::from_secs(2),
        "HTTPS to the plain port took {took:?}"
    );

    // The server is unharmed.
    let r = server.client().get(server.v2("")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A supervisor (or test harness) that stops the registry as soon as the address file says it is listening
/// gets a graceful exit 0: the SIGTERM handler is installed before the address file is written.
#[test]
fn sigterm_as_soon_as_the_address_file_appears_is_graceful() {
    use std::os::unix::process::ExitStatusExt;
    let mut bad = Vec::new();
    for i in 0..10 {
        let work = workdir("sigterm-early");
        let addr_file = work.path().join("addr");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(work.path().join("data"))
            .arg("--addr-file")
            .arg(&addr_file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn berth");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !addr_file.exists() {
            assert!(Instant::now() < deadline, "no address file");
            std::hint::spin_loop();
        }
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            bad.push(format!("run {i}: {status} (signal {:?})", status.signal()));
        }
    }
    assert!(
        bad.is_empty(),
        "SIGTERM sent as soon as the address file appeared did not stop berth gracefully:\n{}",
        bad.join("\n")
    );
}

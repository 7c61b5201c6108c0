//! Accepting connections (HTTP/1.1 and HTTP/2, plain or TLS) so that a flood of silent,
//! slow or idle ones cannot starve real clients or the process's file descriptors:
//!
//! * a new connection must send its first byte, and finish the TLS handshake, within
//!   `handshake_timeout`; request headers within `header_read_timeout` (hyper's, which
//!   on HTTP/1 also runs while a keep-alive connection waits for its next request);
//! * a connection with no request in progress is closed after `idle_timeout` (before its
//!   first request: after `handshake_timeout + header_read_timeout`, which also bounds a
//!   connection stuck in protocol detection); HTTP/2 connections are pinged;
//! * at most `max_connections` are open: at the cap the longest-idle one is closed to make
//!   room, and only if every connection is busy is the newcomer refused (see [`slots`]);
//! * accept errors (out of descriptors, say) back off from 10 ms to 1 s and are logged at
//!   most once per 10 s with a count of the others;
//! * an early answer to a request whose body is unread drains the body first
//!   ([`drain`]), and sockets with bytes still coming are closed gently ([`linger`]).

mod drain;
mod linger;
mod proxy_protocol;
mod slots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use linger::Lingering;
use slots::{Busy, Slot, Slots};

/// The connection settings of `[server]`, resolved.
#[derive(Debug, Clone)]
pub struct Options {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub http2_keepalive: Duration,
    pub max_connections: usize,
    pub drain_body_limit: u64,
    /// With `[server] proxy_protocol`: the networks allowed to connect (each connection
    /// then starts with a PROXY header naming the client).
    pub proxy_from: Option<Vec<ipnet::IpNet>>,
}

impl Options {
    /// From the configuration. Raises the open-file limit to its hard limit first, since
    /// the default connection cap is derived from it.
    pub fn from_config(cfg: &berth_config::ServerConfig) -> Options {
        let files = raise_open_file_limit();
        // Every connection may hold a file open (a blob being read or written) besides
        // its socket, and the stores need some of their own.
        let default_cap = (files.saturating_sub(64) / 2).max(16) as usize;
        // Sockets alone must never take the descriptors the stores need.
        let most = files.saturating_sub(64).max(16) as usize;
        let max_connections = match cfg.max_connections.map(|n| n as usize) {
            Some(n) if n > most => {
                tracing::warn!(
                    configured = n,
                    open_file_limit = files,
                    "server.max_connections is above what the open-file limit allows; using {most}"
                );
                most
            }
            Some(n) => n,
            None => default_cap,
        };
        Options {
            handshake_timeout: Duration::from_secs(cfg.handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(cfg.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
            http2_keepalive: Duration::from_secs(cfg.http2_keepalive_secs),
            max_connections,
            drain_body_limit: cfg.drain_body_limit_bytes,
            proxy_from: cfg.proxy_protocol.then(|| cfg.proxy_protocol_from.clone()),
        }
    }
}

/// Raises the soft open-file limit to the hard one (as Go programs do at start) and
/// returns the soft limit in effect.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max {
            let raised = Rlimit {
                current: Some(max),
                maximum: Some(max),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                lim = raised;
            }
        }
    }
    // None is RLIM_INFINITY: like other huge values, a cap of a million connections is no cap.
    lim.current.unwrap_or(u64::MAX).min(2_000_000)
}

/// Accepts connections on `listener` and serves `app` on them until `shutdown`
/// resolves; then lets open connections finish their requests for up to `grace`.
/// `facts(peer, tls)` is the extension each request of a connection carries.
#[allow(clippy::too_many_arguments)]
pub async fn serve<F, E>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    facts: F,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) where
    F: Fn(SocketAddr, bool) -> E + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    let facts = Arc::new(facts);
    tracing::info!(
        max_connections = opts.max_connections,
        "accepting at most {} connections",
        opts.max_connections
    );
    let slots = Slots::new(opts.max_connections);
    let (closing_tx, closing) = watch::channel(false);
    let conn = Arc::new(ConnContext {
        builder: hyper_builder(&opts),
        tls,
        app,
        opts,
        closing,
    });
    let mut backoff = Backoff::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors and the like: free one if a connection is idle, and
                // retry after a pause rather than spin.
                slots.evict_longest_idle();
                backoff.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay()) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        backoff.succeeded();
        let Some(slot) = slots.admit() else {
            refuse(stream, conn.tls.is_none());
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn.clone().run(stream, peer, slot, facts.clone()));
    }

    tracing::info!(
        open = slots.open(),
        "shutting down: finishing in-flight requests"
    );
    drop(listener);
    let _ = closing_tx.send(true);
    let deadline = Instant::now() + grace;
    while slots.open() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                open = slots.open(),
                "grace period over; closing remaining connections"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!("all connections closed");
}

fn hyper_builder(opts: &Options) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(opts.http2_keepalive)
        .keep_alive_timeout(opts.http2_keepalive);
    builder
}

/// Errors about one connection that went away before it was accepted: retry at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Over the cap with every connection busy: tell a plain HTTP/1 client to come back
/// (without waiting for its request), or just close. Never blocks the accept loop.
fn refuse(stream: TcpStream, plain: bool) {
    if plain {
        let _ = stream.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    tracing::debug!("connection refused: at the connection cap");
}

/// Exponential backoff after accept errors, and their rate-limited log.
#[derive(Default)]
struct Backoff {
    delay: Option<Duration>,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, e: &std::io::Error) {
        self.delay = Some(match self.delay {
            None => Self::FIRST,
            Some(d) => (d * 2).min(Self::MAX),
        });
        if self.last_log.is_some_and(|t| t.elapsed() < Self::LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %e,
            suppressed = self.suppressed,
            "accept failed (retrying; {} more failures since the last report)",
            self.suppressed
        );
        self.last_log = Some(Instant::now());
        self.suppressed = 0;
    }

    fn delay(&self) -> Duration {
        self.delay.unwrap_or(Self::FIRST)
    }

    fn succeeded(&mut self) {
        self.delay = None;
    }
}

/// What every connection task shares.
struct ConnContext {
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    opts: Options,
    /// Becomes true when the server shuts down.
    closing: watch::Receiver<bool>,
}

/// Why a connection was closed before it got to HTTP.
enum Early {
    Silent,
    Evicted,
    ShuttingDown,
    /// `[server] proxy_protocol`: a peer not in `proxy_protocol_from`.
    UntrustedProxy,
    /// `[server] proxy_protocol`: no valid PROXY header.
    ProxyHeader(proxy_protocol::ProxyHeaderError),
}

impl ConnContext {
    async fn run<F, E>(
        self: Arc<Self>,
        mut stream: TcpStream,
        mut peer: SocketAddr,
        slot: Arc<Slot>,
        facts: Arc<F>,
    ) where
        F: Fn(SocketAddr, bool) -> E,
        E: Clone + Send + Sync + 'static,
    {
        let deadline = Instant::now() + self.opts.handshake_timeout;
        let mut closing = self.closing.clone();
        // The first byte (or the TLS handshake) before anything is allocated for HTTP.
        let before_http = async {
            let mut byte = [0u8; 1];
            match tokio::time::timeout_at(deadline, stream.peek(&mut byte)).await {
                Ok(Ok(n)) if n > 0 => Ok(()),
                _ => Err(Early::Silent),
            }
        };
        let early = tokio::select! {
            r = before_http => r,
            _ = slot.evicted() => Err(Early::Evicted),
            _ = closing.wait_for(|c| *c) => Err(Early::ShuttingDown),
        };
        if let Err(why) = early {
            return log_early(peer, why);
        }
        if let Some(from) = &self.opts.proxy_from {
            if !from.iter().any(|net| net.contains(&peer.ip())) {
                return log_early(peer, Early::UntrustedProxy);
            }
            let header =
                tokio::time::timeout_at(deadline, proxy_protocol::read_header(&mut stream));
            let header = tokio::select! {
                r = header => r,
                _ = slot.evicted() => return log_early(peer, Early::Evicted),
                _ = closing.wait_for(|c| *c) => return log_early(peer, Early::ShuttingDown),
            };
            match header {
                Ok(Ok(Some(client))) => peer = client,
                // The balancer speaking for itself (its health checks): its own address.
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return log_early(peer, Early::ProxyHeader(e)),
                Err(_) => return log_early(peer, Early::Silent),
            }
        }
        let ext = facts(peer, self.tls.is_some());
        let io = Lingering::new(stream, slot.clone());
        match &self.tls {
            None => self.serve_http(io, peer, slot, ext).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout_at(deadline, acceptor.accept(io));
                let tls = tokio::select! {
                    r = handshake => r,
                    _ = slot.evicted() => return log_early(peer, Early::Evicted),
                    _ = closing.wait_for(|c| *c) => return log_early(peer, Early::ShuttingDown),
                };
                match tls {
                    Ok(Ok(s)) => self.serve_http(s, peer, slot, ext).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_http<I, E>(&self, io: I, peer: SocketAddr, slot: Arc<Slot>, ext: E)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: Clone + Send + Sync + 'static,
    {
        let svc = ConnService {
            app: self.app.clone(),
            ext,
            slot: slot.clone(),
            drain_limit: self.opts.drain_body_limit,
        };
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc);
        let mut conn = std::pin::pin!(conn);
        let mut closing = self.closing.clone();
        let first = self.opts.handshake_timeout + self.opts.header_read_timeout;
        let mut why = None;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = slot.idle_expired(first, self.opts.idle_timeout), if why.is_none() => {
                    why = Some("idle");
                }
                _ = slot.evicted(), if why.is_none() => why = Some("evicted to make room"),
                _ = closing.wait_for(|c| *c), if why.is_none() => why = Some("shutting down"),
            }
            // Finishes a request in progress first; an idle connection closes at once.
            tracing::debug!(%peer, why, "closing connection");
            conn.as_mut().graceful_shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_exponentially_and_reset_on_success() {
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..9)
            .map(|_| {
                b.failed(&e);
                b.delay().as_millis()
            })
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // One line was logged; the other eight are counted for the next one.
        assert_eq!(b.suppressed, 8);
        b.succeeded();
        b.failed(&e);
        assert_eq!(b.delay(), Backoff::FIRST);
    }

    #[test]
    fn a_configured_cap_beyond_the_open_file_limit_is_lowered() {
        let mut cfg = berth_config::ServerConfig {
            max_connections: Some(u32::MAX),
            ..Default::default()
        };
        let files = raise_open_file_limit();
        let opts = Options::from_config(&cfg);
        assert!((opts.max_connections as u64) < files);
        cfg.max_connections = Some(10);
        assert_eq!(Options::from_config(&cfg).max_connections, 10);
        cfg.max_connections = None;
        assert!((Options::from_config(&cfg).max_connections as u64) <= files / 2);
    }
}

fn log_early(peer: SocketAddr, why: Early) {
    let why = match why {
        Early::Silent => "nothing received in time",
        Early::Evicted => "evicted to make room",
        Early::ShuttingDown => "shutting down",
        // Likely a misconfiguration (a balancer without send-proxy, or missing from
        // proxy_protocol_from): worth a warning, at a bounded rate.
        Early::UntrustedProxy => {
            if proxy_warning_due() {
                tracing::warn!(%peer, "connection refused: server.proxy_protocol is on and this peer is not in server.proxy_protocol_from (further refusals are logged at debug level for 10 s)");
            }
            "peer not in proxy_protocol_from"
        }
        Early::ProxyHeader(e) => {
            if proxy_warning_due() {
                tracing::warn!(%peer, error = %e, "connection refused: server.proxy_protocol is on (further refusals are logged at debug level for 10 s)");
            }
            "no valid PROXY header"
        }
    };
    tracing::debug!(%peer, why, "connection closed before its first request");
}

/// At most one PROXY protocol warning per 10 s, whoever connects.
fn proxy_warning_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    (last == 0 || now >= last + 10)
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The application as one connection serves it: each request carries the connection's
/// facts, counts as activity on the connection until its response body is sent, and
/// has its unread body drained before an early answer.
#[derive(Clone)]
struct ConnService<E> {
    app: axum::Router,
    ext: E,
    slot: Arc<Slot>,
    drain_limit: u64,
}

impl<E: Clone + Send + Sync + 'static> hyper::service::Service<http::Request<Incoming>>
    for ConnService<E>
{
    type Response = http::Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        let busy = self.slot.begin();
        req.extensions_mut().insert(self.ext.clone());
        let app = self.app.clone();
        let limit = self.drain_limit;
        Box::pin(async move {
            let resp = drain::call(app, req, limit).await;
            Ok(resp.map(|body| axum::body::Body::new(UntilSent { body, _busy: busy })))
        })
    }
}

/// A response body that keeps its connection marked busy until it is sent (or dropped).
struct UntilSent {
    body: axum::body::Body,
    _busy: Busy,
}

impl http_body::Body for UntilSent {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

//! Closing a socket gently. Closing one while the client still sends (a request body
//! the server answered early without reading) makes the kernel answer with a reset, and
//! the client loses the answer already sent to it. So when the server closes a
//! connection the client has not closed, it shuts down its sending side (the client
//! sees the end of the answer) and reads and drops what the client still sends, for a
//! short bounded time, before closing (as Go's server does, and nginx's
//! `lingering_close`). Past a byte bound it stops reading but still waits out that time
//! before closing, so the client has it to read the answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::slots::Slot;

/// How long to keep reading from a closing connection, and how much at most.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// A TCP stream that lingers when dropped (see the module documentation). It holds the
/// connection's [`Slot`] until the socket is closed, so lingering sockets count too.
pub struct Lingering {
    stream: Option<TcpStream>,
    slot: Option<Arc<Slot>>,
}

impl Lingering {
    pub fn new(stream: TcpStream, slot: Arc<Slot>) -> Lingering {
        Lingering {
            stream: Some(stream),
            slot: Some(slot),
        }
    }

    fn stream(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("stream present until drop")
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut stream), Some(slot)) = (self.stream.take(), self.slot.take()) else {
            return;
        };
        // The client closed its side: nothing more will come, a plain close is safe.
        if peer_has_closed(&stream) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let _slot = slot;
            let _ = stream.shutdown().await;
            let deadline = tokio::time::Instant::now() + LINGER_TIME;
            let mut buf = vec![0u8; 16 * 1024];
            let mut seen = 0;
            let _ = tokio::time::timeout_at(deadline, async {
                while seen < LINGER_BYTES {
                    match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen += n,
                    }
                }
                // Still sending past the byte bound. Closing now would reset the connection
                // a few milliseconds after the answer went out, and a client that reads while
                // it writes (Go's) may see its write fail before it has taken the answer in.
                // So stop reading (its writes stall instead of failing) but keep the socket
                // open until the deadline; the client takes the answer and closes first.
                tokio::time::sleep_until(deadline).await;
            })
            .await;
        });
    }
}

/// Whether the client has closed its sending side (or the connection failed), asked of
/// the kernel directly: the runtime's readiness may be stale once reading stopped.
fn peer_has_closed(stream: &TcpStream) -> bool {
    use rustix::net::{recv, RecvFlags};
    let mut byte = [0u8; 1];
    match recv(stream, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((n, _)) => n == 0,
        Err(e) => e != rustix::io::Errno::WOULDBLOCK && e != rustix::io::Errno::INTR,
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.stream()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()).poll_shutdown(cx)
    }
}

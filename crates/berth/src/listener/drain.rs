//! Early answers on HTTP/1.1. A client that sends a whole request body before reading
//! (Go's, among others) is sent a 401 to an unauthenticated upload, or a 404, 413 or
//! 429, before its body was read. Closing the connection then, with the body unread,
//! makes the kernel reset it and the client reads no answer at all (`EOF`). So when a
//! response is ready and the request body was left unread, up to a bound of it is read
//! and discarded first (as Go's server does, up to 256 KiB), and the connection stays
//! usable; a longer body gets the answer with `Connection: close` (and the socket is
//! closed gently, see [`super::linger`]). Nothing is buffered: bytes are dropped as they
//! arrive. HTTP/2 needs none of this: an unread stream is reset on its own.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower::ServiceExt;

/// How long discarding an unread body may take before the answer goes out anyway.
const DRAIN_TIME: Duration = Duration::from_secs(3);

/// Calls `app` with `req`; if the answer comes while the request body is unread, reads
/// and discards up to `limit` bytes of it before returning the answer.
pub async fn call(app: axum::Router, req: Request<Incoming>, limit: u64) -> Response {
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    // A client waiting for `100 Continue` has not sent its body: nothing to drain.
    if !http1 || expects_continue || http_body::Body::is_end_stream(req.body()) {
        return respond(app, req.map(Body::new)).await;
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let left_behind = Arc::new(Mutex::new(None));
    let req = req.map(|inner| {
        Body::new(Watched {
            inner: Some(inner),
            left_behind: left_behind.clone(),
        })
    });
    let mut resp = respond(app, req).await;
    let unread = left_behind.lock().expect("left-behind body lock").take();
    if let Some(body) = unread {
        let drained = length.is_none_or(|n| n <= limit)
            && tokio::time::timeout(DRAIN_TIME, discard(body, limit))
                .await
                .unwrap_or(false);
        if !drained {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    resp
}

async fn respond(app: axum::Router, req: Request<Body>) -> Response {
    match app.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Reads and drops `body` to its end; false if it is longer than `limit` or fails.
async fn discard(mut body: Incoming, limit: u64) -> bool {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > limit {
                return false;
            }
        }
    }
    true
}

/// The request body as the application sees it. If the application drops it before
/// its end, the rest is handed back through `left_behind` instead of being dropped.
struct Watched {
    inner: Option<Incoming>,
    left_behind: Arc<Mutex<Option<Incoming>>>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(inner).poll_frame(cx));
        if frame.is_none() {
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            if !inner.is_end_stream() {
                *self.left_behind.lock().expect("left-behind body lock") = Some(inner);
            }
        }
    }
}

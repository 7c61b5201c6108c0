//! Bodies that count the bytes passing through them as they stream: nothing is buffered,
//! and the count is one relaxed increment per frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

pub struct CountingBody<B> {
    inner: B,
    bytes: Counter,
}

impl<B> CountingBody<B> {
    pub fn new(inner: B, bytes: Counter) -> Self {
        CountingBody { inner, bytes }
    }
}

impl<B> Body for CountingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn counts_every_data_frame_and_keeps_the_size_hint() {
        let bytes = Counter::default();
        let inner = axum::body::Body::from("hello, world");
        let body = CountingBody::new(inner, bytes.clone());
        assert_eq!(body.size_hint().exact(), Some(12));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello, world");
        assert_eq!(bytes.get(), 12);
    }
}

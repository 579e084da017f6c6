//! Bodies crossing the broker: size limits on the way in, a deadline and a guard on
//! the way out.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::broker::BoxError;

/// The body type of everything the broker sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body received from a peer, as the broker forwards it.
pub fn incoming(body: Incoming) -> ProxyBody {
    body.map_err(|error| -> BoxError { Box::new(error) })
        .boxed()
}

/// A response the broker made itself (a denial), as the listeners send it.
pub fn to_proxy_response(response: http::Response<Bytes>) -> http::Response<ProxyBody> {
    response.map(full)
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Why a request body cannot be forwarded.
#[derive(Debug)]
pub enum BodyRefusal {
    TooLarge,
    Unreadable(BoxError),
}

/// The declared `Content-Length`, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A request body of at most `limit` bytes. A declared length is checked before
/// anything is read and the body then streams through; a body of unknown length is
/// read whole (up to `limit`) so that too large a one is refused before forwarding.
pub async fn limit_request_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: u64,
) -> Result<ProxyBody, BodyRefusal> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match declared_length(headers) {
        Some(length) if length > limit => Err(BodyRefusal::TooLarge),
        Some(0) => Ok(empty()),
        Some(_) => Ok(Limited::new(body, limit_usize).boxed()),
        None if body.is_end_stream() => Ok(empty()),
        None => match Limited::new(body, limit_usize).collect().await {
            Ok(collected) => Ok(full(collected.to_bytes())),
            Err(error) if error.is::<LengthLimitError>() => Err(BodyRefusal::TooLarge),
            Err(error) => Err(BodyRefusal::Unreadable(error)),
        },
    }
}

/// A response body that fails once `deadline` passes and holds `guard` until it
/// ends or is dropped.
pub struct GuardedBody<G> {
    inner: ProxyBody,
    deadline: Pin<Box<Sleep>>,
    _guard: G,
}

impl<G> GuardedBody<G> {
    pub fn new(inner: ProxyBody, deadline: Instant, guard: G) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            _guard: guard,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the response did not finish before the deadline")]
pub struct DeadlinePassed;

impl<G: Unpin> Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(DeadlinePassed)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What happens, once, when a [`DeadlineBody`] is cut off.
pub trait OnCut {
    fn cut(self);
}

pin_project_lite::pin_project! {
    /// A response body that must end by `deadline`. Past it, the next frame is an
    /// error instead of data (so the caller's connection closes before the body's
    /// end) and `on_cut` runs. The timer is only polled while no data is ready, so a
    /// body that is there at once costs one clock reading per frame and no timer.
    pub struct DeadlineBody<C> {
        inner: Incoming,
        #[pin]
        sleep: Sleep,
        deadline: Instant,
        on_cut: Option<C>,
    }
}

impl<C: OnCut> DeadlineBody<C> {
    pub fn new(inner: Incoming, deadline: Instant, on_cut: C) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep_until(deadline),
            deadline,
            on_cut: Some(on_cut),
        }
    }
}

impl<C: OnCut> Body for DeadlineBody<C> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match Pin::new(this.inner).poll_frame(cx) {
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(Some(Ok(frame))) if Instant::now() < *this.deadline => {
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Pending => {
                if this.sleep.poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        if let Some(on_cut) = this.on_cut.take() {
            on_cut.cut();
        }
        Poll::Ready(Some(Err(Box::new(DeadlinePassed))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

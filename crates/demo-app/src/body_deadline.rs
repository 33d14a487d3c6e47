//! A deadline for a request's whole body. A per-piece timeout (tower-http's
//! `RequestBodyTimeout`) lets a client that sends one byte a second hold a
//! connection for days; podinfo's server (Go's `ReadTimeout`) bounds the
//! whole request instead, and so does this.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Duration, Instant, Sleep};

/// The body failed to arrive in time; axum answers its extractor's 400.
#[derive(Debug)]
pub struct BodyDeadlineExceeded(Duration);

impl std::fmt::Display for BodyDeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {:?} (--http-body-timeout)", self.0)
    }
}

impl std::error::Error for BodyDeadlineExceeded {}

/// `inner`, failing once `limit` has passed since the request's headers.
/// The timer is armed only when the body makes the handler wait: a request
/// without a body, or one whose body is already in, sets none.
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    /// When the body must be in; None for a request without one.
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B: Body> DeadlineBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        let deadline = (!inner.is_end_stream()).then(|| Instant::now() + limit);
        Self { inner, limit, deadline, timer: None }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // A frame that is ready wins over a deadline that just passed.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let Some(deadline) = self.deadline else {
            return Poll::Pending;
        };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded(self.limit)))));
        }
        Poll::Pending
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
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_trickling_fails_at_the_deadline() {
        // One byte a second, forever: each piece well inside any per-piece timeout.
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"a"))), ()))
        });
        let started = Instant::now();
        let result = DeadlineBody::new(StreamBody::new(Box::pin(trickle)), Duration::from_secs(30)).collect().await;
        let error = result.expect_err("a body that never ends fails");
        assert!(error.to_string().contains("within 30s"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_body_in_time_is_passed_through() {
        let body = DeadlineBody::new(http_body_util::Full::new(Bytes::from_static(b"order")), Duration::from_secs(1));
        assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from_static(b"order"));
    }
}

//! What a connection is doing, watched from outside its requests, for the
//! two ways a client can hold one that hyper's own timers miss:
//!
//! - **idle**: no request in flight for the header timeout, which covers
//!   request headers that never end (slowloris). It is the server's only
//!   header timeout: hyper's started only once it knew the protocol (one
//!   byte, `P`, the start of the HTTP/2 preface, a TLS handshake followed by
//!   silence, or an HTTP/2 connection that answers pings and sends nothing
//!   else held a connection slot for ever: 1,000 such sockets starved the
//!   port), and it armed a timer for every request;
//! - **stalled**: a response the client stops taking. A socket write that
//!   blocks is cut by `write_deadline.rs`, but on HTTP/2 a stream whose
//!   flow-control window stays shut blocks no write: hyper just stops
//!   pulling the body, and what the response holds (an echoed 10 MiB, its
//!   memory reservation) stayed for ever.
//!
//! Both are checked on a clock rather than per request: a request pays for
//! a few atomic counters, and the watch closes the connection.
//!
//! Responses also leave here in pieces of at most `PIECE` bytes, copied
//! out of larger buffers: hyper pulls a piece only when its write buffer
//! has room, so a large answer stays in its body (and in its memory
//! reservation) until it is on its way, instead of being queued whole in
//! hyper while its reservation is given back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// The largest piece of a response handed to hyper at once.
const PIECE: usize = 64 * 1024;

/// One connection's counters.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// The watch's clock: it advances once per write timeout.
    tick: AtomicU64,
    /// Responses waiting for hyper to take their next piece, by the parity
    /// of the tick at which they started waiting.
    waiting: [AtomicUsize; 2],
}

/// Why a connection was closed by its watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Idle,
    Stalled,
}

impl Activity {
    /// Resolves when the connection has had no request in flight for at
    /// least `idle` (at most twice that), or a response has waited for its
    /// client for at least `stall` (at most twice that).
    pub async fn watch(&self, idle: Duration, stall: Duration) -> Verdict {
        let start = tokio::time::Instant::now();
        let mut idle_clock = tokio::time::interval_at(start + idle, idle);
        let mut stall_clock = tokio::time::interval_at(start + stall, stall);
        // `started` when last seen: unchanged and nothing in flight means
        // idle for a whole period. It starts at 0: the first request must
        // come within one period of the connection.
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = idle_clock.tick() => {
                    let started = self.started.load(Relaxed);
                    if started == seen && self.finished.load(Relaxed) == started {
                        return Verdict::Idle;
                    }
                    seen = started;
                }
                _ = stall_clock.tick() => {
                    // Whoever started waiting during the previous period has
                    // waited at least one whole period.
                    let tick = self.tick.load(Relaxed);
                    if self.waiting[((tick + 1) % 2) as usize].load(Relaxed) > 0 {
                        return Verdict::Stalled;
                    }
                    self.tick.store(tick + 1, Relaxed);
                }
            }
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }
}

/// One request from its headers until its response is sent (or dropped).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Relaxed);
    }
}

/// The service of one connection: counts its requests and watches their
/// responses.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        TrackedFuture { inner: self.inner.call(request), in_flight: Some(self.activity.begin()) }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take().expect("polled after completion");
        Poll::Ready(Ok(response.map(|body| Body::new(Watched::new(body, in_flight)))))
    }
}

/// A response body on its way: waiting for hyper from the moment the
/// handler answers until its last piece is taken.
struct Watched {
    inner: Body,
    /// The rest of a frame larger than `PIECE`.
    rest: Bytes,
    /// The parity bucket this body is counted in while hyper owes it a poll.
    waiting: Option<usize>,
    in_flight: InFlight,
}

impl Watched {
    fn new(inner: Body, in_flight: InFlight) -> Self {
        let mut body = Self { inner, rest: Bytes::new(), waiting: None, in_flight };
        body.wait();
        body
    }

    fn wait(&mut self) {
        let activity = &self.in_flight.0;
        let bucket = (activity.tick.load(Relaxed) % 2) as usize;
        activity.waiting[bucket].fetch_add(1, Relaxed);
        self.waiting = Some(bucket);
    }

    fn taken(&mut self) {
        if let Some(bucket) = self.waiting.take() {
            self.in_flight.0.waiting[bucket].fetch_sub(1, Relaxed);
        }
    }

    /// The next piece of `rest`, copied so that a large buffer is freed
    /// with its last piece rather than kept alive by the first.
    fn piece(&mut self) -> Bytes {
        if self.rest.len() <= PIECE {
            return std::mem::take(&mut self.rest);
        }
        Bytes::copy_from_slice(&self.rest.split_to(PIECE))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.taken();
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.taken();
        if !self.rest.is_empty() {
            let piece = self.piece();
            self.wait();
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        // Pending here is the handler's own pace (a stream), not the client's.
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let frame = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.len() > PIECE => {
                    self.rest = data;
                    Frame::data(self.piece())
                }
                Ok(data) => Frame::data(data),
                Err(frame) => frame,
            },
            other => return Poll::Ready(other),
        };
        self.wait();
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.len() as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::{Service as _, ServiceExt as _};

    use super::*;

    fn service(activity: &Arc<Activity>, answer: &'static [u8]) -> Tracked<axum::routing::Router> {
        let router = axum::Router::new().route("/", axum::routing::get(move || async move { answer }));
        Tracked::new(router, activity.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_idle_after_one_period() {
        let activity = Activity::default();
        let started = tokio::time::Instant::now();
        assert_eq!(activity.watch(Duration::from_secs(10), Duration::from_secs(30)).await, Verdict::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_takes_is_a_stall_and_a_taken_one_is_not() {
        let activity = Arc::new(Activity::default());
        let mut service = service(&activity, b"answer");
        let request = || axum::http::Request::get("/").body(Body::empty()).unwrap();
        // Answered and read: the connection is idle afterwards, never stalled.
        let response = tower::ServiceExt::<axum::extract::Request>::ready(&mut service)
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "answer");
        assert_eq!(activity.watch(Duration::from_secs(10), Duration::from_secs(5)).await, Verdict::Idle);
        // Answered and never read: a stall, found within two periods.
        let unread = tower::ServiceExt::<axum::extract::Request>::ready(&mut service)
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(activity.watch(Duration::from_secs(60), Duration::from_secs(5)).await, Verdict::Stalled);
        assert!(started.elapsed() <= Duration::from_secs(10), "{:?}", started.elapsed());
        drop(unread);
        assert_eq!(activity.waiting.iter().map(|w| w.load(Relaxed)).sum::<usize>(), 0);
        assert_eq!(activity.started.load(Relaxed), activity.finished.load(Relaxed));
    }

    #[tokio::test]
    async fn large_answers_leave_in_pieces_with_every_byte() {
        static LARGE: [u8; 200_000] = [7; 200_000];
        let activity = Arc::new(Activity::default());
        let request = axum::http::Request::get("/").body(Body::empty()).unwrap();
        let response = service(&activity, &LARGE).oneshot(request);
        let mut body = response.await.unwrap().into_body();
        let mut sizes = Vec::new();
        while let Some(frame) = body.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, [PIECE, PIECE, PIECE, 200_000 - 3 * PIECE]);
    }
}

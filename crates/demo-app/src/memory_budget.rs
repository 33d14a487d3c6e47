//! One budget for the memory clients can make the process hold: request
//! bodies being buffered (up to 10 MiB each) and WebSocket sessions (their
//! buffers and a message being assembled). Per-request limits alone do not
//! bound the sum: 30 clients posting 10 MiB to /echo and never reading the
//! answer held 452 MB, past any pod's memory limit. A request that would
//! overdraw the budget is answered 503 with Retry-After at once, before a
//! byte of its body is read; what it reserved is given back when its
//! response has been sent (or the connection is gone).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api_error::PodinfoError;
use crate::routes::BODY_LIMIT;
use crate::state::AppState;

/// Reservations are counted in KiB: a semaphore holds at most u32 permits.
const UNIT: usize = 1024;

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

/// Memory taken from the budget until dropped.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] OwnedSemaphorePermit);

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self { units: Arc::new(Semaphore::new(units)), bytes }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `bytes` from the budget, or None when that would overdraw it (never
    /// waits: a client told to retry costs nothing, one left waiting holds
    /// a connection).
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        self.units.clone().try_acquire_many_owned(units).ok().map(Reservation)
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        (self.bytes / UNIT).saturating_sub(self.units.available_permits()) * UNIT
    }
}

/// The default budget: half the container's memory limit (cgroup v2), so
/// buffers can never take a pod past it; 256 MiB outside a container.
pub fn default_bytes() -> usize {
    std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<usize>().ok())
        .map_or(256 * 1024 * 1024, |limit| limit / 2)
}

/// The 503 a client gets when the budget is spent.
pub fn exhausted(what: &str) -> Response {
    let message = format!("the server is holding its memory budget for {what} (--max-buffered-bytes): retry shortly");
    let mut response = PodinfoError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware: reserves what a request's body may take before the handler
/// reads it, and holds it until the response body is done.
pub async fn reserve_for_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let hint = http_body::Body::size_hint(request.body());
    // A declared length above the limit is refused by the handler's 413
    // unread; one without a length (chunked, HTTP/2) may take up to it.
    let declared = hint.exact().map(|exact| usize::try_from(exact).unwrap_or(usize::MAX));
    let bytes = match declared {
        Some(0) => return next.run(request).await,
        Some(exact) if exact > BODY_LIMIT => return next.run(request).await,
        Some(exact) => exact,
        None => BODY_LIMIT,
    };
    let Some(reservation) = state.memory.try_reserve(bytes) else {
        tracing::warn!(
            bytes,
            budget = state.memory.bytes(),
            "answering 503: the memory budget for request bodies is spent"
        );
        return exhausted("request bodies");
    };
    next.run(request).await.map(|body| Body::new(Held { inner: body, _reservation: reservation }))
}

/// A response body that keeps its request's reservation until it is sent
/// or dropped (the echo answers with the very bytes it reserved for).
struct Held {
    inner: Body,
    _reservation: Reservation,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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
    use super::MemoryBudget;

    #[test]
    fn reservations_are_refused_past_the_budget_and_given_back_when_dropped() {
        let budget = MemoryBudget::new(10 * 1024 * 1024);
        let first = budget.try_reserve(6 * 1024 * 1024).expect("within the budget");
        assert_eq!(budget.in_use(), 6 * 1024 * 1024);
        assert!(budget.try_reserve(5 * 1024 * 1024).is_none(), "11 MiB of a 10 MiB budget");
        let second = budget.try_reserve(4 * 1024 * 1024).expect("exactly the rest");
        drop((first, second));
        assert_eq!(budget.in_use(), 0);
        assert!(budget.try_reserve(10 * 1024 * 1024).is_some());
    }

    #[test]
    fn a_byte_counts_as_a_whole_unit() {
        let budget = MemoryBudget::new(2048);
        let _a = budget.try_reserve(1).unwrap();
        let _b = budget.try_reserve(1).unwrap();
        assert!(budget.try_reserve(1).is_none());
    }
}

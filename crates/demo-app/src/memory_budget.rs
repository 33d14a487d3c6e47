//! One budget for the memory clients can make the process hold: request
//! bodies being buffered (up to 10 MiB each) and WebSocket sessions (their
//! buffers and a message being assembled). Per-request limits alone do not
//! bound the sum: 30 clients posting 10 MiB to /echo and never reading the
//! answer held 452 MB, past any pod's memory limit. A request that would
//! overdraw the budget is answered 503 with Retry-After (routes/body_budget.rs:
//! at once when its declared length cannot fit, else when the bytes it sent
//! no longer do); what it reserved is given back when its response has been
//! sent (or the connection is gone).

use std::sync::Arc;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api_error::PodinfoError;

/// Reservations are counted in KiB: a semaphore holds at most u32 permits.
const UNIT: usize = 1024;

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

/// Memory taken from the budget until dropped.
#[derive(Debug)]
pub struct Reservation(OwnedSemaphorePermit);

impl Reservation {
    /// One reservation holding both.
    pub fn merge(&mut self, other: Reservation) {
        self.0.merge(other.0);
    }
}

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

    /// Bytes that can be reserved right now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        (self.bytes / UNIT).saturating_sub(self.units.available_permits()) * UNIT
    }
}

/// The default budget: 40 % of the container's memory limit (cgroup v2),
/// so buffers can never take a pod past it: the rest is the process's own
/// (about 30 MiB) and the allocator's slack around what clients send (at
/// half, 30 unread 10 MiB echoes peaked at 121 of 128 MiB); 256 MiB outside
/// a container.
pub fn default_bytes() -> usize {
    std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<usize>().ok())
        .map_or(256 * 1024 * 1024, |limit| limit / 5 * 2)
}

/// The 503 a client gets when the budget is spent.
pub fn exhausted(what: &str) -> Response {
    let message = format!("the server is holding its memory budget for {what} (--max-buffered-bytes): retry shortly");
    let mut response = PodinfoError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `exhausted` for a gRPC call: RESOURCE_EXHAUSTED, which clients may retry.
pub fn exhausted_grpc() -> Response {
    let status = tonic::Status::resource_exhausted(
        "the server is holding its memory budget for request messages (--max-buffered-bytes): retry shortly",
    );
    status.into_http::<axum::body::Body>()
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

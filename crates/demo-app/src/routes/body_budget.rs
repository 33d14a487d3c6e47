//! Counts, against the memory budget, the request body bytes a handler has
//! actually read (see memory_budget.rs). Reserving a declared length up
//! front let a client lock the budget with a `Content-Length` it never
//! sent, or with a body the handler never reads (`POST /delay/600`); here a
//! body that is not read costs nothing.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use futures::future::{BoxFuture, Either, FutureExt as _};
use http_body::{Frame, SizeHint};

use super::BODY_LIMIT;
use crate::memory_budget::{self, MemoryBudget, Reservation};

/// Reservations grow in steps this size, so that a body sent in tiny
/// frames costs no more than its bytes (a unit is a KiB).
const STEP: usize = 64 * 1024;

/// A tower layer rather than `from_fn`: most requests have no body and must
/// pay nothing for this check (`from_fn` boxes every request's future and
/// the rest of the stack: ~4k instructions a request, measured by callgrind).
#[derive(Clone)]
pub struct BodyBudgetLayer {
    memory: MemoryBudget,
    refusal: fn() -> Response,
}

impl BodyBudgetLayer {
    /// Refuses with a JSON 503 and Retry-After.
    pub fn http(memory: MemoryBudget) -> Self {
        Self { memory, refusal: || memory_budget::exhausted("request bodies") }
    }

    /// Refuses with the gRPC status RESOURCE_EXHAUSTED (a 503 is no answer
    /// a gRPC client can read).
    pub fn grpc(memory: MemoryBudget) -> Self {
        Self { memory, refusal: memory_budget::exhausted_grpc }
    }
}

impl<S> tower::Layer<S> for BodyBudgetLayer {
    type Service = BodyBudget<S>;

    fn layer(&self, inner: S) -> BodyBudget<S> {
        BodyBudget { inner, memory: self.memory.clone(), refusal: self.refusal }
    }
}

#[derive(Clone)]
pub struct BodyBudget<S> {
    inner: S,
    memory: MemoryBudget,
    refusal: fn() -> Response,
}

impl<S> tower::Service<Request> for BodyBudget<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let hint = http_body::Body::size_hint(request.body());
        match hint.exact().map(|exact| usize::try_from(exact).unwrap_or(usize::MAX)) {
            // No body, or one the handler refuses unread (413).
            Some(0) => return Either::Left(self.inner.call(request)),
            Some(exact) if exact > BODY_LIMIT => return Either::Left(self.inner.call(request)),
            // A declared length that cannot fit now is told so before the
            // client sends it.
            Some(exact) if 2 * exact > self.memory.available() => {
                return Either::Right(std::future::ready(Ok(refused(&self.memory, exact, self.refusal))).boxed());
            }
            _ => {}
        }
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let memory = self.memory.clone();
        let request = request.map(|body| Body::new(Metered { inner: body, memory, ledger: ledger.clone() }));
        let answer = self.inner.call(request);
        let (memory, refusal) = (self.memory.clone(), self.refusal);
        Either::Right(
            async move {
                let response = answer.await?;
                let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(PoisonError::into_inner));
                if ledger.refused {
                    return Ok(refused(&memory, ledger.received, refusal));
                }
                // The answer may be the body itself (the echo): it keeps the
                // reservation until it is sent.
                Ok(match ledger.reservation {
                    Some(reservation) => hold(response, reservation),
                    None => response,
                })
            }
            .boxed(),
        )
    }
}

fn refused(memory: &MemoryBudget, bytes: usize, refusal: fn() -> Response) -> Response {
    tracing::warn!(bytes, budget = memory.bytes(), "refusing a request: the memory budget for request bodies is spent");
    refusal()
}

/// What a request's body has taken from the budget, shared by the body
/// (which grows it) and the layer (which hands it to the response).
#[derive(Default)]
struct Ledger {
    received: usize,
    reserved: usize,
    reservation: Option<Reservation>,
    refused: bool,
}

impl Ledger {
    /// Counts `bytes` more, twice: axum receives a body in pieces and joins
    /// them into one buffer, and for a moment both are held.
    fn take(&mut self, memory: &MemoryBudget, bytes: usize) -> bool {
        self.received += bytes;
        let needed = 2 * self.received;
        if needed <= self.reserved {
            return true;
        }
        let more = (needed - self.reserved).next_multiple_of(STEP);
        let Some(reservation) = memory.try_reserve(more) else {
            self.refused = true;
            return false;
        };
        self.reserved += more;
        match &mut self.reservation {
            Some(held) => held.merge(reservation),
            None => self.reservation = Some(reservation),
        }
        true
    }
}

/// The budget is spent: the handler's extractor fails, and the layer turns
/// its answer into the 503.
#[derive(Debug)]
struct BudgetSpent;

impl std::fmt::Display for BudgetSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the memory budget for request bodies is spent (--max-buffered-bytes)")
    }
}

impl std::error::Error for BudgetSpent {}

/// A request body that reserves its bytes as they arrive.
struct Metered {
    inner: Body,
    memory: MemoryBudget,
    ledger: Arc<Mutex<Ledger>>,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let bytes = data.map_or(0, Bytes::len);
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            if bytes > 0 && !ledger.take(&self.memory, bytes) {
                return Poll::Ready(Some(Err(axum::Error::new(BudgetSpent))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `response` with `reservation` kept until its body is sent or dropped.
pub fn hold(response: Response, reservation: Reservation) -> Response {
    response.map(|body| Body::new(Held { inner: body, _reservation: reservation }))
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
    use super::{Ledger, STEP};
    use crate::memory_budget::MemoryBudget;

    #[test]
    fn bytes_are_reserved_as_they_arrive_in_steps() {
        let memory = MemoryBudget::new(4 * STEP);
        let mut ledger = Ledger::default();
        // A thousand one-byte frames cost one step, not a thousand units.
        for _ in 0..1000 {
            assert!(ledger.take(&memory, 1));
        }
        assert_eq!(memory.in_use(), STEP);
        assert!(ledger.take(&memory, STEP), "2 × (1000 + 64 Ki) fits in 3 steps");
        assert_eq!(memory.in_use(), 3 * STEP);
        assert!(!ledger.take(&memory, STEP), "2 × 129 KiB does not fit in 4 steps");
        assert!(ledger.refused);
        drop(ledger);
        assert_eq!(memory.in_use(), 0);
    }
}

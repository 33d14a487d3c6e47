//! Reserves, from the memory budget, what a request's body may take before
//! its handler reads it (see memory_budget.rs).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::BODY_LIMIT;
use crate::memory_budget::{self, Reservation};
use crate::state::AppState;

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
    // Twice the body: axum receives it in pieces and joins them into one
    // buffer, and for a moment both are held.
    let Some(reservation) = state.memory.try_reserve(2 * bytes) else {
        tracing::warn!(
            bytes,
            budget = state.memory.bytes(),
            "answering 503: the memory budget for request bodies is spent"
        );
        return memory_budget::exhausted("request bodies");
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

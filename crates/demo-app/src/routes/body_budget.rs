//! Reserves, from the memory budget, what a request's body may take before
//! its handler reads it (see memory_budget.rs).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use futures::future::{BoxFuture, Either, FutureExt as _};
use http_body::{Frame, SizeHint};

use super::BODY_LIMIT;
use crate::memory_budget::{self, MemoryBudget, Reservation};

/// A tower layer rather than `from_fn`: most requests have no body and must
/// pay nothing for this check (`from_fn` boxes every request's future and
/// the rest of the stack: ~4k instructions a request, measured by callgrind).
#[derive(Clone)]
pub struct BodyBudgetLayer(pub MemoryBudget);

impl<S> tower::Layer<S> for BodyBudgetLayer {
    type Service = BodyBudget<S>;

    fn layer(&self, inner: S) -> BodyBudget<S> {
        BodyBudget { inner, memory: self.0.clone() }
    }
}

/// Reserves what a request's body may take before the handler reads it, and
/// holds it until the response body is done.
#[derive(Clone)]
pub struct BodyBudget<S> {
    inner: S,
    memory: MemoryBudget,
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
        // A declared length above the limit is refused by the handler's 413
        // unread; one without a length (chunked, HTTP/2) may take up to it.
        let declared = hint.exact().map(|exact| usize::try_from(exact).unwrap_or(usize::MAX));
        let bytes = match declared {
            Some(0) => return Either::Left(self.inner.call(request)),
            Some(exact) if exact > BODY_LIMIT => return Either::Left(self.inner.call(request)),
            Some(exact) => exact,
            None => BODY_LIMIT,
        };
        // Twice the body: axum receives it in pieces and joins them into one
        // buffer, and for a moment both are held.
        let Some(reservation) = self.memory.try_reserve(2 * bytes) else {
            tracing::warn!(
                bytes,
                budget = self.memory.bytes(),
                "answering 503: the memory budget for request bodies is spent"
            );
            return Either::Right(std::future::ready(Ok(memory_budget::exhausted("request bodies"))).boxed());
        };
        let answer = self.inner.call(request);
        Either::Right(
            async move {
                let response = answer.await?;
                Ok(response.map(|body| Body::new(Held { inner: body, _reservation: reservation })))
            }
            .boxed(),
        )
    }
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

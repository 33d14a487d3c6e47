//! `GET /api/info` and `GET /healthz`, the requests load balancers, probes
//! and benchmarks send most, answered before axum's router, through the
//! same layers as there. On the router's way a request also pays for
//! matching, the matched template and path parameters put into its
//! extensions (a map allocated a request), two boxed routes and their
//! futures: about 4k instructions of `GET /api/info`'s 18k (callgrind,
//! docs/benchmarks.md).
//!
//! Only these two paths, with GET, take this way. Everything else goes to
//! the router, HEAD and the other methods on these paths included (axum
//! answers those: HEAD without a body, 405 with `Allow`). One difference:
//! a body sent with these GETs is never read, so it is not weighed against
//! the memory budget (the router's `BodyBudgetLayer` refuses a declared
//! length that cannot fit, even for a handler that would not read it).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use futures::future::Either;
use tower::{Layer as _, Service};

use super::observe::{Observe, ObserveLayer};
use crate::faults::{Faults, FaultsLayer};
use crate::state::AppState;

/// The HTTP port's service: the exact routes, then the router.
#[derive(Clone)]
pub struct App {
    exact: Arc<Exact>,
    router: Router,
}

/// One stack a route, built once: a request clones the one it takes and
/// calls it at once, so every service in it must be always ready (as the
/// layers here and `Answer` are: they hold no capacity of their own).
struct Exact {
    /// An app route: observed, and subject to fault injection.
    info: Observe<Faults<Answer>>,
    /// An operational route: observed, never faulted.
    healthz: Observe<Answer>,
}

type InfoFuture = <Observe<Faults<Answer>> as Service<Request>>::Future;
type HealthzFuture = <Observe<Answer> as Service<Request>>::Future;

impl App {
    /// `router` must serve the same handlers on these paths (routes/mod.rs),
    /// for the methods taken there.
    pub fn new(state: &AppState, router: Router) -> Self {
        let observed = |template| ObserveLayer::of_route(state.metrics.clone(), template);
        let exact = Exact {
            info: observed("/api/info")
                .layer(FaultsLayer::new(state.clone()).layer(Answer::new(state, super::info::handler))),
            healthz: observed("/healthz").layer(Answer::new(state, super::health::healthz)),
        };
        Self { exact: Arc::new(exact), router }
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Either<InfoFuture, HealthzFuture>, RouteFuture<Infallible>>;

    /// The router's readiness (always, in axum 0.8); the exact routes' stacks
    /// are always ready (`Exact`).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::GET {
            match request.uri().path() {
                "/api/info" => return Either::Left(Either::Left(self.exact.info.clone().call(request))),
                "/healthz" => return Either::Left(Either::Right(self.exact.healthz.clone().call(request))),
                _ => {}
            }
        }
        Either::Right(self.router.call(request))
    }
}

/// A synchronous handler of the state alone, as a service. The request,
/// body included, is not read.
#[derive(Clone)]
pub struct Answer {
    state: AppState,
    handler: fn(&AppState) -> Response,
}

impl Answer {
    fn new(state: &AppState, handler: fn(&AppState) -> Response) -> Self {
        Self { state: state.clone(), handler }
    }
}

impl Service<Request> for Answer {
    type Response = Response;
    type Error = Infallible;
    type Future = Answering;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request) -> Answering {
        Answering(Some(self.clone()))
    }
}

/// The handler runs when its future is first polled, not when called: the
/// request's span is current then (observe.rs), for the lines it logs.
pub struct Answering(Option<Answer>);

impl Future for Answering {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let Answer { state, handler } = self.0.take().expect("an answer is not polled again");
        Poll::Ready(Ok(handler(&state)))
    }
}

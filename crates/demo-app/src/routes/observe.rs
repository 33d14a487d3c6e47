//! What every routed request goes through on its way in and out, in one
//! tower layer: the server span, the request metrics, podinfo's JSON shape
//! for axum's plain-text errors, and `X-Content-Type-Options: nosniff`.
//!
//! One histogram a request: the Prometheus one, with podinfo's names, that
//! dashboards, alerts and canary analysis read. An OpenTelemetry
//! `http.server.request.duration` beside it cost 2.3k instructions a
//! request (its attributes hashed and compared at every record) for the
//! same figures; over OTLP, the Collector's span metrics connector derives
//! request rate, errors and duration from the server spans, with exemplars.
//!
//! One layer rather than four `from_fn` middlewares: each of those cloned
//! the routes behind it and boxed a future for every request; together with
//! the per-route boxes of four layers they cost about 15k instructions a
//! request (callgrind, docs/benchmarks.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::response::Response;
use futures::future::{BoxFuture, FutureExt as _};
use pin_project_lite::pin_project;

use crate::api_error;
use crate::metrics::{self, Metrics};
use crate::route_names::{self, RouteNames};
use crate::telemetry::http::ServerSpan;

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    route: Option<&'static RouteNames>,
}

impl ObserveLayer {
    /// For the router's routes: the route is the template axum matched.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics, route: None }
    }

    /// For one route known in advance (exact.rs): no lookup a request.
    pub fn of_route(metrics: Arc<Metrics>, template: &str) -> Self {
        Self { metrics, route: Some(route_names::of(template)) }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner, metrics: self.metrics.clone(), route: self.route }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    route: Option<&'static RouteNames>,
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // Bounded labels: the known methods or `_OTHER`, route templates or
        // "unmatched", never what the client wrote.
        let method = metrics::method_label(request.method());
        let route =
            self.route.or_else(|| request.extensions().get::<MatchedPath>().map(|p| route_names::of(p.as_str())));
        let span = ServerSpan::start(&request, method, route);
        // Not current during `call`: the layers and routes below only build
        // their futures there; the span is current whenever those are polled.
        let answer = self.inner.call(request);
        Observed {
            stage: Stage::Answering { answer },
            request: Some(Seen { started, method, route, span, metrics: self.metrics.clone() }),
        }
    }
}

/// What `call` saw of the request, for when the answer is known.
struct Seen {
    started: Instant,
    method: &'static str,
    route: Option<&'static RouteNames>,
    span: Option<ServerSpan>,
    metrics: Arc<Metrics>,
}

pin_project! {
    pub struct Observed<F> {
        #[pin]
        stage: Stage<F>,
        request: Option<Seen>,
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        Answering { #[pin] answer: F },
        // A plain-text error being rewritten as JSON (rare: it reads the body).
        Reshaping { answer: BoxFuture<'static, Response> },
    }
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            // The span is current while the handler runs, for its child
            // spans and log lines.
            let _current = this.request.as_ref().and_then(|r| r.span.as_ref()).map(|s| s.context.clone().attach());
            let mut stage = this.stage;
            let response = match stage.as_mut().project() {
                StageProjection::Answering { answer } => {
                    let Ok(response) = ready!(answer.poll(cx));
                    if api_error::is_plain_error(&response) {
                        stage.set(Stage::Reshaping { answer: api_error::as_json(response).boxed() });
                        continue;
                    }
                    response
                }
                StageProjection::Reshaping { answer } => ready!(answer.poll_unpin(cx)),
            };
            let seen = this.request.take().expect("an answered request is not polled again");
            return Poll::Ready(Ok(finish(seen, response)));
        }
    }
}

fn finish(seen: Seen, mut response: Response) -> Response {
    let Seen { started, method, route, span, metrics } = seen;
    let status = response.status();
    response.headers_mut().entry(X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    let lasted = started.elapsed();
    metrics::observe(&metrics, method, route.map_or(metrics::UNMATCHED, |r| r.label), status.as_u16(), lasted);
    let mut span = span;
    if status.is_server_error() {
        let name = route_names::span_name(method, route);
        let message = format!("{name} answered {status}");
        {
            let _current = span.as_ref().map(|s| s.context.clone().attach());
            tracing::error!(exception.message = %message, "exception");
        }
        if let Some(span) = &mut span {
            span.exception(message);
        }
    }
    if let Some(span) = span {
        span.end(status, lasted);
    }
    response
}

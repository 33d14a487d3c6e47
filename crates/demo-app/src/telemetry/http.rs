//! HTTP spans and metrics: one server span per request named `METHOD
//! /route`, W3C context extracted from the request (routes/observe.rs
//! starts and ends it; span_record.rs is what it records); a client span
//! for every outgoing call, its context injected into the call's headers.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};

use super::instruments::{ClientCall, INSTRUMENTS};
use super::recording::{self, ChildSpan, Recording};
use super::span_record::{self, Detail};
use super::trace_context;
use crate::metrics;
use crate::route_names::{self, RouteNames};

/// A request's server span. Not the SDK's: a `Finished` record filled in
/// as the request goes (span_record.rs). The spans the handler starts
/// (`recording::ChildSpan`: client calls, database operations) find it as
/// their parent in `context`, which is current while the handler runs, and
/// so do log lines (json_lines.rs) and OTLP log records. Dropped before `end` (the client
/// went away), it is recorded without a status code.
pub struct ServerSpan {
    /// None while the span is not recorded (not sampled, or export paused):
    /// the context alone propagates.
    recording: Option<Recording>,
    /// The caller's context (baggage included) with this span in it.
    pub context: opentelemetry::Context,
}

impl ServerSpan {
    /// Starts the span of `request` (named `{method} {route}`), child of the
    /// W3C context its headers carry; None when telemetry is off.
    pub fn start(request: &Request, method: &'static str, route: Option<&'static RouteNames>) -> Option<Self> {
        let recorder = recording::recorder()?;
        // Without trace headers, a root span: not `Context::current()`, which
        // the global propagator extracts onto, as whatever a worker thread
        // happens to hold is not the request's parent.
        let parent = trace_context::extract_from_headers(request.headers());
        let name = route_names::span_name(method, route);
        let (record, context) = recorder.start(&parent, name, SpanKind::Server, || Detail::Server {
            method,
            path: match (request.uri().path(), route) {
                (path, Some(route)) if path == route.template => Cow::Borrowed(route.template),
                (path, _) => Cow::Owned(path.to_string()),
            },
            route: route.map(|r| r.template),
            method_original: span_record::method_original(request.method(), method),
        });
        Some(Self { recording: record, context: parent.with_remote_span_context(context) })
    }

    /// Ends the span with the answer's status (a 5xx marks it as an error),
    /// `lasted` after it started: the request's duration as its metrics
    /// measured it, which spares a request a read of the wall clock.
    pub fn end(mut self, status: StatusCode, lasted: Duration) {
        if let Some(recording) = &mut self.recording {
            recording.span.status = status.as_u16();
            let lasted = u64::try_from(lasted.as_nanos()).unwrap_or(u64::MAX);
            let end = recording.span.start.saturating_add(lasted);
            recording.span.end = end;
            // Stamped by the wall clock after the duration was measured: an
            // event after its span's end would be drawn outside it.
            if let Some((at, _)) = &mut recording.span.exception {
                *at = (*at).min(end);
            }
        }
    }

    /// An exception event on the span (an answer the server is to blame for).
    pub fn exception(&mut self, message: String) {
        if let Some(recording) = &mut self.recording {
            recording.span.exception = Some((span_record::now(), message));
        }
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        if let Some(recording) = self.recording.take() {
            recording.finish();
        }
    }
}

/// Sends `request` inside a client span, with the W3C context (and baggage)
/// of that span injected into its headers.
pub async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut request = request.build()?;
    let method = metrics::method_label(request.method());
    // `POST`, or `HTTP` for a method outside the known set (the conventions).
    let name = route_names::span_name(method, None);
    let mut span =
        ChildSpan::start(name, || Detail::Client { method, url: Box::new(span_record::redacted(request.url())) });
    trace_context::inject_into_headers(&span.outgoing(), request.headers_mut());
    let host = span_record::server_address(request.url()).to_string();
    let started = Instant::now();
    let result = client.execute(request).await;
    let outcome = match &result {
        Ok(response) => {
            let status = response.status().as_u16();
            span.status(status);
            Ok(status)
        }
        Err(err) => {
            let error = transport_error(err);
            let message = redacted_message(err);
            tracing::warn!(error = message, "an outgoing call failed");
            span.fail(error, || message);
            Err(error)
        }
    };
    let call = ClientCall { method, host: &host, outcome };
    INSTRUMENTS.client_duration.record(started.elapsed().as_secs_f64(), &call);
    result
}

/// `error.type` of a call that got no usable answer: low-cardinality names,
/// `_OTHER` for the rest (the conventions' fallback).
fn transport_error(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connection"
    } else if err.is_redirect() {
        "redirect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else {
        "_OTHER"
    }
}

/// reqwest's message, which names the URL, without the URL's credentials.
fn redacted_message(err: &reqwest::Error) -> String {
    let message = err.to_string();
    match err.url() {
        Some(url) if !url.username().is_empty() || url.password().is_some() => {
            message.replace(url.as_str(), span_record::redacted(url).as_str())
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::{SpanId, Status, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SimpleSpanProcessor};

    use opentelemetry::KeyValue;

    use super::*;
    use crate::telemetry::dropped::PausingSampler;
    use crate::telemetry::pause::Pause;
    use crate::telemetry::sampler::Configured;
    use crate::telemetry::span_record::ToProcessor;

    /// How long the requests of these tests took.
    const LASTED: Duration = Duration::from_millis(2);

    fn request(traceparent: &str) -> Request {
        Request::builder()
            .uri("/api/info?verbose=1")
            .header("traceparent", traceparent)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    fn request_without_context() -> Request {
        Request::builder().uri("/api/info").body(axum::body::Body::empty()).unwrap()
    }

    /// A client call made while `server` is current, answered `status`:
    /// the context it hands downstream.
    fn call(server: &ServerSpan, status: u16) -> opentelemetry::trace::SpanContext {
        let _current = server.context.clone().attach();
        let url = Box::new("http://backend:8080/api/orders".parse().unwrap());
        let mut call = ChildSpan::start("POST", || Detail::Client { method: "POST", url });
        call.status(status);
        call.outgoing().span().span_context().clone()
    }

    /// One test: the sink and sampler are set once per process.
    #[test]
    fn spans_follow_the_caller_the_sampler_and_the_export_pause() {
        let exported = InMemorySpanExporter::default();
        let pause = Arc::new(Pause::new(Duration::from_secs(60)));
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        recording::trace_paused_with(
            Box::leak(Box::new(ToProcessor(SimpleSpanProcessor::new(exported.clone())))),
            PausingSampler { inner: Configured::Sdk(Box::new(sampler)), pause: pause.clone() },
        );
        let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        // Recorded: a child of the caller, in its trace, sampled downstream.
        let span = ServerSpan::start(&request(caller), "GET", None).expect("telemetry is on");
        let context = span.context.span().span_context().clone();
        assert!(context.is_sampled());
        span.end(StatusCode::OK, LASTED);
        let spans = exported.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_context, context, "the span carries the context handed downstream");
        assert_eq!(spans[0].parent_span_id, SpanId::from(0xb7ad6b7169203331));
        assert!(spans[0].parent_span_is_remote);
        assert_eq!(spans[0].span_kind, SpanKind::Server);
        assert!(spans[0].attributes.contains(&KeyValue::new("url.path", "/api/info")), "the path, no query");
        assert_eq!(
            spans[0].end_time.duration_since(spans[0].start_time).unwrap(),
            LASTED,
            "as the request's metrics measured it"
        );
        exported.reset();

        // A client call inside it: its child, and the context handed on is
        // the call's own span.
        let server = ServerSpan::start(&request(caller), "POST", None).unwrap();
        let handed_on = call(&server, 503);
        let server_context = server.context.span().span_context().clone();
        server.end(StatusCode::CREATED, LASTED);
        let spans = exported.get_finished_spans().unwrap();
        let client = &spans[0];
        assert_eq!((client.span_kind.clone(), client.name.as_ref()), (SpanKind::Client, "POST"));
        assert_eq!(client.span_context, handed_on, "the downstream service's parent is the client span");
        assert_eq!(client.parent_span_id, server_context.span_id());
        assert!(!client.parent_span_is_remote, "a parent in this process");
        assert_eq!(handed_on.trace_id(), server_context.trace_id());
        assert!(handed_on.is_sampled());
        assert!(client.attributes.contains(&KeyValue::new("server.port", 8080)));
        assert!(client.attributes.contains(&KeyValue::new("url.full", "http://backend:8080/api/orders")));
        assert!(client.attributes.contains(&KeyValue::new("error.type", "503")));
        assert_eq!(client.status, Status::error(""), "a 5xx received marks the client span as an error");
        assert_eq!(spans[1].status, Status::Unset, "the server answered 201");
        exported.reset();

        // A call given up before its outcome (a timeout around it): cancelled.
        let server = ServerSpan::start(&request(caller), "GET", None).unwrap();
        {
            let _current = server.context.clone().attach();
            drop(ChildSpan::start("SELECT", || Detail::Database {
                system: "sqlite",
                operation: "SELECT",
                collection: None,
                target: None,
            }));
        }
        server.end(StatusCode::SERVICE_UNAVAILABLE, LASTED);
        let spans = exported.get_finished_spans().unwrap();
        assert!(spans[0].attributes.contains(&KeyValue::new("error.type", "cancelled")), "{:?}", spans[0]);
        assert_eq!(spans[0].status, Status::error(""));
        exported.reset();

        // A path of a route with parameters is the path, not the template.
        let mut orders = request(caller);
        *orders.uri_mut() = "/api/orders/7".parse().unwrap();
        ServerSpan::start(&orders, "GET", Some(route_names::of("/api/orders/{id}")))
            .unwrap()
            .end(StatusCode::OK, LASTED);
        ServerSpan::start(&request(caller), "GET", Some(route_names::of("/api/info")))
            .unwrap()
            .end(StatusCode::OK, LASTED);
        let spans = exported.get_finished_spans().unwrap();
        assert!(spans[0].attributes.contains(&KeyValue::new("url.path", "/api/orders/7")));
        assert!(spans[0].attributes.contains(&KeyValue::new("http.route", "/api/orders/{id}")));
        assert!(spans[1].attributes.contains(&KeyValue::new("url.path", "/api/info")));
        exported.reset();

        // An exception told after the request's duration was measured (as
        // observe.rs does): the event is not after its span's end.
        let mut failed = ServerSpan::start(&request(caller), "GET", None).unwrap();
        std::thread::sleep(LASTED * 2);
        failed.exception("GET answered 500".into());
        failed.end(StatusCode::INTERNAL_SERVER_ERROR, LASTED);
        let spans = exported.get_finished_spans().unwrap();
        let event = spans[0].events.iter().next().expect("the exception event");
        assert!(event.timestamp <= spans[0].end_time, "{:?} after {:?}", event.timestamp, spans[0].end_time);
        exported.reset();

        // Without a caller: a root span in a trace of its own, ids fresh
        // for every request.
        let root = || ServerSpan::start(&request_without_context(), "GET", None).expect("telemetry is on");
        let (first, second) = (root(), root());
        let ids = |s: &ServerSpan| {
            let c = s.context.span().span_context().clone();
            (c.trace_id(), c.span_id())
        };
        assert!(first.context.span().span_context().is_valid());
        assert_ne!(ids(&first).0, ids(&second).0, "a trace of its own");
        assert_ne!(ids(&first).1, ids(&second).1);
        drop((first, second));
        exported.reset();

        // A caller that did not sample: the parent-based sampler records nothing.
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let span = ServerSpan::start(&request(unsampled), "GET", None).expect("telemetry is on");
        assert!(span.recording.is_none() && !span.context.span().span_context().is_sampled());
        span.end(StatusCode::OK, LASTED);

        // A request whose client went away: recorded, without a status code.
        drop(ServerSpan::start(&request(caller), "GET", None));
        let spans = exported.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1, "the unsampled one is not exported");
        assert!(!spans[0].attributes.iter().any(|kv| kv.key.as_str() == "http.response.status_code"));

        // While export is paused: no span, the caller's trace still propagates.
        pause.judge(false);
        let span = ServerSpan::start(&request(caller), "GET", None).expect("telemetry is on");
        assert!(span.recording.is_none(), "nothing recorded while paused");
        let context = span.context.span().span_context().clone();
        assert_eq!(context.trace_id(), TraceId::from(0x0af7651916cd43dd8448eb211c80319c), "the caller's trace");
        assert_ne!(context.span_id(), SpanId::from(0xb7ad6b7169203331), "a span id of its own");
        assert!(!context.is_sampled(), "marked not sampled downstream");
        let handed_on = call(&span, 200);
        assert_eq!(handed_on.trace_id(), context.trace_id(), "a call in the pause carries the trace on");
        assert!(!handed_on.is_sampled());
        span.end(StatusCode::OK, LASTED);
        assert_eq!(exported.get_finished_spans().unwrap().len(), 1, "neither span recorded");

        pause.judge(true);
        ServerSpan::start(&request(caller), "GET", None).expect("telemetry is on").end(StatusCode::OK, LASTED);
        assert_eq!(exported.get_finished_spans().unwrap().len(), 2, "recorded again once export works");
    }
}

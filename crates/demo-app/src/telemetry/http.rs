//! HTTP spans and metrics: one server span per request named `METHOD
//! /route`, W3C context extracted from the request (routes/observe.rs
//! starts and ends it; server_span.rs is what it records); client spans with
//! the context injected into every outgoing call.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::dropped::PausingSampler;
use super::instruments::INSTRUMENTS;
use super::server_span::{self, Finished, Sink};
use crate::route_names::{self, RouteNames};

pub(super) struct HeaderExtractor<'a>(pub(super) &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::from_bytes(key.as_bytes()), reqwest::header::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// The headers the configured propagators read (traceparent, tracestate,
/// baggage), from the propagators themselves.
fn context_headers() -> &'static [HeaderName] {
    static NAMES: OnceLock<Vec<HeaderName>> = OnceLock::new();
    NAMES.get_or_init(|| {
        global::get_text_map_propagator(|p| {
            p.fields().filter_map(|f| HeaderName::from_bytes(f.as_bytes()).ok()).collect()
        })
    })
}

/// Where server spans go and who decides which are recorded; unset,
/// requests make none (telemetry off).
#[derive(Debug)]
struct ServerSpans {
    /// For the life of the process: a reference, not an `Arc`, saves each
    /// request a forwarding call and a copy of its record.
    sink: &'static dyn Sink,
    sampler: PausingSampler,
}

static SERVER_SPANS: OnceLock<ServerSpans> = OnceLock::new();

/// Server spans from now on go to `sink`, recorded when `sampler` says so:
/// a test's SDK span processor (`server_span::ToProcessor`).
pub fn trace_with(sink: impl Sink + 'static, sampler: impl ShouldSample + 'static) {
    let pause = Arc::new(super::pause::Pause::new(super::pause::LENGTH));
    trace_paused_with(Box::leak(Box::new(sink)), PausingSampler { inner: Box::new(sampler), pause });
}

/// `trace_with`, with the sampler that pauses with the export (`telemetry::init`).
pub(super) fn trace_paused_with(sink: &'static dyn Sink, sampler: PausingSampler) {
    let _ = SERVER_SPANS.set(ServerSpans { sink, sampler });
}

thread_local! {
    /// Ids as the SDK's own generator makes them: a small fast generator
    /// per thread, seeded from the OS (`rand::rng()`, a ChaCha block
    /// cipher, cost about 30 instructions a request more).
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

fn random_id<T>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    IDS.with(|ids| ids.borrow_mut().random())
}

/// A request's server span. Not the SDK's: a `Finished` record filled in
/// as the request goes (server_span.rs). Spans the handler opens through
/// `tracing` (client calls, database operations) find it as their parent in
/// `context`, which is current while the handler runs, and so do log lines
/// (json_lines.rs) and OTLP log records. Dropped before `end` (the client
/// went away), it is recorded without a status code.
pub struct ServerSpan {
    /// None while the span is not recorded (not sampled, or export paused):
    /// the context alone propagates.
    recording: Option<(Finished, &'static dyn Sink)>,
    /// The caller's context (baggage included) with this span in it.
    pub context: opentelemetry::Context,
}

impl ServerSpan {
    /// Starts the span of `request` (named `{method} {route}`), child of the
    /// W3C context its headers carry; None when telemetry is off.
    pub fn start(request: &Request, method: &'static str, route: Option<&'static RouteNames>) -> Option<Self> {
        let spans = SERVER_SPANS.get()?;
        let headers = request.headers();
        // One pass over the request's few headers: three lookups by name
        // hashed each name, 0.4k instructions a request.
        let parent = if headers.keys().any(|name| context_headers().contains(name)) {
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
        } else {
            // No trace headers: a root span. Not `Context::current()`, which
            // extracting from no headers gives: whatever a worker thread
            // happens to hold is not the request's parent.
            opentelemetry::Context::new()
        };
        let name = route_names::span_name(method, route);
        let parent_span = parent.span();
        let known = parent_span.span_context();
        let trace_id = if known.is_valid() { known.trace_id() } else { TraceId::from(random_id::<u128>()) };
        // While export is paused the sampler is not even asked.
        let sampling = (!spans.sampler.drops_for_pause(&parent, trace_id, name))
            .then(|| spans.sampler.should_sample(Some(&parent), trace_id, name, &SpanKind::Server, &[], &[]));
        let recorded = sampling.as_ref().is_some_and(|s| s.decision == SamplingDecision::RecordAndSample);
        let span_id = SpanId::from(random_id::<u64>());
        // The SDK's rules: the parent's flags, sampled or not as decided; the
        // trace state as the sampler leaves it.
        let flags = known.trace_flags().with_sampled(recorded);
        let trace_state = sampling.as_ref().map_or_else(|| known.trace_state().clone(), |s| s.trace_state.clone());
        let context = SpanContext::new(trace_id, span_id, flags, false, trace_state.clone());
        let recording = recorded.then(|| {
            let span = Finished {
                trace_id,
                span_id,
                parent_span_id: if known.is_valid() { known.span_id() } else { SpanId::INVALID },
                parent_is_remote: known.is_valid() && known.is_remote(),
                flags,
                trace_state,
                name,
                start: server_span::now(),
                end: 0,
                method,
                path: match (request.uri().path(), route) {
                    (path, Some(route)) if path == route.template => Cow::Borrowed(route.template),
                    (path, _) => Cow::Owned(path.to_string()),
                },
                route: route.map(|r| r.template),
                status: 0,
                exception: None,
                sampler_attributes: sampling.map(|s| s.attributes).unwrap_or_default(),
            };
            (span, spans.sink)
        });
        Some(Self { recording, context: parent.with_remote_span_context(context) })
    }

    /// Ends the span with the answer's status; a 5xx marks it as an error.
    pub fn end(mut self, status: StatusCode) {
        if let Some((span, _)) = &mut self.recording {
            span.status = status.as_u16();
        }
    }

    /// An exception event on the span (an answer the server is to blame for).
    pub fn exception(&mut self, message: String) {
        if let Some((span, _)) = &mut self.recording {
            span.exception = Some((server_span::now(), message));
        }
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        if let Some((mut span, sink)) = self.recording.take() {
            span.end = server_span::now();
            sink.finish(span);
        }
    }
}

/// The context a client call hands downstream: its span's. While span
/// export is paused the tracing layer makes no span (telemetry/mod.rs) and
/// that context is empty: the current one (the server span's, marked not
/// sampled) goes instead, so the trace still reaches the next service.
fn outgoing_context(span: &tracing::Span) -> opentelemetry::Context {
    let context = span.context();
    if context.span().span_context().is_valid() { context } else { opentelemetry::Context::current() }
}

/// Sends `request` inside a client span, with the W3C context (and baggage)
/// of that span injected into its headers.
pub async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let request = request.build()?;
    let method = request.method().as_str().to_string();
    let url = request.url().clone();
    let span = tracing::info_span!(
        "http_client_request",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %url,
        server.address = url.host_str(),
        server.port = url.port_or_known_default(),
        http.response.status_code = Empty,
        error.r#type = Empty,
    );
    let mut request = request;
    let context = outgoing_context(&span);
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(request.headers_mut())));
    let started = Instant::now();
    // Not entered while the call runs (an enter and an exit through every
    // layer at each of its polls): nothing inside makes spans or events.
    let result = client.execute(request).await;
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("server.address", url.host_str().unwrap_or_default().to_string()),
    ];
    match &result {
        Ok(response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.to_string());
            }
        }
        Err(err) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", if err.is_timeout() { "timeout" } else { "connection" });
            span.in_scope(|| tracing::warn!(exception.message = %err, "exception"));
            attributes.push(KeyValue::new("error.type", "transport"));
        }
    }
    INSTRUMENTS.client_duration.record(started.elapsed().as_secs_f64(), &attributes);
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::TraceId;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SimpleSpanProcessor};

    use super::*;
    use crate::telemetry::pause::Pause;
    use crate::telemetry::server_span::ToProcessor;

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

    #[test]
    fn a_client_call_without_a_span_of_its_own_hands_on_the_current_context() {
        let server = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
            SpanId::from(0x1122334455667788),
            opentelemetry::trace::TraceFlags::default(),
            false,
            Default::default(),
        );
        let _current = opentelemetry::Context::new().with_remote_span_context(server.clone()).attach();
        let handed_on = outgoing_context(&tracing::Span::none());
        assert_eq!(handed_on.span().span_context(), &server, "the server span's context, not an empty one");
    }

    /// One test: the sink and sampler are set once per process.
    #[test]
    fn server_spans_follow_the_caller_the_sampler_and_the_export_pause() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let exported = InMemorySpanExporter::default();
        let pause = Arc::new(Pause::new(Duration::from_secs(60)));
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        trace_paused_with(
            Box::leak(Box::new(ToProcessor(SimpleSpanProcessor::new(exported.clone())))),
            PausingSampler { inner: Box::new(sampler), pause: pause.clone() },
        );
        let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        // Recorded: a child of the caller, in its trace, sampled downstream.
        let span = ServerSpan::start(&request(caller), "GET", None).expect("telemetry is on");
        let context = span.context.span().span_context().clone();
        assert!(context.is_sampled());
        span.end(StatusCode::OK);
        let spans = exported.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_context, context, "the span carries the context handed downstream");
        assert_eq!(spans[0].parent_span_id, SpanId::from(0xb7ad6b7169203331));
        assert!(spans[0].parent_span_is_remote);
        assert_eq!(spans[0].span_kind, SpanKind::Server);
        assert!(spans[0].attributes.contains(&KeyValue::new("url.path", "/api/info")), "the path, no query");
        assert!(spans[0].end_time >= spans[0].start_time);

        // A path of a route with parameters is the path, not the template.
        let mut orders = request(caller);
        *orders.uri_mut() = "/api/orders/7".parse().unwrap();
        ServerSpan::start(&orders, "GET", Some(route_names::of("/api/orders/{id}"))).unwrap().end(StatusCode::OK);
        ServerSpan::start(&request(caller), "GET", Some(route_names::of("/api/info"))).unwrap().end(StatusCode::OK);
        let spans = exported.get_finished_spans().unwrap();
        assert!(spans[1].attributes.contains(&KeyValue::new("url.path", "/api/orders/7")));
        assert!(spans[1].attributes.contains(&KeyValue::new("http.route", "/api/orders/{id}")));
        assert!(spans[2].attributes.contains(&KeyValue::new("url.path", "/api/info")));
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
        span.end(StatusCode::OK);

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
        span.end(StatusCode::OK);
        assert_eq!(exported.get_finished_spans().unwrap().len(), 1);

        pause.judge(true);
        ServerSpan::start(&request(caller), "GET", None).expect("telemetry is on").end(StatusCode::OK);
        assert_eq!(exported.get_finished_spans().unwrap().len(), 2, "recorded again once export works");
    }
}

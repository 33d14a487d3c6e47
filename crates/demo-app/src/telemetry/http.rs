//! HTTP spans and metrics: one server span per request named `METHOD
//! /route`, W3C context extracted from the request (routes/observe.rs
//! starts and ends it); client spans with the context injected into every
//! outgoing call.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::dropped::PausingSampler;
use super::instruments::INSTRUMENTS;
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

/// The tracer of server spans; unset, requests make none (telemetry off).
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Server spans from now on, made by
/// `tracer`: `telemetry::init` with OTLP export on, or a test's provider.
pub fn trace_with(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// The sampler of `telemetry::init`, asked before a server span is made.
static SAMPLER: OnceLock<PausingSampler> = OnceLock::new();

pub(super) fn sample_with(sampler: PausingSampler) {
    let _ = SAMPLER.set(sampler);
}

/// A request's server span, made with the OpenTelemetry SDK directly: the
/// tracing bridge cost about 17k instructions a request (a registry entry,
/// each field visited and copied, enter and exit at every poll). Spans the
/// handler opens through `tracing` (client calls, database operations) find
/// it as their parent in `context`, which is current while the handler runs,
/// and so do log lines (json_lines.rs) and OTLP log records.
pub struct ServerSpan {
    /// None while span export is paused: the context alone propagates.
    span: Option<SdkSpan>,
    /// The caller's context (baggage included) with this span in it.
    pub context: opentelemetry::Context,
}

impl ServerSpan {
    /// Starts the span of `request` (named `{method} {route}`), child of the
    /// W3C context its headers carry; None when telemetry is off.
    pub fn start(request: &Request, method: &'static str, route: Option<&'static RouteNames>) -> Option<Self> {
        let tracer = TRACER.get()?;
        let headers = request.headers();
        // One pass over the request's few headers: three lookups by name
        // hashed each name, 0.4k instructions a request.
        let parent = if headers.keys().any(|name| context_headers().contains(name)) {
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
        } else {
            // What extracting from none of its headers gives, without the
            // propagators' lookups (about 1k instructions a request).
            opentelemetry::Context::current()
        };
        let name = route_names::span_name(method, route);
        if let Some(trace_id) = SAMPLER.get().and_then(|sampler| sampler.drops_for_pause(&parent, name)) {
            // What the SDK makes of a dropped span, without the span: the
            // caller's trace, a span id of its own, not sampled.
            let parent_span = parent.span();
            let known = parent_span.span_context();
            let unrecorded = SpanContext::new(
                trace_id,
                SpanId::from(rand::random::<u64>()),
                known.trace_flags().with_sampled(false),
                false,
                known.trace_state().clone(),
            );
            return Some(Self { span: None, context: parent.with_remote_span_context(unrecorded) });
        }
        // The attributes the HTTP conventions require (or require when
        // known), typed, none twice: each one is converted and encoded again
        // for export, and the recommended ones (client address, protocol
        // version, user agent) cost more than they told behind a sidecar.
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new("http.request.method", method));
        attributes.push(KeyValue::new("url.path", request.uri().path().to_string()));
        attributes.push(KeyValue::new("url.scheme", "http"));
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.template));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let context = parent.with_remote_span_context(span.span_context().clone());
        Some(Self { span: Some(span), context })
    }

    /// Ends the span with the answer's status; a 5xx marks it as an error.
    pub fn end(self, status: StatusCode) {
        let Some(mut span) = self.span else { return };
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_status(Status::error(""));
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_string()));
        }
        span.end();
    }

    /// An exception event on the span (an answer the server is to blame for).
    pub fn exception(&mut self, message: String) {
        if let Some(span) = &mut self.span {
            span.add_event("exception", vec![KeyValue::new("exception.message", message)]);
        }
    }
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
    global::get_text_map_propagator(|p| p.inject_context(&span.context(), &mut HeaderInjector(request.headers_mut())));
    let started = Instant::now();
    let result = client.execute(request).instrument(span.clone()).await;
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
    use std::sync::Arc;
    use std::time::Duration;

    use opentelemetry::trace::{TraceId, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};

    use super::*;
    use crate::telemetry::pause::Pause;

    #[test]
    fn while_export_is_paused_no_span_is_made_and_the_callers_trace_still_propagates() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let exported = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exported.clone()).build();
        trace_with(provider.tracer("test"));
        let pause = Arc::new(Pause::new(Duration::from_secs(60)));
        sample_with(PausingSampler { inner: Box::new(Sampler::AlwaysOn), pause: pause.clone() });
        pause.judge(false);

        let request = Request::builder()
            .uri("/api/info")
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .body(axum::body::Body::empty())
            .unwrap();
        let span = ServerSpan::start(&request, "GET", None).expect("telemetry is on");
        assert!(span.span.is_none(), "no SDK span while paused");
        let context = span.context.span().span_context().clone();
        assert_eq!(context.trace_id(), TraceId::from(0x0af7651916cd43dd8448eb211c80319c), "the caller's trace");
        assert_ne!(context.span_id(), SpanId::from(0xb7ad6b7169203331), "a span id of its own");
        assert!(!context.is_sampled(), "marked not sampled downstream");
        span.end(StatusCode::OK);

        pause.judge(true);
        ServerSpan::start(&request, "GET", None).expect("telemetry is on").end(StatusCode::OK);
        assert_eq!(exported.get_finished_spans().unwrap().len(), 1, "recorded again once export works");
    }
}

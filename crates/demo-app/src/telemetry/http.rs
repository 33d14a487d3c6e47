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
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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

/// A request's server span, made with the OpenTelemetry SDK directly: the
/// tracing bridge cost about 17k instructions a request (a registry entry,
/// each field visited and copied, enter and exit at every poll). Spans the
/// handler opens through `tracing` (client calls, database operations) find
/// it as their parent in `context`, which is current while the handler runs,
/// and so do log lines (json_lines.rs) and OTLP log records.
pub struct ServerSpan {
    span: SdkSpan,
    /// The caller's context (baggage included) with this span in it.
    pub context: opentelemetry::Context,
}

impl ServerSpan {
    /// Starts the span of `request` (named `{method} {route}`), child of the
    /// W3C context its headers carry; None when telemetry is off.
    pub fn start(request: &Request, method: &'static str, route: Option<&'static RouteNames>) -> Option<Self> {
        let tracer = TRACER.get()?;
        let headers = request.headers();
        let parent = if context_headers().iter().any(|h| headers.contains_key(h)) {
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
        } else {
            // What extracting from none of its headers gives, without the
            // propagators' lookups (about 1k instructions a request).
            opentelemetry::Context::current()
        };
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
        let name = route_names::span_name(method, route);
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let context = parent.with_remote_span_context(span.span_context().clone());
        Some(Self { span, context })
    }

    /// Ends the span with the answer's status; a 5xx marks it as an error.
    pub fn end(mut self, status: StatusCode) {
        self.span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            self.span.set_status(Status::error(""));
            self.span.set_attribute(KeyValue::new("error.type", status.as_str().to_string()));
        }
        self.span.end();
    }

    /// An exception event on the span (an answer the server is to blame for).
    pub fn exception(&mut self, message: String) {
        self.span.add_event("exception", vec![KeyValue::new("exception.message", message)]);
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

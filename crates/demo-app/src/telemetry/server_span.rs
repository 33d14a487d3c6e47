//! A request's server span once it has ended: what OTLP needs of it and
//! nothing else, with the names borrowed from the routes (`&'static str`).
//!
//! The SDK's span cost a traced `GET /api/info` about 2.2k instructions on
//! the request thread (its builder, the sampler's attributes, the scope
//! cloned per span, the batch processor's channel moving ~400 bytes) and
//! another 1.2k on the export thread (every attribute a `KeyValue` to read
//! and drop). A `Finished` span is a few words, handed to a `Sink`: the
//! batch of `span_batch.rs` in production, an SDK span processor in tests
//! (`ToProcessor`), where `to_span_data` gives it the SDK's shape.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks, SpanProcessor};

/// The instrumentation scope of every span demo-app makes.
pub const SCOPE: &str = "demo-app";

/// An ended server span.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub parent_span_id: SpanId,
    pub parent_is_remote: bool,
    pub flags: TraceFlags,
    pub trace_state: TraceState,
    /// `GET /api/info`
    pub name: &'static str,
    /// Nanoseconds since the Unix epoch.
    pub start: u64,
    pub end: u64,
    /// `http.request.method`, as bounded by `metrics::method_label`.
    pub method: &'static str,
    /// The route's own template when the path is that (`/api/info`): most
    /// paths then cost no allocation, no copy and no free on another thread.
    pub path: Cow<'static, str>,
    /// `http.route`, when a route matched.
    pub route: Option<&'static str>,
    /// 0 when the request ended without an answer (the client went away).
    pub status: u16,
    /// The time and message of an `exception` event (a 5xx answer).
    pub exception: Option<(u64, String)>,
    /// What the sampler added (none of the SDK's samplers does).
    pub sampler_attributes: Vec<KeyValue>,
}

/// Where ended server spans go.
pub trait Sink: Send + Sync + std::fmt::Debug {
    fn finish(&self, span: Finished);
}

/// Now, as OTLP's nanoseconds since the epoch.
pub fn now() -> u64 {
    nanos(SystemTime::now())
}

pub fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Finished {
    /// `http.response.status_code`; with 5xx, the span's status is an error
    /// and `error.type` the status code, as the HTTP conventions say.
    pub fn is_error(&self) -> bool {
        self.status >= 500
    }

    /// The attributes in the order they are encoded.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("url.path", self.path.to_string()),
            KeyValue::new("http.request.method", self.method),
            KeyValue::new("url.scheme", "http"),
        ];
        if let Some(route) = self.route {
            attributes.push(KeyValue::new("http.route", route));
        }
        if self.status != 0 {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(self.status)));
        }
        if self.is_error() {
            attributes.push(KeyValue::new("error.type", self.status.to_string()));
        }
        attributes.extend(self.sampler_attributes.iter().cloned());
        attributes
    }

    /// The same span as the SDK would have made it.
    pub fn to_span_data(&self) -> SpanData {
        let time = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
        let mut events = SpanEvents::default();
        if let Some((at, message)) = &self.exception {
            events.events.push(Event::new(
                "exception",
                time(*at),
                vec![KeyValue::new("exception.message", message.clone())],
                0,
            ));
        }
        SpanData {
            span_context: SpanContext::new(self.trace_id, self.span_id, self.flags, false, self.trace_state.clone()),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed(self.name),
            start_time: time(self.start),
            end_time: time(self.end),
            attributes: self.attributes(),
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: if self.is_error() { Status::error("") } else { Status::Unset },
            instrumentation_scope: InstrumentationScope::builder(SCOPE).build(),
        }
    }
}

/// Server spans handed to an SDK span processor as `SpanData` (tests read
/// them with the SDK's in-memory exporter).
#[derive(Debug)]
pub struct ToProcessor<P>(pub P);

impl<P: SpanProcessor> Sink for ToProcessor<P> {
    fn finish(&self, span: Finished) {
        self.0.on_end(span.to_span_data());
    }
}

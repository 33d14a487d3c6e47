//! A span once it has ended: what OTLP needs of it and nothing else, with
//! the names borrowed from the routes and the store (`&'static str`).
//!
//! Every span of an HTTP request is one: the server span (`http.rs`), the
//! client call it makes (`http::send`) and each database operation
//! (`store/mod.rs`), made by `recording.rs`. Through the SDK, with
//! `tracing-opentelemetry` in between, a span cost ~2.2k instructions on the
//! request thread (the builder, the sampler's attributes, the scope cloned
//! per span, the batch processor's channel moving ~400 bytes) and 1.2k on
//! the export thread (every attribute a `KeyValue` to read and drop). A
//! `Finished` span is a few words, handed to a `Sink`: the batch of
//! `span_batch.rs` in production, an SDK span processor in tests
//! (`ToProcessor`), where `to_span_data` gives it the SDK's shape.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks, SpanProcessor};

/// The instrumentation scope of every span demo-app makes.
pub const SCOPE: &str = "demo-app";

/// An ended span.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub parent_span_id: SpanId,
    pub parent_is_remote: bool,
    pub flags: TraceFlags,
    pub trace_state: TraceState,
    /// `GET /api/info`, `POST`, `INSERT orders`
    pub name: &'static str,
    /// Nanoseconds since the Unix epoch.
    pub start: u64,
    pub end: u64,
    /// What kind of span, with the attributes of its kind.
    pub detail: Detail,
    /// `http.response.status_code`, answered or received; 0 when there was
    /// none (the client went away, the call failed, a database operation).
    pub status: u16,
    /// `error.type` of a failure that is not a status code (a database
    /// error, a call that got no answer).
    pub error: Option<&'static str>,
    /// The time and message of an `exception` event.
    pub exception: Option<(u64, String)>,
    /// What the sampler added (none of the SDK's samplers does).
    pub sampler_attributes: Vec<KeyValue>,
}

/// The kinds of span demo-app makes, each with the attributes the semantic
/// conventions ask of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// A request served.
    Server {
        /// `http.request.method`, as bounded by `metrics::method_label`.
        method: &'static str,
        /// The route's own template when the path is that (`/api/info`):
        /// most paths then cost no allocation, no copy and no free on
        /// another thread.
        path: Cow<'static, str>,
        /// `http.route`, when a route matched.
        route: Option<&'static str>,
        /// `http.request.method_original`: the method as sent when `method`
        /// is `_OTHER` (at most `METHOD_ORIGINAL_MAX` bytes of it). Boxed:
        /// rare, and every record moves this field.
        method_original: Option<Box<String>>,
    },
    /// An HTTP call made. The URL boxed: inline, it made every record
    /// (one a request) 48 bytes longer to move and queue.
    Client { method: &'static str, url: Box<reqwest::Url> },
    /// A database operation (a client span, as the conventions make it).
    /// `collection` is None for an operation on no table (the readiness
    /// check's `SELECT 1`); `target` is where a networked database is.
    Database {
        system: &'static str,
        operation: &'static str,
        collection: Option<&'static str>,
        target: Option<Arc<DbTarget>>,
    },
}

/// A database server as its client spans and metrics name it:
/// `db.namespace` (the database), `server.address` (a host, an IP address
/// without brackets, or a Unix socket's path) and `server.port` (none for a
/// socket). Made once when the store opens; each span holds a reference.
#[derive(Debug, PartialEq, Eq)]
pub struct DbTarget {
    pub namespace: Option<String>,
    pub address: String,
    pub port: Option<u16>,
}

impl DbTarget {
    /// Its attributes, in the order spans encode them.
    pub fn key_values(&self) -> impl Iterator<Item = KeyValue> + '_ {
        let namespace = self.namespace.as_ref().map(|n| KeyValue::new("db.namespace", n.clone()));
        let port = self.port.map(|p| KeyValue::new("server.port", i64::from(p)));
        namespace.into_iter().chain([KeyValue::new("server.address", self.address.clone())]).chain(port)
    }

    /// `address:port` (or the socket's path): what a span of an operation
    /// on no collection and no particular database is named after.
    pub fn server(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.address),
            None => self.address.clone(),
        }
    }
}

/// `url` as `url.full` may show it: credentials replaced, as the
/// conventions require.
pub fn redacted(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    if !url.username().is_empty() {
        let _ = url.set_username("REDACTED");
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("REDACTED"));
    }
    url
}

/// `server.address`: the host, an IPv6 address without its brackets.
pub fn server_address(url: &reqwest::Url) -> &str {
    url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']')
}

/// The longest `http.request.method_original` a span keeps: the method is
/// the client's to choose, its length only bounded by the request head.
pub const METHOD_ORIGINAL_MAX: usize = 64;

/// `http.request.method_original` of a request whose method the
/// conventions do not know (`method` is `_OTHER`); methods are ASCII
/// tokens, so any cut is on a character boundary.
pub fn method_original(method: &axum::http::Method, label: &str) -> Option<Box<String>> {
    let sent = method.as_str();
    (label == "_OTHER").then(|| Box::new(sent[..sent.len().min(METHOD_ORIGINAL_MAX)].to_string()))
}

/// Where ended spans go.
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

impl Detail {
    pub fn kind(&self) -> SpanKind {
        match self {
            Detail::Server { .. } => SpanKind::Server,
            Detail::Client { .. } | Detail::Database { .. } => SpanKind::Client,
        }
    }
}

impl Finished {
    /// The HTTP conventions: a server span fails with a 5xx, a client span
    /// with a 4xx or 5xx (the caller's request failed) or without an answer;
    /// then `error.type` is the status code, unless `error` names it.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
            || match self.detail {
                Detail::Server { .. } => self.status >= 500,
                Detail::Client { .. } => self.status >= 400,
                Detail::Database { .. } => false,
            }
    }

    /// The attributes in the order they are encoded: those of this span
    /// alone, then those shared with every span of its kind, name and
    /// outcome (span_encoding.rs writes these once), then the sampler's.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = Vec::new();
        match &self.detail {
            Detail::Server { method, path, route, method_original } => {
                attributes.push(KeyValue::new("url.path", path.to_string()));
                if let Some(original) = method_original {
                    attributes.push(KeyValue::new("http.request.method_original", original.to_string()));
                }
                attributes.push(KeyValue::new("http.request.method", *method));
                attributes.push(KeyValue::new("url.scheme", "http"));
                if let Some(route) = route {
                    attributes.push(KeyValue::new("http.route", *route));
                }
            }
            Detail::Client { method, url } => {
                attributes.push(KeyValue::new("url.full", url.as_str().to_string()));
                attributes.push(KeyValue::new("server.address", server_address(url).to_string()));
                attributes.push(KeyValue::new("server.port", i64::from(url.port_or_known_default().unwrap_or(0))));
                attributes.push(KeyValue::new("http.request.method", *method));
            }
            Detail::Database { system, operation, collection, target } => {
                if let Some(target) = target {
                    attributes.extend(target.key_values());
                }
                attributes.push(KeyValue::new("db.system.name", *system));
                attributes.push(KeyValue::new("db.operation.name", *operation));
                if let Some(collection) = collection {
                    attributes.push(KeyValue::new("db.collection.name", *collection));
                }
            }
        }
        if self.status != 0 {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(self.status)));
        }
        if self.is_error() {
            let error = self.error.map_or_else(|| self.status.to_string(), str::to_string);
            attributes.push(KeyValue::new("error.type", error));
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
            span_kind: self.detail.kind(),
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

/// Spans handed to an SDK span processor as `SpanData` (tests read them
/// with the SDK's in-memory exporter).
#[derive(Debug)]
pub struct ToProcessor<P>(pub P);

impl<P: SpanProcessor> Sink for ToProcessor<P> {
    fn finish(&self, span: Finished) {
        self.0.on_end(span.to_span_data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_span_shows_no_credentials_and_a_bare_ipv6_address() {
        let url = "http://user:s3cret@[::1]:8080/api/orders?x=1".parse().unwrap();
        assert_eq!(redacted(&url).as_str(), "http://REDACTED:REDACTED@[::1]:8080/api/orders?x=1");
        assert_eq!(server_address(&url), "::1");
        let plain = "http://backend:8080/".parse().unwrap();
        assert_eq!(redacted(&plain), plain, "nothing to hide, nothing changed");
        assert_eq!(server_address(&plain), "backend");
    }

    #[test]
    fn only_a_method_the_conventions_do_not_know_is_kept_as_sent_and_bounded() {
        use axum::http::Method;
        let of = |method: &Method| method_original(method, crate::metrics::method_label(method)).map(|m| *m);
        assert_eq!(of(&Method::GET), None);
        assert_eq!(of(&Method::from_bytes(b"PURGE").unwrap()).as_deref(), Some("PURGE"));
        let long = Method::from_bytes("X".repeat(500).as_bytes()).unwrap();
        assert_eq!(of(&long).map(|m| m.len()), Some(METHOD_ORIGINAL_MAX));
    }
}

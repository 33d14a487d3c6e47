//! OTLP's `ExportTraceServiceRequest`, encoded straight from the SDK's
//! spans into protobuf bytes.
//!
//! opentelemetry-otlp clones every batch for a possible retry, converts each
//! span into the generated protobuf structs (a `String` per attribute key and
//! value, the scope hashed per span) and lets prost size every nested
//! message again at each level: about 11k instructions a span, more than the
//! request it describes (docs/benchmarks.md). Here each field is written
//! once, in place; a retry resends the same bytes.
//!
//! Field numbers are those of opentelemetry-proto's `trace/v1/trace.proto`
//! and `common/v1/common.proto`; the tests decode the bytes with the
//! generated structs and compare them with the SDK's own conversion.

use std::borrow::Cow;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{WireType, encoded_len_varint};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

use super::otlp_wire::{
    EncodedResource, bytes, fixed32, fixed64, key, key_value, length_delimited, message, nested, scalar_key_value,
    string, varint,
};
use super::span_record::{self, Detail, Finished, nanos};

/// The request that exports `spans`: one `ResourceSpans`, one `ScopeSpans`
/// per instrumentation scope, in the order the scopes first appear.
pub fn request(resource: &EncodedResource, spans: &[SpanData]) -> Vec<u8> {
    // Each span's scope, looked up once: comparing scopes costs more than
    // any other field of a span.
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let scope_of: Vec<usize> = spans
        .iter()
        .map(|span| match scopes.iter().position(|s| *s == &span.instrumentation_scope) {
            Some(known) => known,
            None => {
                scopes.push(&span.instrumentation_scope);
                scopes.len() - 1
            }
        })
        .collect();
    // A server span takes about 250 bytes: one allocation for the batch.
    let mut buf = Vec::with_capacity(320 * spans.len() + resource.resource.len() + 64);
    // Lengths set aside: 3 bytes for the batch and each scope's spans (up to
    // 2 MiB), 2 for a span (up to 16 KiB), 1 for what is inside a span.
    nested(&mut buf, 1, 3, |b| {
        nested(b, 1, 2, |b| b.extend_from_slice(&resource.resource));
        for (index, scope) in scopes.iter().enumerate() {
            nested(b, 2, 3, |b| {
                message(b, 1, |b| instrumentation_scope(b, scope));
                for (span, _) in spans.iter().zip(&scope_of).filter(|(_, s)| **s == index) {
                    nested(b, 2, 2, |b| self::span(b, span));
                }
                string(b, 3, scope.schema_url().unwrap_or_default());
            });
        }
        string(b, 3, &resource.schema_url);
    });
    buf
}

/// The request that exports demo-app's own span records: one
/// `ResourceSpans`, one `ScopeSpans` (demo-app's). The same bytes as
/// `request` makes of the spans' `SpanData` (tested), written from a few
/// words a span. Into `buf`, emptied first: the exporter hands back the
/// same allocation batch after batch.
pub fn records_request(buf: &mut Vec<u8>, resource: &EncodedResource, shared: &mut SharedFields, spans: &[Finished]) {
    buf.clear();
    let needed = 320 * spans.len() + resource.resource.len() + 64;
    if buf.capacity() < needed {
        // Not `reserve`: growing the old allocation copies all of it, bytes
        // of the last batch that are to be overwritten.
        *buf = Vec::with_capacity(needed);
    }
    nested(buf, 1, 3, |b| {
        nested(b, 1, 2, |b| b.extend_from_slice(&resource.resource));
        nested(b, 2, 3, |b| {
            message(b, 1, |b| string(b, 1, span_record::SCOPE));
            for span in spans {
                shared.encode(b, span);
            }
        });
        string(b, 3, &resource.schema_url);
    });
}

/// The fields a span has in common with every other of its kind, name and
/// outcome (name, kind, method, scheme, route, database, status code, error
/// type), encoded once each: written field by field they were two thirds
/// of a server span's encoding.
#[derive(Debug, Default)]
pub struct SharedFields(FxHashMap<SharedKey, Shared>);

/// What tells kinds of span apart: their `&'static str` by address and
/// length (route_names.rs, the store's literals), without hashing their
/// text (SipHash of these words cost more than the fields it saves), the
/// status code, and whether the server span's path is its route's template.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SharedKey {
    kind: u8,
    texts: [(usize, usize); 5],
    status: u16,
    path_is_route: bool,
}

/// Kinds of span remembered at most: routes × methods × statuses is bounded,
/// but `/status/{code}` lets a client pick among hundreds of statuses.
const SHARED_KINDS: usize = 1024;

#[derive(Debug)]
struct Shared {
    name_and_kind: Vec<u8>,
    attributes: Vec<u8>,
    /// Whole records of this kind, one a shape (`Shape`).
    templates: Vec<Template>,
}

/// What else a record's bytes depend on, for a span that has nothing of
/// variable length of its own (`Shape::of`): then a span's record is that
/// of another of its kind and shape with other ids and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    has_parent: bool,
    flags: u32,
}

/// Shapes remembered a kind: a root span, a remote parent's child, and one
/// more (a local parent's child, other trace flags).
const SHAPES: usize = 3;

/// A span record, key and length included, and where its ids and times are.
#[derive(Debug)]
struct Template {
    shape: Shape,
    bytes: Vec<u8>,
    holes: Holes,
}

/// Offsets of the values that differ between records of one template.
#[derive(Debug, Clone, Copy)]
struct Holes {
    trace_id: usize,
    span_id: usize,
    parent_span_id: Option<usize>,
    start: usize,
    end: usize,
}

impl Shape {
    /// None for a span with anything of variable length or presence of its
    /// own: a trace state, an exception, sampler attributes, a time of 0
    /// (which proto3 leaves out); and for all but server spans whose path is
    /// their route's template (client and database spans carry a URL or a
    /// target).
    fn of(span: &Finished) -> Option<Self> {
        let fixed = span.trace_state == TraceState::NONE
            && span.exception.is_none()
            && span.sampler_attributes.is_empty()
            && span.start != 0
            && span.end != 0
            && path_is_route(&span.detail);
        fixed.then(|| Self {
            has_parent: span.parent_span_id != SpanId::INVALID,
            flags: flags(span.flags.to_u8(), span.parent_is_remote),
        })
    }
}

impl Template {
    /// This template's record with `span`'s ids and times.
    fn write(&self, buf: &mut Vec<u8>, span: &Finished) {
        let at = buf.len();
        buf.extend_from_slice(&self.bytes);
        let record = &mut buf[at..];
        let holes = self.holes;
        record[holes.trace_id..][..16].copy_from_slice(&span.trace_id.to_bytes());
        record[holes.span_id..][..8].copy_from_slice(&span.span_id.to_bytes());
        if let Some(parent) = holes.parent_span_id {
            record[parent..][..8].copy_from_slice(&span.parent_span_id.to_bytes());
        }
        record[holes.start..][..8].copy_from_slice(&span.start.to_le_bytes());
        record[holes.end..][..8].copy_from_slice(&span.end.to_le_bytes());
    }
}

impl SharedKey {
    fn of(span: &Finished) -> Self {
        let at = |text: &'static str| (text.as_ptr() as usize, text.len());
        let none = (0, 0);
        let error = span.error.map_or(none, at);
        // Every text the shared bytes hold: the name, then the detail's.
        let (kind, detail) = match &span.detail {
            Detail::Server { method, route, .. } => (0, [at(method), route.map_or(none, at), none]),
            Detail::Client { method, .. } => (1, [at(method), none, none]),
            Detail::Database { system, operation, collection, .. } => {
                (2, [at(system), at(operation), collection.map_or(none, at)])
            }
        };
        let texts = [at(span.name), detail[0], detail[1], detail[2], error];
        Self { kind, texts, status: span.status, path_is_route: path_is_route(&span.detail) }
    }
}

/// A server span's `url.path` that is its route's own template (`/api/info`,
/// most requests): the same for every span of the route, so it goes with
/// the shared fields (first of them, where it is written otherwise too).
/// Not when `http.request.method_original` follows it.
fn path_is_route(detail: &Detail) -> bool {
    matches!(detail, Detail::Server { path: Cow::Borrowed(path), route: Some(route), method_original: None, .. }
        if path.as_ptr() == route.as_ptr() && path.len() == route.len())
}

impl SharedFields {
    /// `span`'s record, key and length included: a copy of its template
    /// with its ids and times when its kind and shape have one (about a
    /// fifth of the instructions of writing it field by field).
    fn encode(&mut self, buf: &mut Vec<u8>, span: &Finished) {
        let kinds = self.0.len();
        let shared = match self.0.entry(SharedKey::of(span)) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) if kinds < SHARED_KINDS => new.insert(Shared::of(span)),
            Entry::Vacant(_) => {
                write_record(buf, &Shared::of(span), span);
                return;
            }
        };
        let Some(shape) = Shape::of(span) else {
            write_record(buf, shared, span);
            return;
        };
        if let Some(template) = shared.templates.iter().find(|t| t.shape == shape) {
            template.write(buf, span);
            return;
        }
        let at = buf.len();
        let holes = write_record(buf, shared, span);
        if shared.templates.len() < SHAPES {
            shared.templates.push(Template { shape, bytes: buf[at..].to_vec(), holes });
        }
    }
}

/// A span record, its key and length included, field by field; where its
/// ids and times are, from the record's first byte.
fn write_record(buf: &mut Vec<u8>, shared: &Shared, span: &Finished) -> Holes {
    let at = buf.len();
    let mut body = (0, None);
    nested(buf, 2, 2, |b| {
        let from = b.len();
        let holes = record(b, shared, span);
        body = (b.len() - from, Some(holes));
    });
    // The body ends the buffer, wherever `nested` left its start.
    let offset = buf.len() - body.0 - at;
    let holes = body.1.expect("the record was written");
    Holes {
        trace_id: offset + holes.trace_id,
        span_id: offset + holes.span_id,
        parent_span_id: holes.parent_span_id.map(|p| offset + p),
        start: offset + holes.start,
        end: offset + holes.end,
    }
}

impl Shared {
    fn of(span: &Finished) -> Self {
        let mut name_and_kind = Vec::new();
        string(&mut name_and_kind, 5, span.name);
        varint(&mut name_and_kind, 6, kind(&span.detail.kind()));
        let mut attributes = Vec::new();
        match &span.detail {
            Detail::Server { method, route, path, .. } => {
                if path_is_route(&span.detail) {
                    string_attribute(&mut attributes, 9, "url.path", path);
                }
                string_attribute(&mut attributes, 9, "http.request.method", method);
                string_attribute(&mut attributes, 9, "url.scheme", "http");
                if let Some(route) = route {
                    string_attribute(&mut attributes, 9, "http.route", route);
                }
            }
            Detail::Client { method, .. } => string_attribute(&mut attributes, 9, "http.request.method", method),
            Detail::Database { system, operation, collection, .. } => {
                string_attribute(&mut attributes, 9, "db.system.name", system);
                string_attribute(&mut attributes, 9, "db.operation.name", operation);
                if let Some(collection) = collection {
                    string_attribute(&mut attributes, 9, "db.collection.name", collection);
                }
            }
        }
        if span.status != 0 {
            key_value(&mut attributes, 9, "http.response.status_code", &Value::I64(i64::from(span.status)));
        }
        if span.is_error() {
            let mut code = [0; 3];
            let error = span.error.unwrap_or_else(|| status_text(span.status, &mut code));
            string_attribute(&mut attributes, 9, "error.type", error);
        }
        Self { name_and_kind, attributes, templates: Vec::new() }
    }
}

/// One span record's fields; what it shares with others of its kind is
/// `shared`. Returns where its ids and times are, from its first byte (the
/// times' are meaningful when not 0: proto3 leaves a 0 out).
fn record(buf: &mut Vec<u8>, shared: &Shared, span: &Finished) -> Holes {
    let from = buf.len();
    let trace_id = id(buf, 1, span.trace_id.to_bytes()) - from;
    let span_id = id(buf, 2, span.span_id.to_bytes()) - from;
    trace_state(buf, 3, &span.trace_state);
    let parent_span_id =
        (span.parent_span_id != SpanId::INVALID).then(|| id(buf, 4, span.parent_span_id.to_bytes()) - from);
    buf.extend_from_slice(&shared.name_and_kind);
    fixed64(buf, 7, span.start);
    let start = buf.len() - 8 - from;
    fixed64(buf, 8, span.end);
    let end = buf.len() - 8 - from;
    match &span.detail {
        Detail::Server { path, method_original, .. } => {
            if !path_is_route(&span.detail) {
                string_attribute(buf, 9, "url.path", path);
            }
            if let Some(original) = method_original {
                string_attribute(buf, 9, "http.request.method_original", original);
            }
        }
        Detail::Client { url, .. } => {
            string_attribute(buf, 9, "url.full", url.as_str());
            string_attribute(buf, 9, "server.address", span_record::server_address(url));
            let port = url.port_or_known_default().unwrap_or(0);
            key_value(buf, 9, "server.port", &Value::I64(i64::from(port)));
        }
        Detail::Database { target: Some(target), .. } => {
            if let Some(namespace) = &target.namespace {
                string_attribute(buf, 9, "db.namespace", namespace);
            }
            string_attribute(buf, 9, "server.address", &target.address);
            if let Some(port) = target.port {
                key_value(buf, 9, "server.port", &Value::I64(i64::from(port)));
            }
        }
        Detail::Database { target: None, .. } => {}
    }
    buf.extend_from_slice(&shared.attributes);
    attributes(buf, 9, &span.sampler_attributes);
    if let Some((at, text)) = &span.exception {
        message(buf, 11, |b| {
            fixed64(b, 1, *at);
            string(b, 2, "exception");
            string_attribute(b, 3, "exception.message", text);
        });
    }
    message(buf, 15, |b| varint(b, 3, if span.is_error() { 2 } else { 0 }));
    fixed32(buf, 16, flags(span.flags.to_u8(), span.parent_is_remote));
    Holes { trace_id, span_id, parent_span_id, start, end }
}

/// A trace or span id: `bytes` with a length known at compile time, so the
/// copy is a move or two rather than a call to `memcpy`. Returns where the
/// id's bytes are.
fn id<const N: usize>(buf: &mut Vec<u8>, field: u32, id: [u8; N]) -> usize {
    key(buf, field, WireType::LengthDelimited);
    buf.push(N as u8);
    let at = buf.len();
    buf.extend_from_slice(&id);
    at
}

/// A status code's three digits, without formatting.
fn status_text(status: u16, digits: &mut [u8; 3]) -> &str {
    let status = status.min(999);
    *digits = [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
    std::str::from_utf8(digits).unwrap_or_default()
}

/// A `KeyValue` holding a string: `key_value` without the `Value`.
fn string_attribute(buf: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let value_len = 1 + encoded_len_varint(value.len() as u64) + value.len();
    scalar_key_value(buf, field, key, value_len, |b| length_delimited(b, 1, value.as_bytes()));
}

fn instrumentation_scope(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(buf, 1, scope.name());
    string(buf, 2, scope.version().unwrap_or_default());
    for attribute in scope.attributes() {
        key_value(buf, 3, attribute.key.as_str(), &attribute.value);
    }
}

fn span(buf: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(buf, 1, &context.trace_id().to_bytes());
    bytes(buf, 2, &context.span_id().to_bytes());
    trace_state(buf, 3, context.trace_state());
    if span.parent_span_id != SpanId::INVALID {
        bytes(buf, 4, &span.parent_span_id.to_bytes());
    }
    string(buf, 5, &span.name);
    varint(buf, 6, kind(&span.span_kind));
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    attributes(buf, 9, &span.attributes);
    varint(buf, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(buf, 11, |b| {
            fixed64(b, 1, nanos(event.timestamp));
            string(b, 2, &event.name);
            attributes(b, 3, &event.attributes);
            varint(b, 4, u64::from(event.dropped_attributes_count));
        });
    }
    varint(buf, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let linked = &link.span_context;
        message(buf, 13, |b| {
            bytes(b, 1, &linked.trace_id().to_bytes());
            bytes(b, 2, &linked.span_id().to_bytes());
            trace_state(b, 3, linked.trace_state());
            attributes(b, 4, &link.attributes);
            varint(b, 5, u64::from(link.dropped_attributes_count));
            fixed32(b, 6, flags(linked.trace_flags().to_u8(), linked.is_remote()));
        });
    }
    varint(buf, 14, u64::from(span.links.dropped_count));
    // Always present, as the SDK's conversion writes it: an empty status is "unset".
    message(buf, 15, |b| {
        let (code, description) = match &span.status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, description.as_ref()),
        };
        string(b, 2, description);
        varint(b, 3, code);
    });
    fixed32(buf, 16, flags(context.trace_flags().to_u8(), span.parent_span_is_remote));
}

/// The span flags: the W3C trace flags, and whether the parent was remote
/// (with the bit that says this is known).
fn flags(trace_flags: u8, parent_is_remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(trace_flags) | HAS_IS_REMOTE | if parent_is_remote { IS_REMOTE } else { 0 }
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn trace_state(buf: &mut Vec<u8>, field: u32, state: &TraceState) {
    if *state != TraceState::NONE {
        string(buf, field, &state.header());
    }
}

fn attributes(buf: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for attribute in attributes {
        key_value(buf, field, attribute.key.as_str(), &attribute.value);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use opentelemetry::Array;
    use opentelemetry_sdk::Resource;

    use super::*;
    use crate::telemetry::span_record::DbTarget;

    fn context(trace: u128, span: u64, remote: bool, state: TraceState) -> SpanContext {
        SpanContext::new(TraceId::from(trace), SpanId::from(span), TraceFlags::SAMPLED, remote, state)
    }

    /// Every kind of field the SDK can hand over, in two scopes.
    fn spans() -> Vec<SpanData> {
        let start = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let mut events = SpanEvents::default();
        events.events = vec![Event::new("exception", start, vec![KeyValue::new("exception.message", "boom")], 1)];
        events.dropped_count = 3;
        let mut links = SpanLinks::default();
        let linked = context(7, 9, true, TraceState::from_key_value([("vendor", "value")]).unwrap());
        links.links = vec![Link::new(linked, vec![KeyValue::new("why", "retry")], 0)];
        links.dropped_count = 1;
        let server = SpanData {
            span_context: context(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, false, TraceState::NONE),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("GET /api/info"),
            start_time: start,
            end_time: start + Duration::from_micros(140),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.path", "/api/info".to_string()),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("empty", ""),
                KeyValue::new("off", false),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("roles", Value::Array(Array::String(vec!["a".into(), "".into()]))),
                KeyValue::new("ports", Value::Array(Array::I64(vec![80, 0, -1]))),
                KeyValue::new("long", "x".repeat(300)),
                KeyValue::new("", "no key"),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status: Status::error("answered 500"),
            instrumentation_scope: InstrumentationScope::builder("demo-app").with_version("1.2.3").build(),
        };
        let client = SpanData {
            span_context: context(0x0af7651916cd43dd8448eb211c80319c, 0x1122334455667788, false, TraceState::NONE),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned("POST".to_string()),
            start_time: start,
            end_time: start + Duration::from_millis(2),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("tracing")
                .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
                .with_attributes([KeyValue::new("scope.kind", "bridge")])
                .build(),
        };
        let mut ok = server.clone();
        ok.status = Status::Ok;
        ok.span_kind = SpanKind::Internal;
        vec![server, client, ok]
    }

    #[test]
    fn the_bytes_decode_to_what_the_sdk_conversion_builds() {
        let resource = Resource::builder_empty()
            .with_service_name("demo-app")
            .with_attributes([KeyValue::new("service.instance.id", "a1"), KeyValue::new("k8s.pod.uid", "")])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build();
        let spans = spans();
        let encoded = request(&EncodedResource::new(&resource), &spans);
        let decoded = ExportTraceServiceRequest::decode(encoded.as_slice()).expect("valid protobuf");
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans, &ResourceAttributesWithSchema::from(&resource)),
        };
        assert_eq!(decoded, expected);
        assert_eq!(decoded.resource_spans[0].scope_spans.len(), 2, "one ScopeSpans per scope");
        assert!(encoded == expected.encode_to_vec(), "the same bytes as prost's, field for field");
    }

    /// Spans as requests leave them: a server span child of a remote caller
    /// with trace state, a root one that failed, one whose client went
    /// away, an unmatched route, a path longer than a one-byte length; a
    /// client call answered 404, one that got no answer; database
    /// operations that succeeded and failed.
    fn records() -> Vec<Finished> {
        let start = 1_765_000_000_123_456_789;
        let served = |method, path: &'static str, route| Detail::Server {
            method,
            path: path.into(),
            route,
            method_original: None,
        };
        let child = Finished {
            trace_id: TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
            span_id: SpanId::from(0xb7ad6b7169203331),
            parent_span_id: SpanId::from(0x00f067aa0ba902b7),
            parent_is_remote: true,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::from_key_value([("vendor", "value")]).unwrap(),
            name: "GET /api/info",
            start,
            end: start + 140_000,
            detail: served("GET", "/api/info", Some("/api/info")),
            status: 200,
            error: None,
            exception: None,
            sampler_attributes: Vec::new(),
        };
        let failed = Finished {
            parent_span_id: SpanId::INVALID,
            parent_is_remote: false,
            trace_state: TraceState::NONE,
            name: "POST /api/checkout",
            detail: served("POST", "/api/checkout", Some("/api/checkout")),
            status: 503,
            exception: Some((start + 100_000, "POST /api/checkout answered 503".into())),
            sampler_attributes: vec![KeyValue::new("sampler.rule", "always")],
            ..child.clone()
        };
        let gone = Finished { status: 0, ..child.clone() };
        let unmatched = Finished {
            name: "HTTP",
            detail: Detail::Server {
                method: "_OTHER",
                path: format!("/{}", "x".repeat(200)).into(),
                route: None,
                method_original: Some(Box::new("PURGE".to_string())),
            },
            ..child.clone()
        };
        let called = Finished {
            parent_is_remote: false,
            name: "GET",
            detail: Detail::Client {
                method: "GET",
                url: Box::new("http://backend:8080/api/orders/7".parse().unwrap()),
            },
            status: 404,
            ..child.clone()
        };
        let unanswered = Finished {
            name: "POST",
            detail: Detail::Client { method: "POST", url: Box::new("https://backend/api/orders".parse().unwrap()) },
            status: 0,
            error: Some("timeout"),
            exception: Some((start + 1_000, "operation timed out".into())),
            ..called.clone()
        };
        let stored = Finished {
            name: "INSERT orders",
            detail: Detail::Database {
                system: "sqlite",
                operation: "INSERT",
                collection: Some("orders"),
                target: None,
            },
            status: 0,
            ..called.clone()
        };
        let pinged = Finished {
            name: "SELECT db:5432",
            detail: Detail::Database {
                system: "postgresql",
                operation: "SELECT",
                collection: None,
                target: Some(Arc::new(DbTarget {
                    namespace: Some("demo".into()),
                    address: "db".into(),
                    port: Some(5432),
                })),
            },
            ..stored.clone()
        };
        let over_a_socket = Finished {
            name: "SELECT orders",
            detail: Detail::Database {
                system: "postgresql",
                operation: "SELECT",
                collection: Some("orders"),
                target: Some(Arc::new(DbTarget { namespace: None, address: "/run/postgresql".into(), port: None })),
            },
            ..stored.clone()
        };
        let refused = Finished {
            error: Some("idempotency_conflict"),
            exception: Some((start + 2_000, "the key was used for another order".into())),
            sampler_attributes: vec![KeyValue::new("sampler.rule", "always")],
            ..stored.clone()
        };
        let answered = Finished {
            detail: Detail::Client { method: "GET", url: Box::new("http://[::1]:8080/api/orders/7".parse().unwrap()) },
            status: 200,
            sampler_attributes: vec![KeyValue::new("sampler.rule", "always")],
            ..called.clone()
        };
        vec![child, failed, gone, unmatched, called, unanswered, stored, refused, answered, pinged, over_a_socket]
    }

    #[test]
    fn records_are_the_bytes_their_sdk_span_data_would_be() {
        let resource = Resource::builder_empty().with_service_name("demo-app").build();
        let resource = EncodedResource::new(&resource);
        let spans = records();
        let as_sdk: Vec<SpanData> = spans.iter().map(Finished::to_span_data).collect();
        let mut shared = SharedFields::default();
        // Into a buffer that held something: it is emptied first.
        let encode = |shared: &mut SharedFields| {
            let mut buf = vec![1, 2, 3];
            records_request(&mut buf, &resource, shared, &spans);
            buf
        };
        let encoded = encode(&mut shared);
        assert!(encoded == request(&resource, &as_sdk), "field for field");
        assert!(encode(&mut shared) == encoded, "the same with the shared fields known");
        assert_eq!(shared.0.len(), spans.len(), "one entry per kind, name and outcome");
        let decoded = ExportTraceServiceRequest::decode(encoded.as_slice()).unwrap();
        let exported = &decoded.resource_spans[0].scope_spans[0];
        assert_eq!(exported.scope.as_ref().map(|s| s.name.as_str()), Some("demo-app"));
        let keys = |i: usize| exported.spans[i].attributes.iter().map(|a| a.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(0),
            ["url.path", "http.request.method", "url.scheme", "http.route", "http.response.status_code"]
        );
        assert!(keys(1).ends_with(&["http.response.status_code".into(), "error.type".into(), "sampler.rule".into()]));
        assert!(!keys(2).contains(&"http.response.status_code".to_string()), "no answer, no status code");
        let status = |i: usize| exported.spans[i].status.as_ref().map(|s| s.code);
        assert_eq!(status(1), Some(2), "a 5xx is an error");
        assert_eq!(exported.spans[1].events[0].name, "exception");
        assert_eq!(
            keys(4),
            [
                "url.full",
                "server.address",
                "server.port",
                "http.request.method",
                "http.response.status_code",
                "error.type"
            ]
        );
        assert_eq!(status(4), Some(2), "a 4xx received is the client span's error");
        assert_eq!(status(0), Some(0), "a 2xx answered is not");
        let error_type = |i: usize| {
            let attribute = exported.spans[i].attributes.iter().find(|a| a.key == "error.type");
            format!("{:?}", attribute.and_then(|a| a.value.as_ref()))
        };
        assert!(error_type(5).contains("timeout"), "{}", error_type(5));
        assert_eq!(keys(6), ["db.system.name", "db.operation.name", "db.collection.name"]);
        assert_eq!((exported.spans[6].kind, status(6)), (3, Some(0)), "a client span, not an error");
        assert!(error_type(7).contains("idempotency_conflict"), "{}", error_type(7));
        assert_eq!((status(8), error_type(8).as_str()), (Some(0), "None"), "a 2xx received is no error");
        let address = exported.spans[8].attributes.iter().find(|a| a.key == "server.address");
        assert!(format!("{address:?}").contains("\"::1\""), "an IPv6 address without brackets: {address:?}");
        assert_eq!(exported.spans[9].name, "SELECT db:5432", "no collection: named after the server");
        assert_eq!(
            keys(9),
            ["db.namespace", "server.address", "server.port", "db.system.name", "db.operation.name"],
            "a networked database's target, no collection"
        );
        assert_eq!(
            keys(10),
            ["server.address", "db.system.name", "db.operation.name", "db.collection.name"],
            "a socket has no port"
        );
    }

    #[test]
    fn shared_fields_stop_growing_at_their_bound_and_the_bytes_stay_right() {
        let resource = EncodedResource::new(&Resource::builder_empty().with_service_name("demo-app").build());
        let child = records().remove(0);
        let routes = ["/status/{code}", "/api/info", "/healthz"];
        let spans: Vec<Finished> = (100..=599)
            .flat_map(|status| {
                routes.map(|route| Finished {
                    status,
                    detail: Detail::Server {
                        method: "GET",
                        path: route.into(),
                        route: Some(route),
                        method_original: None,
                    },
                    ..child.clone()
                })
            })
            .collect();
        let as_sdk: Vec<SpanData> = spans.iter().map(Finished::to_span_data).collect();
        let mut shared = SharedFields::default();
        let mut buf = Vec::new();
        records_request(&mut buf, &resource, &mut shared, &spans);
        assert!(buf == request(&resource, &as_sdk));
        assert_eq!(shared.0.len(), SHARED_KINDS, "no more kinds remembered than the bound");
        records_request(&mut buf, &resource, &mut shared, &spans);
        assert!(buf == request(&resource, &as_sdk), "past the bound too");
    }

    /// Spans of one kind told apart only by their ids, times and shape
    /// (root, remote or local parent, sampled or not): from the second of a
    /// shape on they are written from a template, with their own values.
    #[test]
    fn records_written_from_a_template_carry_their_own_ids_and_times() {
        let resource = EncodedResource::new(&Resource::builder_empty().with_service_name("demo-app").build());
        let child = Finished { trace_state: TraceState::NONE, ..records().remove(0) };
        let spans: Vec<Finished> = (1..=40u64)
            .map(|n| Finished {
                trace_id: TraceId::from(u128::from(n) << 64 | 0xabc),
                span_id: SpanId::from(n * 7919),
                parent_span_id: if n % 3 == 0 { SpanId::INVALID } else { SpanId::from(n * 104_729) },
                parent_is_remote: n % 3 == 1,
                flags: if n % 5 == 0 { TraceFlags::default() } else { TraceFlags::SAMPLED },
                start: child.start + n * 1_000,
                end: child.start + n * 1_000 + n * 37,
                status: if n % 4 == 0 { 500 } else { 200 },
                ..child.clone()
            })
            .collect();
        assert!(spans.iter().all(|span| Shape::of(span).is_some()), "every span fits a template");
        let as_sdk: Vec<SpanData> = spans.iter().map(Finished::to_span_data).collect();
        let mut shared = SharedFields::default();
        let mut buf = Vec::new();
        for pass in ["templates made", "templates used"] {
            records_request(&mut buf, &resource, &mut shared, &spans);
            assert!(buf == request(&resource, &as_sdk), "{pass}");
        }
        let templates: usize = shared.0.values().map(|kind| kind.templates.len()).sum();
        assert!(templates >= 4, "{templates} templates: roots, remote and local parents, sampled or not");
    }

    #[test]
    fn an_empty_batch_is_an_empty_resource_spans() {
        let encoded = request(&EncodedResource::default(), &[]);
        let decoded = ExportTraceServiceRequest::decode(encoded.as_slice()).expect("valid protobuf");
        assert_eq!(decoded.resource_spans.len(), 1);
        assert!(decoded.resource_spans[0].scope_spans.is_empty());
    }

    #[test]
    fn a_length_of_another_width_than_set_aside_moves_the_body() {
        for set_aside in 1..=3 {
            for len in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
                let mut buf = vec![0xAA];
                nested(&mut buf, 9, set_aside, |b| b.extend(std::iter::repeat_n(7, len)));
                let mut expected = vec![0xAA];
                prost::encoding::bytes::encode(9, &vec![7u8; len], &mut expected);
                assert!(buf == expected, "a body of {len} bytes, {set_aside} set aside");
            }
        }
    }
}

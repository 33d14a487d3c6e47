//! OTLP's `ExportLogsServiceRequest`, encoded straight from the SDK's log
//! records into protobuf bytes, as span_encoding.rs does for spans.
//!
//! opentelemetry-otlp groups a batch by scope in a `HashMap` (SipHash of
//! every scope), converts each record into the generated structs (a
//! `String` per attribute key and value, each value cloned) and lets prost
//! size every nested message again at each level: 5.9k instructions on the
//! export thread for each order stored, whose one log line is the only
//! record (callgrind, `POST /api/checkout`). Here each field is written
//! once, in place; a retry resends the same bytes.
//!
//! Field numbers are those of opentelemetry-proto's `logs/v1/logs.proto`;
//! the tests decode the bytes with the generated structs and compare them
//! with the library's own conversion.

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use prost::encoding::WireType;

use super::otlp_wire::{
    EncodedResource, bytes, fixed32, fixed64, key, key_value, length_delimited, message, nested, string, varint,
    varint_into,
};
use super::span_record::nanos;

/// The request that exports `batch`: one `ResourceLogs`, one `ScopeLogs` per
/// scope in the order the scopes first appear. A record's scope is named
/// after its target (the module that logged it), as the library's
/// conversion names it; version, schema and attributes are its logger's.
pub fn request(resource: &EncodedResource, batch: &LogBatch<'_>) -> Vec<u8> {
    let records: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch.iter().collect();
    let mut scopes: Vec<(&str, &InstrumentationScope)> = Vec::new();
    let scope_of: Vec<usize> = records
        .iter()
        .map(|(record, scope)| {
            let name = record.target().map_or(scope.name(), |target| target.as_ref());
            let same = |(known_name, known): &(&str, &InstrumentationScope)| {
                *known_name == name
                    && known.version() == scope.version()
                    && known.schema_url() == scope.schema_url()
                    && known.attributes().eq(scope.attributes())
            };
            scopes.iter().position(same).unwrap_or_else(|| {
                scopes.push((name, scope));
                scopes.len() - 1
            })
        })
        .collect();
    // A log line takes about 200 bytes: one allocation for the batch.
    let mut buf = Vec::with_capacity(256 * records.len() + resource.resource.len() + 64);
    // Lengths set aside: 3 bytes for the batch and each scope's records (up
    // to 2 MiB), 2 for a record (up to 16 KiB).
    nested(&mut buf, 1, 3, |b| {
        nested(b, 1, 2, |b| b.extend_from_slice(&resource.resource));
        for (index, (name, scope)) in scopes.iter().enumerate() {
            nested(b, 2, 3, |b| {
                message(b, 1, |b| {
                    string(b, 1, name);
                    string(b, 2, scope.version().unwrap_or_default());
                    for attribute in scope.attributes() {
                        key_value(b, 3, attribute.key.as_str(), &attribute.value);
                    }
                });
                for ((record, _), _) in records.iter().zip(&scope_of).filter(|(_, s)| **s == index) {
                    nested(b, 2, 2, |b| self::record(b, record));
                }
                string(b, 3, scope.schema_url().unwrap_or_default());
            });
        }
        string(b, 3, &resource.schema_url);
    });
    buf
}

fn record(buf: &mut Vec<u8>, record: &SdkLogRecord) {
    fixed64(buf, 1, record.timestamp().map_or(0, nanos));
    // The severities' numbers are OTLP's (`Severity` is declared with them).
    varint(buf, 2, record.severity_number().map_or(0, |severity| severity as u64));
    string(buf, 3, record.severity_text().unwrap_or_default());
    if let Some(body) = record.body() {
        nested(buf, 5, 1, |b| any_value(b, body));
    }
    for (name, value) in record.attributes_iter() {
        nested(buf, 6, 1, |b| {
            string(b, 1, name.as_str());
            nested(b, 2, 1, |b| any_value(b, value));
        });
    }
    if let Some(context) = record.trace_context() {
        fixed32(buf, 8, context.trace_flags.map_or(0, |flags| u32::from(flags.to_u8())));
        bytes(buf, 9, &context.trace_id.to_bytes());
        bytes(buf, 10, &context.span_id.to_bytes());
    }
    fixed64(buf, 11, record.observed_timestamp().map_or(0, nanos));
    string(buf, 12, record.event_name().unwrap_or_default());
}

/// One member of `AnyValue`'s oneof, written even when it holds the default
/// (false, 0, ""): a oneof tells "set" from "unset".
fn any_value(buf: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::String(text) => length_delimited(buf, 1, text.as_str().as_bytes()),
        AnyValue::Boolean(flag) => {
            key(buf, 2, WireType::Varint);
            varint_into(buf, u64::from(*flag));
        }
        AnyValue::Int(number) => {
            key(buf, 3, WireType::Varint);
            // int64: two's complement, as a varint of ten bytes when negative.
            varint_into(buf, *number as u64);
        }
        AnyValue::Double(number) => {
            key(buf, 4, WireType::SixtyFourBit);
            buf.extend_from_slice(&number.to_le_bytes());
        }
        AnyValue::ListAny(values) => nested(buf, 5, 1, |b| {
            for value in values.iter() {
                nested(b, 1, 1, |b| any_value(b, value));
            }
        }),
        AnyValue::Map(entries) => nested(buf, 6, 1, |b| {
            for (name, value) in entries.iter() {
                nested(b, 1, 1, |b| {
                    string(b, 1, name.as_str());
                    nested(b, 2, 1, |b| any_value(b, value));
                });
            }
        }),
        AnyValue::Bytes(data) => length_delimited(buf, 7, data),
        // A kind of value newer than this code: its text.
        other => length_delimited(buf, 1, format!("{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
    use opentelemetry::{Key, KeyValue};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::logs::SdkLoggerProvider;
    use prost::Message as _;

    use super::*;

    /// Records of every shape the bridge makes, and some it does not.
    fn records(provider: &SdkLoggerProvider) -> Vec<SdkLogRecord> {
        let logger = provider.logger("bridge");
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let mut full = logger.create_log_record();
        full.set_target(Cow::Borrowed("demo_app::routes::orders"));
        full.set_event_name("event crates/demo-app/src/routes/orders.rs:42");
        full.set_timestamp(at(1_700_000_000_123));
        full.set_observed_timestamp(at(1_700_000_000_124));
        full.set_severity_number(Severity::Info);
        full.set_severity_text("INFO");
        full.set_body(AnyValue::from("order created"));
        full.add_attribute("order.id", 1199i64);
        full.add_attribute("order.total_cents", -5i64);
        full.add_attribute("ratio", 0.5f64);
        full.add_attribute("ok", false);
        full.add_attribute("empty", "");
        full.add_attribute("raw", AnyValue::Bytes(Box::new(vec![0, 1, 255])));
        full.add_attribute("list", AnyValue::ListAny(Box::new(vec![AnyValue::Int(0), AnyValue::from("x")])));
        full.add_attribute("map", AnyValue::Map(Box::new(HashMap::from([(Key::new("k"), AnyValue::Boolean(true))]))));
        full.set_trace_context(TraceId::from(0x4bf9_2f35), SpanId::from(0x00f0_67aa), Some(TraceFlags::SAMPLED));
        // Another module: another scope; no trace, no body, no time.
        let mut other = logger.create_log_record();
        other.set_target(Cow::Borrowed("demo_app::startup"));
        other.set_observed_timestamp(at(1_700_000_001_000));
        other.set_severity_number(Severity::Warn);
        other.set_severity_text("WARN");
        // Without a target: the logger's own scope name.
        let mut bare = logger.create_log_record();
        bare.set_observed_timestamp(at(1_700_000_002_000));
        bare.set_trace_context(TraceId::from(7), SpanId::from(9), None);
        let mut second = full.clone();
        second.set_body(AnyValue::from("order created again"));
        vec![full, other, bare, second]
    }

    /// The library's conversion, its scopes (a `HashMap`'s order) sorted by name.
    fn sorted(mut request: ExportLogsServiceRequest) -> ExportLogsServiceRequest {
        for logs in &mut request.resource_logs {
            logs.scope_logs.sort_by(|a, b| a.scope.as_ref().map(|s| &s.name).cmp(&b.scope.as_ref().map(|s| &s.name)));
        }
        request
    }

    #[test]
    fn records_are_encoded_as_the_library_converts_them() {
        let provider = SdkLoggerProvider::builder().build();
        let records = records(&provider);
        let scope = InstrumentationScope::builder("bridge").with_version("1.2").build();
        let pairs: Vec<(&SdkLogRecord, &InstrumentationScope)> = records.iter().map(|r| (r, &scope)).collect();
        let batch = LogBatch::new(&pairs);
        let resource = Resource::builder_empty()
            .with_service_name("demo-app")
            .with_attributes([KeyValue::new("service.instance.id", "abc")])
            .build();

        let ours = ExportLogsServiceRequest::decode(request(&EncodedResource::new(&resource), &batch).as_slice())
            .expect("valid protobuf");
        let theirs = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&batch, &ResourceAttributesWithSchema::from(&resource)),
        };
        assert_eq!(sorted(ours.clone()), sorted(theirs));
        let scopes: Vec<_> = ours.resource_logs[0].scope_logs.iter().map(|s| s.scope.clone().unwrap().name).collect();
        assert_eq!(scopes, ["demo_app::routes::orders", "demo_app::startup", "bridge"], "in order of first use");
        assert_eq!(ours.resource_logs[0].scope_logs[0].log_records.len(), 2, "one scope, both records of its module");
    }
}

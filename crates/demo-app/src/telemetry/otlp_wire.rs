//! Protobuf as OTLP's requests are written, in place: a field at a time
//! into one buffer, nested messages' lengths set aside and filled in after
//! (`nested`). Shared by the span and log encoders (span_encoding.rs,
//! log_encoding.rs), with the resource both signals' requests carry.
//!
//! Field numbers are those of opentelemetry-proto's `common/v1/common.proto`
//! and `resource/v1/resource.proto`; the encoders' tests decode what they
//! write with the generated structs.

use opentelemetry::{Array, Value};
use opentelemetry_sdk::Resource;
use prost::encoding::{WireType, encoded_len_varint};

/// The `Resource` message of every request, encoded once.
#[derive(Debug, Clone, Default)]
pub struct EncodedResource {
    pub(super) resource: Vec<u8>,
    pub(super) schema_url: String,
}

impl EncodedResource {
    pub fn new(resource: &Resource) -> Self {
        let mut encoded = Vec::new();
        for (key, value) in resource.iter() {
            key_value(&mut encoded, 1, key.as_str(), value);
        }
        Self { resource: encoded, schema_url: resource.schema_url().unwrap_or_default().to_string() }
    }
}

/// A `KeyValue` field. With a scalar value (every attribute demo-app sets)
/// its length is worked out first, so nothing is set aside or moved: the
/// attributes are most of a span's bytes.
pub(super) fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let Some(value_len) = scalar_len(value) else {
        return message(buf, field, |b| {
            string(b, 1, key);
            message(b, 2, |b| any_value(b, value));
        });
    };
    scalar_key_value(buf, field, key, value_len, |b| any_value(b, value));
}

/// A `KeyValue` whose `AnyValue` takes `value_len` bytes, written by `value`.
pub(super) fn scalar_key_value(
    buf: &mut Vec<u8>,
    field: u32,
    key: &str,
    value_len: usize,
    value: impl FnOnce(&mut Vec<u8>),
) {
    let key_len = if key.is_empty() { 0 } else { 1 + encoded_len_varint(key.len() as u64) + key.len() };
    let len = key_len + 1 + encoded_len_varint(value_len as u64) + value_len;
    buf.reserve(1 + encoded_len_varint(len as u64) + len);
    self::key(buf, field, WireType::LengthDelimited);
    varint_into(buf, len as u64);
    string(buf, 1, key);
    self::key(buf, 2, WireType::LengthDelimited);
    varint_into(buf, value_len as u64);
    value(buf);
}

/// The encoded length of an `AnyValue` holding a scalar; None for arrays.
pub(super) fn scalar_len(value: &Value) -> Option<usize> {
    Some(match value {
        Value::String(s) => 1 + encoded_len_varint(s.as_str().len() as u64) + s.as_str().len(),
        Value::Bool(_) => 2,
        Value::I64(v) => 1 + encoded_len_varint(*v as u64),
        Value::F64(_) => 9,
        _ => return None,
    })
}

/// One member of `AnyValue`'s oneof, written even when it holds the default
/// (false, 0, ""): a oneof tells "set" from "unset".
pub(super) fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => length_delimited(buf, 1, s.as_str().as_bytes()),
        Value::Bool(v) => {
            key(buf, 2, WireType::Varint);
            varint_into(buf, u64::from(*v));
        }
        Value::I64(v) => {
            key(buf, 3, WireType::Varint);
            // int64: two's complement, as a varint of ten bytes when negative.
            varint_into(buf, *v as u64);
        }
        Value::F64(v) => {
            key(buf, 4, WireType::SixtyFourBit);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Value::Array(array) => message(buf, 5, |b| match array {
            Array::Bool(values) => values.iter().for_each(|v| message(b, 1, |b| any_value(b, &Value::Bool(*v)))),
            Array::I64(values) => values.iter().for_each(|v| message(b, 1, |b| any_value(b, &Value::I64(*v)))),
            Array::F64(values) => values.iter().for_each(|v| message(b, 1, |b| any_value(b, &Value::F64(*v)))),
            Array::String(values) => {
                values.iter().for_each(|v| message(b, 1, |b| length_delimited(b, 1, v.as_str().as_bytes())))
            }
            // A kind of array newer than this code: its text.
            other => message(b, 1, |b| length_delimited(b, 1, other.to_string().as_bytes())),
        }),
        other => length_delimited(buf, 1, other.to_string().as_bytes()),
    }
}

/// A nested message of under 128 bytes (an attribute, a scope, a status):
/// see `nested`.
pub(super) fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    nested(buf, field, 1, body);
}

/// A nested message: its key, its length, then what `body` writes. The
/// length is known only afterwards: `set_aside` bytes are kept for it (the
/// width its varint usually takes), and the body is moved when it takes
/// another.
pub(super) fn nested(buf: &mut Vec<u8>, field: u32, set_aside: usize, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, WireType::LengthDelimited);
    let at = buf.len();
    buf.resize(at + set_aside, 0);
    body(buf);
    let len = buf.len() - at - set_aside;
    let width = encoded_len_varint(len as u64);
    if width != set_aside {
        let end = buf.len();
        if width > set_aside {
            buf.resize(end + width - set_aside, 0);
        }
        buf.copy_within(at + set_aside..end, at + width);
        buf.truncate(at + width + len);
    }
    match width {
        1 => buf[at] = len as u8,
        _ => buf[at..at + width].copy_from_slice(&varint_bytes(len as u64)[..width]),
    }
}

/// `value` as a varint, in the first `encoded_len_varint(value)` bytes.
pub(super) fn varint_bytes(mut value: u64) -> [u8; 10] {
    let mut bytes = [0; 10];
    for byte in &mut bytes {
        *byte = value as u8 & 0x7f;
        value >>= 7;
        if value == 0 {
            break;
        }
        *byte |= 0x80;
    }
    bytes
}

/// A field's key: one byte for the fields below 16, as all but one are.
pub(super) fn key(buf: &mut Vec<u8>, field: u32, wire_type: WireType) {
    varint_into(buf, u64::from(field << 3 | wire_type as u32));
}

/// A varint, with the one-byte case (keys, lengths of short strings) first.
pub(super) fn varint_into(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

pub(super) fn length_delimited(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, WireType::LengthDelimited);
    varint_into(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// proto3 scalars: a default value is not written.
pub(super) fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    bytes(buf, field, value.as_bytes());
}

pub(super) fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        length_delimited(buf, field, value);
    }
}

pub(super) fn varint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, WireType::Varint);
        varint_into(buf, value);
    }
}

pub(super) fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, WireType::SixtyFourBit);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

pub(super) fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, WireType::ThirtyTwoBit);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

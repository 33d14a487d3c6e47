//! W3C Trace Context (`traceparent`, `tracestate`) read and written in
//! place. The SDK's propagator splits the header into a `Vec`, parses the
//! ids with `from_str_radix` and formats them with `format!`: 2.4k
//! instructions for each request that carries a context (every request
//! behind a traced mesh, the backend's half of every checkout). The rules
//! are the specification's, version 00 and the future versions it allows;
//! the tests hold this to the SDK's answers.

use std::str::FromStr as _;
use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const LENGTH: usize = 55;

static FIELDS: LazyLock<[String; 2]> = LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

#[derive(Debug, Default)]
pub struct W3cTraceContext;

impl TextMapPropagator for W3cTraceContext {
    fn inject_context(&self, context: &Context, injector: &mut dyn Injector) {
        let span = context.span();
        let ids = span.span_context();
        if ids.is_valid() {
            injector.set(TRACEPARENT, traceparent(ids));
            // An empty `tracestate` may be left out (W3C 3.3.1.1); the SDK
            // sends it, a header on every call for nothing.
            let state = ids.trace_state().header();
            if !state.is_empty() {
                injector.set(TRACESTATE, state);
            }
        }
    }

    fn extract_with_context(&self, context: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(TRACEPARENT).and_then(parse) {
            Some((trace_id, span_id, flags)) => {
                let state = trace_state(extractor).unwrap_or_default();
                context.with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state))
            }
            None => context.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(FIELDS.as_slice())
    }
}

/// The `tracestate` of the request: repeated headers are one list, joined
/// with commas (W3C 3.3.1.1, as HTTP combines repeated fields); None when
/// absent or when any of them is invalid (the whole list is then dropped).
fn trace_state(extractor: &dyn Extractor) -> Option<TraceState> {
    match extractor.get_all(TRACESTATE)?.as_slice() {
        [one] => TraceState::from_str(one).ok(),
        all => TraceState::from_str(&all.join(",")).ok(),
    }
}

/// `00-{trace id}-{span id}-{flags}`, only the sampled flag kept.
fn traceparent(ids: &SpanContext) -> String {
    let mut text = [0u8; LENGTH];
    text[..3].copy_from_slice(b"00-");
    hex::encode_to_slice(ids.trace_id().to_bytes(), &mut text[3..35]).expect("32 digits");
    text[35] = b'-';
    hex::encode_to_slice(ids.span_id().to_bytes(), &mut text[36..52]).expect("16 digits");
    text[52..].copy_from_slice(if ids.is_sampled() { b"-01" } else { b"-00" });
    std::str::from_utf8(&text).expect("ASCII").to_owned()
}

/// The ids and flags of a `traceparent`, or None when it is not one: a
/// version other than two lowercase hex digits or `ff`; for version 00
/// anything but the 55 characters (a trailing `-` tolerated, as the SDK
/// does); for a later version fewer, or more not after a `-`; ids or flags
/// not lowercase hex of their length; an id of zeros.
fn parse(header: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let text = header.trim().as_bytes();
    let version = lowercase_hex::<1>(text.get(..2)?)?[0];
    let rest = &text[LENGTH.min(text.len())..];
    let fits = match version {
        0xff => false,
        0 => rest.is_empty() || rest == b"-",
        _ => rest.is_empty() || rest[0] == b'-',
    };
    if !fits || text.len() < LENGTH || [2, 35, 52].iter().any(|&at| text[at] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_bytes(lowercase_hex::<16>(&text[3..35])?);
    let span_id = SpanId::from_bytes(lowercase_hex::<8>(&text[36..52])?);
    let flags = TraceFlags::new(lowercase_hex::<1>(&text[53..55])?[0]) & TraceFlags::SAMPLED;
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some((trace_id, span_id, flags))
}

/// `N` bytes from `2 * N` lowercase hex digits (an uppercase one is refused,
/// as the specification says).
fn lowercase_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N || digits.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    fn extracted(propagator: &dyn TextMapPropagator, traceparent: &str, tracestate: Option<&str>) -> SpanContext {
        let mut headers = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        if let Some(state) = tracestate {
            headers.insert(TRACESTATE.to_owned(), state.to_owned());
        }
        propagator.extract(&headers).span().span_context().clone()
    }

    #[test]
    fn reads_what_the_sdk_reads_and_refuses_what_it_refuses() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let cases = [
            format!("00-{id}-01"),
            format!("00-{id}-00"),
            format!("00-{id}-09"),
            format!("00-{id}-01-"),
            format!("02-{id}-08"),
            format!("02-{id}-09-XYZxsf09"),
            format!(" 00-{id}-01 "),
            format!("ff-{id}-01"),
            format!("00-{id}-01-00"),
            format!("00-{id}-0100"),
            format!("00-{id}"),
            format!("00-{id}-"),
            format!("00-{}-01", id.to_uppercase()),
            format!("00-{id}-A1"),
            format!("qw-{id}-01"),
            format!("00-{id}-qw"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
            "00-ab00000000000000000000000000000000-cd00000000000000-01".into(),
            "00-ab000000000000000000000000000000-cd0000000000000000-01".into(),
            "00-qw000000000000000000000000000000-cd00000000000000-01".into(),
            String::new(),
            "0".into(),
            "00".into(),
            "00-".into(),
            format!("00-{}-01", id.replace('a', "é")),
            "é".repeat(28),
        ];
        for traceparent in &cases {
            for tracestate in [None, Some("foo=bar,vendor=1"), Some("not a trace state")] {
                assert_eq!(
                    extracted(&W3cTraceContext, traceparent, tracestate),
                    extracted(&TraceContextPropagator::new(), traceparent, tracestate),
                    "{traceparent:?} with tracestate {tracestate:?}"
                );
            }
        }
        assert!(extracted(&W3cTraceContext, &cases[0], None).is_valid(), "the oracle agrees on something valid");
        assert!(!extracted(&W3cTraceContext, &cases[7], None).is_valid(), "and on something refused");
        // Where the SDK is laxer than the specification (its version and
        // flags are any number `from_str_radix` reads, its ids any length
        // up to theirs).
        let lax = [
            format!("0000-{id}-01"),
            format!("A0-{id}-01"),
            format!("00-{id}-0"),
            "00-4bf92f35-00f067aa0ba902b7-01".into(),
        ];
        for lax in lax {
            assert!(extracted(&TraceContextPropagator::new(), &lax, None).is_valid(), "{lax}: the SDK reads it");
            assert!(!extracted(&W3cTraceContext, &lax, None).is_valid(), "{lax}: the specification refuses it");
        }
    }

    /// Headers as HTTP carries them: a name may repeat.
    struct Fields(Vec<(&'static str, &'static str)>);

    impl Extractor for Fields {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| *k).collect()
        }

        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            let all: Vec<&str> = self.0.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect();
            (!all.is_empty()).then_some(all)
        }
    }

    #[test]
    fn repeated_tracestate_headers_are_one_list() {
        let traceparent = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let headers = Fields(vec![traceparent, ("tracestate", "a=1,b=2"), ("tracestate", "c=3")]);
        let context = W3cTraceContext.extract(&headers);
        let span = context.span();
        let state = span.span_context().trace_state();
        assert_eq!(state.header(), "a=1,b=2,c=3");
        assert_eq!(state.get("c"), Some("3"), "the second field is read too");

        let one = Fields(vec![traceparent, ("tracestate", "a=1")]);
        assert_eq!(W3cTraceContext.extract(&one).span().span_context().trace_state().header(), "a=1");
        let broken = Fields(vec![traceparent, ("tracestate", "a=1"), ("tracestate", "not a member")]);
        let context = W3cTraceContext.extract(&broken);
        assert!(context.span().span_context().is_valid(), "a bad trace state does not lose the parent");
        assert_eq!(context.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn writes_what_the_sdk_writes() {
        for sampled in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let ids = SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                SpanId::from(0x00f0_67aa_0ba9_02b7),
                sampled,
                true,
                TraceState::from_str("foo=bar").unwrap(),
            );
            let context = Context::new().with_remote_span_context(ids.clone());
            let (mut ours, mut theirs) = (HashMap::new(), HashMap::new());
            W3cTraceContext.inject_context(&context, &mut ours);
            TraceContextPropagator::new().inject_context(&context, &mut theirs);
            assert_eq!(ours, theirs);
            assert_eq!(ours.len(), 2);

            // Without a trace state, the SDK's empty header is left out.
            let stateless = SpanContext::new(ids.trace_id(), ids.span_id(), sampled, true, TraceState::default());
            let context = Context::new().with_remote_span_context(stateless);
            let (mut ours, mut theirs) = (HashMap::new(), HashMap::new());
            W3cTraceContext.inject_context(&context, &mut ours);
            TraceContextPropagator::new().inject_context(&context, &mut theirs);
            assert_eq!(theirs.remove(TRACESTATE).as_deref(), Some(""));
            assert_eq!(ours, theirs);
        }
        let mut none = HashMap::new();
        W3cTraceContext.inject_context(&Context::new(), &mut none);
        assert!(none.is_empty(), "no span, no header");
        assert_eq!(W3cTraceContext.fields().collect::<Vec<_>>(), ["traceparent", "tracestate"]);
    }
}

//! W3C Trace Context (`traceparent`, `tracestate`) read and written in
//! place. The SDK's propagator splits the header into a `Vec`, parses the
//! ids with `from_str_radix` and formats them with `format!`: 2.4k
//! instructions for each request that carries a context (every request
//! behind a traced mesh, the backend's half of every checkout). The rules
//! are the specification's, version 00 and the future versions it allows;
//! the tests hold this to the SDK's answers.
//!
//! HTTP requests read and write their context straight from and into the
//! header map (`extract_from_headers`, `inject_into_headers`), as the
//! propagators `telemetry::init` installs would (this one, then baggage):
//! through the global propagator, its composite and the `Extractor`
//! trait's lookups by `&str`, that cost another 1k instructions each way.

use std::str::FromStr as _;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::BaggagePropagator;

use super::hex_ids;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const LENGTH: usize = 55;

static FIELDS: LazyLock<[String; 2]> = LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

/// The header names made once: parsing a name from a `&str` cost as much as
/// the rest of the header (0.4k instructions).
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);
const BAGGAGE_HEADER: HeaderName = HeaderName::from_static("baggage");

/// The context an HTTP request's headers carry, on a context of its own
/// (not the current one: whatever a worker thread happens to hold is not
/// the request's parent). Empty without trace headers.
pub fn extract_from_headers(headers: &HeaderMap) -> Context {
    // One pass over the request's few headers first: most carry no context,
    // and two lookups by name hashed each name (0.2k instructions a
    // `GET /api/info`). A `tracestate` alone is never read.
    if !headers.keys().any(|name| *name == TRACEPARENT_HEADER || *name == BAGGAGE_HEADER) {
        return Context::new();
    }
    let parent = headers.get(TRACEPARENT_HEADER).and_then(parse_field);
    let context = match parent {
        Some((trace_id, span_id, flags)) => {
            let fields = headers.get_all(TRACESTATE_HEADER).iter().map(|v| v.to_str().ok()).collect::<Option<Vec<_>>>();
            let state = fields.and_then(|fields| trace_state(&fields)).unwrap_or_default();
            Context::new().with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state))
        }
        None => Context::new(),
    };
    if headers.contains_key(BAGGAGE_HEADER) {
        return BaggagePropagator::new().extract_with_context(&context, &HeaderExtractor(headers));
    }
    context
}

/// `context` into an outgoing HTTP call's headers: `traceparent`,
/// `tracestate` unless empty, `baggage` when there is any.
pub fn inject_into_headers(context: &Context, headers: &mut HeaderMap) {
    let span = context.span();
    let ids = span.span_context();
    if ids.is_valid() {
        let traceparent = HeaderValue::from_bytes(&traceparent_bytes(ids)).expect("hex digits and dashes");
        headers.insert(TRACEPARENT_HEADER, traceparent);
        let state = ids.trace_state().header();
        if let (false, Ok(state)) = (state.is_empty(), HeaderValue::try_from(state)) {
            headers.insert(TRACESTATE_HEADER, state);
        }
    }
    if !context.baggage().is_empty() {
        BaggagePropagator::new().inject_context(context, &mut HeaderInjector(headers));
    }
}

/// A header map as the propagators read it (gRPC's, through the global
/// propagator; baggage).
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match known_name(key) {
            Some(name) => self.0.get(name),
            None => self.0.get(key),
        };
        value.and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }

    /// Every field of that name (`tracestate` may come in several); None
    /// when there is none or one is not visible ASCII, which makes the
    /// whole list invalid.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let fields = match known_name(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        let values: Vec<&str> = fields.iter().map(|v| v.to_str().ok()).collect::<Option<_>>()?;
        (!values.is_empty()).then_some(values)
    }
}

/// A header map as the propagators write it (baggage).
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = known_name(key).map_or_else(|| HeaderName::from_bytes(key.as_bytes()), Ok);
        if let (Ok(name), Ok(value)) = (name, HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

fn known_name(key: &str) -> Option<HeaderName> {
    match key {
        TRACEPARENT => Some(TRACEPARENT_HEADER),
        TRACESTATE => Some(TRACESTATE_HEADER),
        "baggage" => Some(BAGGAGE_HEADER),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct W3cTraceContext;

impl TextMapPropagator for W3cTraceContext {
    fn inject_context(&self, context: &Context, injector: &mut dyn Injector) {
        let span = context.span();
        let ids = span.span_context();
        if ids.is_valid() {
            let traceparent = std::str::from_utf8(&traceparent_bytes(ids)).expect("ASCII").to_owned();
            injector.set(TRACEPARENT, traceparent);
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
                let state = extractor.get_all(TRACESTATE).and_then(|fields| trace_state(&fields)).unwrap_or_default();
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
fn trace_state(fields: &[&str]) -> Option<TraceState> {
    match fields {
        [] => None,
        [one] => TraceState::from_str(one).ok(),
        all => TraceState::from_str(&all.join(",")).ok(),
    }
}

/// `00-{trace id}-{span id}-{flags}`, only the sampled flag kept.
fn traceparent_bytes(ids: &SpanContext) -> [u8; LENGTH] {
    let mut text = [0u8; LENGTH];
    text[..3].copy_from_slice(b"00-");
    text[3..35].copy_from_slice(&hex_ids::encode::<16, 32>(ids.trace_id().to_bytes()));
    text[35] = b'-';
    text[36..52].copy_from_slice(&hex_ids::encode::<8, 16>(ids.span_id().to_bytes()));
    text[52..].copy_from_slice(if ids.is_sampled() { b"-01" } else { b"-00" });
    text
}

/// The ids and flags of a `traceparent`, or None when it is not one: a
/// version other than two lowercase hex digits or `ff`; for version 00
/// anything but the 55 characters (a trailing `-` tolerated, as the SDK
/// does); for a later version fewer, or more not after a `-`; ids or flags
/// not lowercase hex of their length; an id of zeros.
fn parse(header: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    parse_trimmed(header.trim().as_bytes())
}

/// `parse` of a header field as it came (a `HeaderValue` is not known to be
/// text): refused, too, when any of it is not visible ASCII, as reading it
/// as a `&str` would (a later version's tail is the only part the fixed
/// fields do not already hold to hex digits and dashes).
fn parse_field(field: &HeaderValue) -> Option<(TraceId, SpanId, TraceFlags)> {
    let text = field.as_bytes().trim_ascii();
    let ids = parse_trimmed(text)?;
    text[LENGTH..].iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)).then_some(ids)
}

fn parse_trimmed(text: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    let version = hex_ids::decode::<1>(text.get(..2)?)?[0];
    let rest = &text[LENGTH.min(text.len())..];
    let fits = match version {
        0xff => false,
        0 => rest.is_empty() || rest == b"-",
        _ => rest.is_empty() || rest[0] == b'-',
    };
    if !fits || text.len() < LENGTH || [2, 35, 52].iter().any(|&at| text[at] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_ids::decode::<16>(&text[3..35])?);
    let span_id = SpanId::from_bytes(hex_ids::decode::<8>(&text[36..52])?);
    let flags = TraceFlags::new(hex_ids::decode::<1>(&text[53..55])?[0]) & TraceFlags::SAMPLED;
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some((trace_id, span_id, flags))
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

    #[test]
    fn a_header_field_is_read_as_its_text_would_be() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let fields: Vec<Vec<u8>> = [
            format!("00-{id}-01"),
            format!(" \t00-{id}-01\t "),
            format!("02-{id}-01-later fields"),
            format!("02-{id}-01-\u{e9}"),
            format!("00-{id}-01-\u{e9}"),
            format!("\u{a0}00-{id}-01"),
            format!("00-{id}-01\u{a0}"),
        ]
        .into_iter()
        .map(String::into_bytes)
        .chain([[format!("02-{id}-01-").as_bytes(), &[0x80, 0xff]].concat()])
        .collect();
        let mut accepted = 0;
        for field in &fields {
            let value = HeaderValue::from_bytes(field).unwrap();
            let as_text = value.to_str().ok().and_then(parse);
            assert_eq!(parse_field(&value), as_text, "{:?}", String::from_utf8_lossy(field));
            accepted += usize::from(as_text.is_some());
        }
        assert_eq!(accepted, 3, "the plain, the padded and the later version with a visible tail");
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
    fn every_field_of_a_repeated_header_is_read() {
        let mut headers = HeaderMap::new();
        headers.append(TRACESTATE_HEADER, "a=1".parse().unwrap());
        headers.append(TRACESTATE_HEADER, "b=2".parse().unwrap());
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("tracestate"), Some("a=1"));
        assert_eq!(extractor.get_all("tracestate"), Some(vec!["a=1", "b=2"]));
        assert_eq!(extractor.get_all("baggage"), None);

        headers.append(TRACESTATE_HEADER, HeaderValue::from_bytes("c=\u{e9}".as_bytes()).unwrap());
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get_all("tracestate"), None, "one field not ASCII spoils the list");
    }

    /// What `telemetry::init` installs as the global propagator.
    fn installed() -> opentelemetry::propagation::TextMapCompositePropagator {
        opentelemetry::propagation::TextMapCompositePropagator::new(vec![
            Box::new(W3cTraceContext),
            Box::new(BaggagePropagator::new()),
        ])
    }

    /// A context's ids, trace state and baggage, comparable.
    fn seen(context: &Context) -> (SpanContext, Vec<(String, String)>) {
        let mut baggage: Vec<_> = context.baggage().iter().map(|(k, (v, _))| (k.to_string(), v.to_string())).collect();
        baggage.sort();
        (context.span().span_context().clone(), baggage)
    }

    #[test]
    fn header_maps_are_read_and_written_as_the_installed_propagators_do() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let parents = [Some(format!("00-{id}-01")), Some(format!("00-{id}-00")), Some(format!("00-{id}-0x")), None];
        let states: [&[&[u8]]; 5] =
            [&[], &[b"a=1"], &[b"a=1", b"b=2"], &[b"a=1", b"not a member"], &[b"a=1", "c=\u{e9}".as_bytes()]];
        let baggages = [None, Some("user=alice,tier=gold;ttl=3")];
        let mut checked = 0;
        for parent in &parents {
            for state in states {
                for baggage in baggages {
                    let mut headers = HeaderMap::new();
                    if let Some(parent) = parent {
                        headers.insert(TRACEPARENT_HEADER, parent.parse().unwrap());
                    }
                    for field in state {
                        headers.append(TRACESTATE_HEADER, HeaderValue::from_bytes(field).unwrap());
                    }
                    if let Some(baggage) = baggage {
                        headers.insert(BAGGAGE_HEADER, baggage.parse().unwrap());
                    }
                    let ours = extract_from_headers(&headers);
                    let theirs = installed().extract_with_context(&Context::new(), &HeaderExtractor(&headers));
                    assert_eq!(seen(&ours), seen(&theirs), "{headers:?}");

                    let (mut written, mut expected) = (HeaderMap::new(), HeaderMap::new());
                    inject_into_headers(&ours, &mut written);
                    installed().inject_context(&ours, &mut HeaderInjector(&mut expected));
                    assert_eq!(written, expected, "{headers:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 40);
        // The oracle agrees on something: a parent, a state and baggage read.
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT_HEADER, format!("00-{id}-01").parse().unwrap());
        headers.insert(TRACESTATE_HEADER, "a=1".parse().unwrap());
        headers.insert(BAGGAGE_HEADER, "user=alice".parse().unwrap());
        let (span, baggage) = seen(&extract_from_headers(&headers));
        assert!(span.is_valid() && span.is_remote() && span.trace_state().get("a") == Some("1"));
        assert_eq!(baggage, [("user".to_string(), "alice".to_string())]);
        let mut written = HeaderMap::new();
        inject_into_headers(&extract_from_headers(&headers), &mut written);
        assert_eq!(written.len(), 3, "{written:?}");
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

//! The JSON log line on stdout: time, level, target, the event's fields and,
//! inside a traced request, its trace and span ids.
//!
//! tracing-subscriber's own JSON format renders every span's fields to JSON
//! when the span is created and again at each `record`, to print them with
//! the events inside it: about 40k instructions per request although no line
//! is written for most requests. Here the layer sees events only, and the
//! ids come from the current OpenTelemetry context: the server span's,
//! attached while its request is handled (routes/observe.rs; for gRPC the
//! tracing layer activates it).

use std::fmt;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::hex_ids;

pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let timestamp = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let context = opentelemetry::Context::current();
        let span = context.span();
        let ids = span.span_context();
        // Written once, whole: through `Display`, each string went out piece
        // by piece via `fmt::Write` (4k instructions a line). The keys in the
        // order they always had (a sorted map's). Only the fields and the
        // target can hold what JSON escapes; the level, the RFC 3339 time and
        // the hex ids cannot, and are copied as they are (escaping the ids
        // cost a traced line 0.7k instructions more).
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"fields\":");
        serde_json::to_writer(&mut line, &fields.0).map_err(|_| fmt::Error)?;
        line.extend_from_slice(b",\"level\":\"");
        line.extend_from_slice(metadata.level().as_str().as_bytes());
        if ids.is_valid() {
            line.extend_from_slice(b"\",\"span_id\":\"");
            line.extend_from_slice(&hex_ids::encode::<8, 16>(ids.span_id().to_bytes()));
        }
        line.extend_from_slice(b"\",\"target\":");
        serde_json::to_writer(&mut line, metadata.target()).map_err(|_| fmt::Error)?;
        line.extend_from_slice(b",\"timestamp\":\"");
        line.extend_from_slice(timestamp.as_bytes());
        if ids.is_valid() {
            line.extend_from_slice(b"\",\"trace_id\":\"");
            line.extend_from_slice(&hex_ids::encode::<16, 32>(ids.trace_id().to_bytes()));
        }
        line.extend_from_slice(b"\"}\n");
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// An event's fields as JSON values, numbers and booleans kept typed.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Captures what the layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text_of(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<Value> {
        text_of(emit).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
    }

    #[test]
    fn fields_keep_their_types_and_the_message() {
        let lines = lines_of(|| tracing::info!(port = 9898u16, ready = true, path = "/data", "demo-app listening"));
        let fields = &lines[0]["fields"];
        assert_eq!(fields["message"], "demo-app listening");
        assert_eq!((fields["port"].as_u64(), fields["ready"].as_bool()), (Some(9898), Some(true)));
        assert_eq!(fields["path"], "/data");
        assert_eq!(lines[0]["level"], "INFO");
        assert!(lines[0].get("trace_id").is_none(), "no ids outside a trace");
    }

    #[test]
    fn what_json_escapes_is_escaped_in_the_fields_and_the_target() {
        let lines = lines_of(|| tracing::info!(target: "odd\"target\\", note = "a \"quote\"\n", "line\tbreak"));
        assert_eq!(lines[0]["target"], "odd\"target\\");
        assert_eq!(lines[0]["fields"]["note"], "a \"quote\"\n");
        assert_eq!(lines[0]["fields"]["message"], "line\tbreak");
    }

    #[test]
    fn inside_a_trace_the_line_carries_its_ids() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let ids = SpanContext::new(trace, span, TraceFlags::SAMPLED, false, TraceState::default());
        let context = opentelemetry::Context::current().with_remote_span_context(ids);
        let _active = context.attach();
        let lines = lines_of(|| tracing::warn!("not ready"));
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");

        // One line each, the keys in the order they always had.
        let text = text_of(|| tracing::warn!("not ready"));
        assert!(text.ends_with("\"}\n") && text.lines().count() == 1, "{text}");
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {text}"));
        let keys = ["fields", "level", "span_id", "target", "timestamp", "trace_id"];
        assert!(keys.windows(2).all(|pair| at(pair[0]) < at(pair[1])), "{text}");
    }
}

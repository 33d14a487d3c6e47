//! Logs, traces and metrics. JSON log lines always go to stdout; with an
//! OTLP endpoint configured (OTEL_EXPORTER_OTLP_ENDPOINT, the standard
//! variables), traces, metrics and logs are also exported over OTLP.
//!
//! Export never sits in the request path: batch processors run as tasks on
//! the export runtime's one thread, with bounded queues; what does not fit
//! in a queue or fails to export is counted in `telemetry_dropped_total` (see `admission.rs` and
//! `dropped.rs`), and a Collector that is down costs requests next to
//! nothing: while it is, spans are not even recorded (`pause.rs`). The
//! exporters send from a runtime of their own (`export_runtime`), so
//! encoding and sending never take a thread that serves requests. Spans and
//! log records, exported per request, are encoded and sent by exporters of
//! our own (`otlp_export.rs`, `span_encoding.rs`, `log_encoding.rs`, a
//! quarter of the library's instructions), and the spans of an HTTP request
//! (server, client call, database operation) are records of our own with a
//! queue of their own (`recording.rs`, `span_record.rs`, `span_batch.rs`),
//! not SDK spans; gRPC server spans, made through `tracing`, take the SDK's
//! path, as log records take the SDK's bridge and batch processor; metrics
//! use the library's exporter.

mod admission;
pub mod dropped;
pub mod grpc;
mod hex_ids;
pub mod http;
mod http_client;
pub mod instruments;
mod json_lines;
mod log_encoding;
mod otlp_export;
mod otlp_wire;
mod pause;
mod queue;
pub mod recording;
mod sampler;
mod settings;
mod span_batch;
mod span_encoding;
pub mod span_record;
mod trace_context;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter as _};
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use settings::{Export, Protocol, Settings};

/// How often metrics are pushed over OTLP. The SDK's reader on a runtime
/// skips its first tick: the first push comes after two intervals (20 s),
/// then one every interval (and one at shutdown).
const METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// Crates whose own logs must never be exported over OTLP: exporting them
/// would produce more of them, in a loop.
const EXPORTER_TARGETS: [&str; 6] = ["opentelemetry", "tonic", "h2", "hyper", "reqwest", "tower"];

/// Keeps the providers alive; `shutdown` flushes them.
#[derive(Default)]
pub struct Telemetry {
    request_spans: Option<&'static span_batch::SpanBatch>,
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    /// Writes the queued log lines out when dropped.
    _stdout: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Log lines queued for stdout before new ones are dropped. demo-app logs
/// no line per request, so this is room for a burst of warnings; the queue's
/// slots are written when it is made (32 bytes a line: 16K lines were
/// 512 KiB resident in every process).
const STDOUT_QUEUE_LINES: usize = 4 * 1024;

/// stdout written by a thread of its own: a request thread never waits for
/// the reader of the pipe (a blocked stdout stopped `/healthz` and SIGTERM).
/// When the queue is full, lines are dropped, never waited for.
fn stdout_writer() -> (tracing_appender::non_blocking::NonBlocking, tracing_appender::non_blocking::WorkerGuard) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(STDOUT_QUEUE_LINES)
        .thread_name("demo-app-stdout")
        .finish(std::io::stdout())
}

/// Installs the global subscriber from the process environment. Call once,
/// inside the Tokio runtime.
pub fn init(level: &str) -> anyhow::Result<Telemetry> {
    init_from(level, &std::env::vars().collect())
}

/// `init` with the variables given explicitly (tests).
pub fn init_from(level: &str, vars: &HashMap<String, String>) -> anyhow::Result<Telemetry> {
    let instance_id = hex::encode(rand::random::<[u8; 8]>());
    let settings = Settings::from_env(vars, &instance_id).map_err(anyhow::Error::msg)?;
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(trace_context::W3cTraceContext),
        Box::new(BaggagePropagator::new()),
    ]));
    let (stdout, guard) = stdout_writer();
    // Events only: a log layer that saw spans would render their fields on
    // every request (json_lines.rs).
    let json = tracing_subscriber::fmt::layer()
        .event_format(json_lines::JsonLines)
        .with_writer(stdout)
        .with_filter(stdout_filter(level));

    let Some(endpoint) = settings.endpoint.clone() else {
        let _ = tracing_subscriber::registry().with(json).try_init();
        return Ok(Telemetry { _stdout: Some(guard), ..Telemetry::default() });
    };
    // Built inside the export runtime: tonic's channels spawn their tasks
    // (protobuf encoding, HTTP/2) on the runtime current at build time, and
    // so do the SDK's processors (`runtime::Tokio`): a thread each otherwise.
    let export_runtime = export_runtime()?;
    let _in_export_runtime = export_runtime.enter();
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes(settings.attributes.iter().map(|(k, v)| opentelemetry::KeyValue::new(*k, v.clone())))
        .build();
    let span_queue = queue::Queue::from_env(vars, "OTEL_BSP_MAX_QUEUE_SIZE", 2048);
    let span_pause = Arc::new(pause::Pause::new(pause::LENGTH));
    let wire = Wire::of(&settings)?;
    let mut exporter: otlp_export::OtlpSpanExporter =
        otlp_exporter(&settings.span_export, &endpoint, "v1/traces", &wire, export_runtime.clone())?;
    exporter.set_resource(&resource);
    // The spans of HTTP requests skip the SDK's span and batch processor
    // (span_batch.rs); the spans made through `tracing` (gRPC) take the
    // SDK's. Kept for the life of the process, as the exporters are.
    let request_spans: &'static _ =
        Box::leak(Box::new(span_batch::SpanBatch::from_env(vars, exporter.clone(), span_pause.clone())));
    request_spans.start(&export_runtime);
    let spans = BatchSpanProcessor::builder(
        dropped::CountingSpanExporter(exporter, span_queue.clone(), span_pause.clone()),
        Tokio,
    )
    .build();
    // The sampler OTEL_TRACES_SAMPLER names (in the process environment, where
    // the SDK reads it), paused with the export.
    let sampler = dropped::PausingSampler { inner: sampler::Configured::from_env(), pause: span_pause.clone() };
    recording::trace_paused_with(request_spans, sampler.clone());
    let tracer = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(admission::SpanAdmission { inner: spans, queue: span_queue })
        .with_resource(resource.clone())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(dropped::CountingMetricExporter(metric_exporter(&endpoint, &wire)?), Tokio)
                .with_interval(METRIC_INTERVAL)
                .build(),
        )
        .with_resource(resource.clone())
        .build();
    let log_queue = queue::Queue::from_env(vars, "OTEL_BLRP_MAX_QUEUE_SIZE", 2048);
    let log_pause = Arc::new(pause::Pause::new(pause::LENGTH));
    let records = BatchLogProcessor::builder(
        dropped::CountingLogExporter(
            otlp_exporter::<otlp_export::Logs>(
                &settings.log_export,
                &endpoint,
                "v1/logs",
                &wire,
                export_runtime.clone(),
            )?,
            log_queue.clone(),
            log_pause.clone(),
        ),
        Tokio,
    )
    .build();
    let logger = SdkLoggerProvider::builder()
        .with_log_processor(admission::LogAdmission { inner: records, queue: log_queue, pause: log_pause })
        .with_resource(resource)
        .build();
    global::set_tracer_provider(tracer.clone());
    global::set_meter_provider(meter.clone());

    // The log level filters logs only: spans are recorded at INFO whatever
    // --level says, so `--level warn` does not switch tracing off.
    // Only what the spans are read for: no code location, thread or
    // busy/idle time attributes (each costs work on every request).
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("demo-app"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(traces_filter(span_pause));
    // Events only, in one filter: a filter that enables spans (the level's
    // EnvFilter alone does) made the registry keep every span, a map entry
    // and an enter and exit at each poll, even while the traces layer,
    // paused, wants none.
    let logs = OpenTelemetryTracingBridge::new(&logger).with_filter(logs_filter(level));
    tracing_subscriber::registry().with(json).with(traces).with(logs).try_init().ok();
    tracing::info!(endpoint, protocol = ?settings.protocol, service = settings.service_name, "OTLP export on");
    Ok(Telemetry {
        request_spans: Some(request_spans),
        tracer: Some(tracer),
        meter: Some(meter),
        logger: Some(logger),
        _stdout: Some(guard),
    })
}

/// A runtime of one thread for the OTLP exporters: with the service's
/// runtime, encoding and sending every batch ran on the threads that serve
/// requests (about 20k instructions per request at sampling 1.0).
fn export_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the telemetry export runtime")?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("otel-export".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .context("cannot start the telemetry export thread")?;
    Ok(handle)
}

/// What stdout's layer sees: events at the log level.
fn stdout_filter<S>(level: &str) -> impl Filter<S> + use<S> {
    events().and(log_filter(level))
}

/// What the traces layer sees: spans of this service while span export is
/// not paused, and events (which join the current span).
fn traces_filter<S>(pause: Arc<pause::Pause>) -> impl Filter<S> {
    span_filter().and(UnlessSpansPaused(pause))
}

/// What the OTLP logs bridge sees: events at the log level, not of the
/// exporters' own crates. While log export is paused the bridge builds no
/// record (`admission::LogAdmission::event_enabled`).
fn logs_filter<S>(level: &str) -> impl Filter<S> + use<S> {
    let not_exporter = filter_fn(|meta| !EXPORTER_TARGETS.iter().any(|t| meta.target().starts_with(t)));
    not_exporter.with_max_level_hint(LevelFilter::TRACE).and(events()).and(log_filter(level))
}

/// Events, not spans. Every filter here that does not filter by level says
/// so (a hint of every level): one without a hint leaves its whole layer,
/// and so the subscriber, without one, every level then possible. The `log`
/// crate's records (reqwest logs a debug line per call) then each crossed
/// `LogTracer` into every layer's filters, 0.2k instructions a record, when
/// the level would have refused them in the `log` macro.
fn events<S>() -> impl Filter<S> {
    filter_fn(|meta| meta.is_event()).with_max_level_hint(LevelFilter::TRACE)
}

/// `--level` (or RUST_LOG), with the chatty transport crates held at warn.
fn log_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,h2=warn,tower=warn,hyper=warn,tonic=warn")))
}

/// Spans of this service at INFO and above; none from the exporter's own stack.
fn span_filter() -> tracing_subscriber::filter::Targets {
    EXPORTER_TARGETS
        .iter()
        .fold(tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO), |targets, t| {
            targets.with_target(*t, tracing_subscriber::filter::LevelFilter::OFF)
        })
}

/// Spans while span export is not paused: paused, spans are not even built
/// (the layer built each one, its fields visited, a builder, a context,
/// before the pausing sampler dropped it). Asked at every span: an answer
/// kept per callsite would have left a span first seen during a pause
/// unexported for good.
///
/// Events pass: the traces layer makes them events of the current span,
/// and a span not built leaves them none to join. A per-event answer for
/// them made every event's callsite "sometimes" for every layer, each
/// level filter evaluated again at each event (0.7k instructions an order
/// stored with the Collector down).
struct UnlessSpansPaused(Arc<pause::Pause>);

impl<S> Filter<S> for UnlessSpansPaused {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        !meta.is_span() || !self.0.skips_span()
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_span() {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    /// Every level: the level is `span_filter`'s to say (see `events`).
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

/// How the signals reach the Collector: over OTLP/HTTP, through one client
/// (one connection pool) for all three.
enum Wire {
    Grpc,
    Http(http_client::SharedClient),
}

impl Wire {
    fn of(settings: &Settings) -> anyhow::Result<Self> {
        Ok(match settings.protocol {
            Protocol::Grpc => Wire::Grpc,
            Protocol::HttpProtobuf => Wire::Http(http_client::SharedClient(
                reqwest::Client::builder()
                    .timeout(settings.span_export.timeout)
                    .build()
                    .context("cannot build the OTLP/HTTP client")?,
            )),
        })
    }

    /// The endpoint for one signal: gRPC takes the base URL, OTLP/HTTP a
    /// path per signal.
    fn endpoint(&self, base: &str, path: &str) -> String {
        match self {
            Wire::Grpc => base.to_string(),
            Wire::Http(_) => format!("{}/{path}", base.trim_end_matches('/')),
        }
    }
}

/// The library's OTLP metric exporter, over the configured protocol.
fn metric_exporter(endpoint: &str, wire: &Wire) -> anyhow::Result<MetricExporter> {
    let url = wire.endpoint(endpoint, "v1/metrics");
    match wire {
        Wire::Grpc => MetricExporter::builder().with_tonic().with_endpoint(url).build(),
        Wire::Http(client) => {
            MetricExporter::builder().with_http().with_http_client(client.clone()).with_endpoint(url).build()
        }
    }
    .context("cannot build the OTLP metric exporter")
}

/// Spans and log records go through exporters of our own, each batch
/// encoded once (otlp_export.rs), to `path` of the Collector over HTTP.
fn otlp_exporter<S: otlp_export::Signal>(
    export: &Export,
    endpoint: &str,
    path: &str,
    wire: &Wire,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<otlp_export::OtlpExporter<S>> {
    let url = wire.endpoint(endpoint, path);
    let exporter = match wire {
        Wire::Grpc => otlp_export::OtlpExporter::grpc(&url, &export.headers, export.timeout, runtime),
        Wire::Http(client) => {
            otlp_export::OtlpExporter::http(&url, &export.headers, client.0.clone(), export.timeout, runtime)
        }
    };
    exporter.with_context(|| format!("cannot build the OTLP {} exporter", S::RECORD))
}

impl Telemetry {
    /// Flushes and stops the exporters, bounded by `timeout` so a Collector
    /// that is down cannot hold the process past its grace period.
    pub async fn shutdown(self, timeout: Duration) {
        if self.tracer.is_none() {
            return;
        }
        if let Some(request_spans) = self.request_spans
            && tokio::time::timeout(timeout, request_spans.export_queued(true)).await.is_err()
        {
            eprintln!("request spans were not flushed within {timeout:?}; some were lost");
        }
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(tracer) = self.tracer {
                let _ = tracer.shutdown_with_timeout(timeout);
            }
            if let Some(meter) = self.meter {
                let _ = meter.shutdown_with_timeout(timeout);
            }
            if let Some(logger) = self.logger {
                let _ = logger.shutdown_with_timeout(timeout);
            }
        });
        if tokio::time::timeout(timeout, flush).await.is_err() {
            eprintln!("telemetry flush did not finish within {timeout:?}; some telemetry was lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::Layer;

    use super::*;

    /// Counts the spans it is shown.
    struct Spans(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for Spans {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_span_pause_leaves_an_event_callsite_decided_once() {
        use tracing::callsite::Callsite as _;
        use tracing::metadata::Kind;
        type Registry = tracing_subscriber::Registry;
        let spans = UnlessSpansPaused(Arc::new(pause::Pause::new(Duration::from_secs(60))));
        let event =
            tracing::callsite!(name: "order created", kind: Kind::EVENT, level: tracing::Level::INFO, fields: []);
        let span = tracing::callsite!(name: "grpc call", kind: Kind::SPAN, level: tracing::Level::INFO, fields: []);
        // "sometimes" for one layer re-asks every layer's filters at each event.
        assert!(Filter::<Registry>::callsite_enabled(&spans, event.metadata()).is_always());
        // A span is decided each time: the pause comes and goes.
        assert!(Filter::<Registry>::callsite_enabled(&spans, span.metadata()).is_sometimes());
    }

    #[test]
    fn every_layer_keeps_the_log_level_as_its_hint() {
        type Registry = tracing_subscriber::Registry;
        // The level the subscriber, and the `log` crate, let through: what
        // `--level` (or RUST_LOG, when set) says.
        let level = Filter::<Registry>::max_level_hint(&log_filter("warn"));
        assert!(level.is_some(), "the level filter has a hint");
        assert_eq!(Filter::<Registry>::max_level_hint(&stdout_filter("warn")), level);
        assert_eq!(Filter::<Registry>::max_level_hint(&logs_filter("warn")), level);
        let pause = Arc::new(pause::Pause::new(Duration::from_secs(60)));
        assert_eq!(Filter::<Registry>::max_level_hint(&traces_filter(pause)), Some(LevelFilter::INFO));
    }

    #[test]
    fn spans_of_one_callsite_follow_the_pause_each_time() {
        let pause = Arc::new(pause::Pause::new(Duration::from_secs(60)));
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber =
            tracing_subscriber::registry().with(Spans(seen.clone()).with_filter(UnlessSpansPaused(pause.clone())));
        tracing::subscriber::with_default(subscriber, || {
            let span = || drop(tracing::info_span!("grpc_server_call"));
            pause.judge(false);
            span();
            assert_eq!(seen.load(Ordering::Relaxed), 0, "no span while paused");
            pause.judge(true);
            span();
            assert_eq!(seen.load(Ordering::Relaxed), 1, "the same callsite makes spans again once export works");
            pause.judge(false);
            span();
            assert_eq!(seen.load(Ordering::Relaxed), 1, "and none in the next pause");
        });
    }
}

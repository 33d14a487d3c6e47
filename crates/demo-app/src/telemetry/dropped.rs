//! Telemetry that could not be delivered is counted, never retried in the
//! request path: exporter wrappers add the size of every failed batch to
//! `telemetry_dropped_total{signal}` (served with the Prometheus metrics),
//! and so does the sampler wrapper for the spans it does not record while
//! export is paused (pause.rs).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample, SpanData, SpanExporter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::pause::Pause;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    pub signal: &'static str,
}

const SIGNALS: [&str; 3] = ["traces", "logs", "metrics"];

/// Shared with the Prometheus registry (see `metrics.rs`).
pub static DROPPED: LazyLock<Family<SignalLabels, Counter>> = LazyLock::new(|| {
    let family = Family::<SignalLabels, Counter>::default();
    for signal in SIGNALS {
        // Exposed at 0 from the start, so a rise is visible.
        let _ = family.get_or_create(&SignalLabels { signal });
    }
    family
});

/// The series of each signal, looked up once: while the Collector is down a
/// span is counted per request, and a family lookup hashes its labels.
static SERIES: LazyLock<[Counter; 3]> =
    LazyLock::new(|| SIGNALS.map(|signal| DROPPED.get_or_create(&SignalLabels { signal }).clone()));

pub fn count(signal: &'static str, items: usize) {
    match SIGNALS.iter().position(|s| *s == signal) {
        Some(i) => SERIES[i].inc_by(items as u64),
        None => DROPPED.get_or_create(&SignalLabels { signal }).inc_by(items as u64),
    };
}

/// The configured sampler (OTEL_TRACES_SAMPLER), except that a span it would
/// record is dropped, and counted, while span export is paused. The span's
/// context still propagates, marked not sampled.
#[derive(Debug, Clone)]
pub struct PausingSampler {
    pub inner: super::sampler::Configured,
    pub pause: Arc<Pause>,
}

impl ShouldSample for PausingSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let result = self.inner.should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop || self.pause.records_span() {
            return result;
        }
        count("traces", 1);
        let trace_state = parent_context.map(|cx| cx.span().span_context().trace_state().clone()).unwrap_or_default();
        SamplingResult { decision: SamplingDecision::Drop, attributes: Vec::new(), trace_state }
    }
}

impl PausingSampler {
    /// Whether a span, child of `parent`, is recorded, when that is known
    /// in a few instructions: the configured sampler answers in place
    /// (`Configured::records`) and export is not paused. None when the
    /// whole decision is needed.
    pub fn records_at_once(&self, parent: &Context) -> Option<bool> {
        if self.pause.is_paused() {
            return None;
        }
        self.inner.records(parent)
    }

    /// Whether a span starting now is dropped for the pause (and
    /// counted, when the configured sampler would have recorded it), decided
    /// before the span is made: while export is paused, a span, its
    /// attributes and its context cost a request 2k instructions for
    /// nothing. Asked when `records_at_once` has no answer: during a pause,
    /// or with the SDK's samplers (outside a pause this is one atomic load).
    pub fn drops_for_pause(&self, parent: &Context, trace_id: TraceId, name: &str, kind: &SpanKind) -> bool {
        if !self.pause.skips_span() {
            return false;
        }
        let wanted = self.inner.records(parent).unwrap_or_else(|| {
            self.inner.should_sample(Some(parent), trace_id, name, kind, &[], &[]).decision != SamplingDecision::Drop
        });
        if wanted {
            count("traces", 1);
        }
        true
    }
}

#[derive(Debug)]
pub struct CountingSpanExporter<E>(pub E, pub super::queue::Queue, pub Arc<Pause>);

impl<E: SpanExporter> SpanExporter for CountingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let size = batch.len();
        self.1.exported(size);
        if !self.2.attempts_export() {
            // Dropped and counted: nothing more to report (the failure that
            // started the pause was), so the SDK logs no error per batch.
            count("traces", size);
            return Ok(());
        }
        let result = self.0.export(batch).await;
        self.2.judge(result.is_ok());
        if result.is_err() {
            count("traces", size);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

#[derive(Debug)]
pub struct CountingLogExporter<E>(pub E, pub super::queue::Queue, pub Arc<Pause>);

impl<E: LogExporter> LogExporter for CountingLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let size = batch.iter().count();
        self.1.exported(size);
        if !self.2.attempts_export() {
            count("logs", size);
            return Ok(());
        }
        let result = self.0.export(batch).await;
        self.2.judge(result.is_ok());
        if result.is_err() {
            count("logs", size);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

#[derive(Debug)]
pub struct CountingMetricExporter<E>(pub E);

impl<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>
    opentelemetry_sdk::metrics::exporter::PushMetricExporter for CountingMetricExporter<E>
{
    async fn export(&self, metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics) -> OTelSdkResult {
        let result = self.0.export(metrics).await;
        if result.is_err() {
            count("metrics", metrics.scope_metrics().map(|s| s.metrics().count()).sum());
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::Sampler;

    use super::*;
    use crate::telemetry::queue::Queue;

    /// Fails every export, and counts the attempts.
    #[derive(Debug, Default)]
    struct Down(AtomicUsize);

    impl SpanExporter for Down {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(OTelSdkError::InternalFailure("connection refused".into()))
        }
    }

    #[test]
    fn after_a_failed_export_batches_are_dropped_without_an_attempt_until_the_pause_ends() {
        let exporter = CountingSpanExporter(
            Down::default(),
            Queue::with_capacity(8),
            Arc::new(Pause::new(Duration::from_millis(200))),
        );
        let first = futures::executor::block_on(exporter.export(Vec::new()));
        assert!(first.is_err(), "the failure itself is reported");
        for _ in 0..5 {
            assert!(futures::executor::block_on(exporter.export(Vec::new())).is_ok());
        }
        assert_eq!(exporter.0.0.load(Ordering::Relaxed), 1, "no attempt while paused");
        std::thread::sleep(Duration::from_millis(250));
        assert!(futures::executor::block_on(exporter.export(Vec::new())).is_err());
        assert_eq!(exporter.0.0.load(Ordering::Relaxed), 2, "the first batch after the pause tries again");
    }

    #[test]
    fn spans_the_sampler_would_record_are_dropped_while_paused() {
        use crate::telemetry::sampler::Configured;
        let pause = Arc::new(Pause::new(Duration::from_secs(60)));
        let sampler = PausingSampler { inner: Configured::Sdk(Box::new(Sampler::AlwaysOn)), pause: pause.clone() };
        let decide = || sampler.should_sample(None, TraceId::from(7), "GET /", &SpanKind::Server, &[], &[]).decision;
        assert_eq!(decide(), SamplingDecision::RecordAndSample);
        pause.judge(false);
        assert_eq!(decide(), SamplingDecision::Drop);
        let counted = || DROPPED.get_or_create(&SignalLabels { signal: "traces" }).get();
        let before = counted();
        assert!(sampler.drops_for_pause(&Context::new(), TraceId::from(7), "GET /", &SpanKind::Server));
        assert_eq!(counted(), before + 1, "a span the sampler wanted is counted as dropped");
        let never = PausingSampler { inner: Configured::Sdk(Box::new(Sampler::AlwaysOff)), pause };
        assert!(never.drops_for_pause(&Context::new(), TraceId::from(7), "GET /", &SpanKind::Server));
        assert_eq!(counted(), before + 1, "one the sampler did not want is not");
        let decided = never.should_sample(None, TraceId::from(7), "GET /", &SpanKind::Server, &[], &[]);
        assert_eq!(decided.decision, SamplingDecision::Drop, "the configured sampler still decides first");
    }
}

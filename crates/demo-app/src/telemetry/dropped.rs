//! Telemetry that could not be delivered is counted, never retried in the
//! request path: exporter wrappers add the size of every failed batch to
//! `telemetry_dropped_total{signal}` (served with the Prometheus metrics).

use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    pub signal: &'static str,
}

/// Shared with the Prometheus registry (see `metrics.rs`).
pub static DROPPED: LazyLock<Family<SignalLabels, Counter>> = LazyLock::new(|| {
    let family = Family::<SignalLabels, Counter>::default();
    for signal in ["traces", "logs", "metrics"] {
        // Exposed at 0 from the start, so a rise is visible.
        let _ = family.get_or_create(&SignalLabels { signal });
    }
    family
});

pub fn count(signal: &'static str, items: usize) {
    DROPPED.get_or_create(&SignalLabels { signal }).inc_by(items as u64);
}

#[derive(Debug)]
pub struct CountingSpanExporter<E>(pub E, pub super::queue::Queue);

impl<E: SpanExporter> SpanExporter for CountingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let size = batch.len();
        self.1.exported(size);
        let result = self.0.export(batch).await;
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
pub struct CountingLogExporter<E>(pub E, pub super::queue::Queue);

impl<E: LogExporter> LogExporter for CountingLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let size = batch.iter().count();
        self.1.exported(size);
        let result = self.0.export(batch).await;
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

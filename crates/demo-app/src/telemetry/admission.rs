//! Counting what the batch processors would drop silently. The SDK's batch
//! processors drop a span or log record when their queue is full and keep
//! that count private. These wrappers keep their own count of items queued
//! but not yet handed to the exporter, refuse (and count in
//! `telemetry_dropped_total`) anything beyond the queue's capacity, so the
//! inner queue never overflows and every lost item is counted: here, or by
//! the exporter wrappers in `dropped.rs` when an export fails.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::dropped;
use super::pause::Pause;
use super::queue::Queue;

#[derive(Debug)]
pub struct SpanAdmission<P> {
    pub inner: P,
    pub queue: Queue,
}

impl<P: SpanProcessor> SpanProcessor for SpanAdmission<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Unsampled spans never enter the batch queue.
        if span.span_context.is_sampled() && !self.queue.admit() {
            dropped::count("traces", 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
pub struct LogAdmission<P> {
    pub inner: P,
    pub queue: Queue,
    /// Paused, a log record is not even built (the bridge visited its
    /// fields, copied the scope and queued it, for the exporter to drop it:
    /// an order stored cost that with the Collector down); it is counted as
    /// dropped, as the exporter counts those it drops. After the pause, the
    /// records of one probe batch are built again (`Pause::records_span`):
    /// their export decides.
    pub pause: Arc<Pause>,
}

impl<P: LogProcessor> LogProcessor for LogAdmission<P> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if !self.queue.admit() {
            dropped::count("logs", 1);
            return;
        }
        self.inner.emit(record, scope);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    /// Asked by the bridge once per event, before it builds the record.
    fn event_enabled(&self, level: opentelemetry::logs::Severity, target: &str, name: Option<&str>) -> bool {
        if !self.pause.records_span() {
            dropped::count("logs", 1);
            return false;
        }
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_are_not_built_while_log_export_is_paused_and_are_counted() {
        use opentelemetry::logs::{Logger as _, LoggerProvider as _, Severity};
        use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider, SimpleLogProcessor};

        let pause = Arc::new(Pause::new(Duration::from_millis(50)));
        let exporter = InMemoryLogExporter::default();
        let admission = LogAdmission {
            inner: SimpleLogProcessor::new(exporter),
            queue: Queue::with_capacity(8),
            pause: pause.clone(),
        };
        let logger = SdkLoggerProvider::builder().with_log_processor(admission).build().logger("test");
        let dropped = || dropped::DROPPED.get_or_create(&dropped::SignalLabels { signal: "logs" }).get();
        // What the tracing bridge asks before it builds a record.
        let enabled = || logger.event_enabled(Severity::Info, "demo_app::routes::orders", Some("order created"));
        assert!(enabled(), "exporting: the record is built");
        pause.judge(false);
        let before = dropped();
        assert!(!enabled(), "no record while paused");
        // At least: tests running beside this one may drop logs too.
        assert!(dropped() > before, "the record not built is counted as dropped");
        std::thread::sleep(Duration::from_millis(60));
        assert!(enabled(), "after the pause, a probe record is built");
    }

    #[test]
    fn admits_up_to_capacity_until_the_exporter_drains() {
        let queue = Queue::with_capacity(3);
        assert!((0..3).all(|_| queue.admit()));
        assert!(!queue.admit(), "the fourth item would overflow the inner queue");
        queue.exported(2);
        assert!(queue.admit() && queue.admit());
        assert!(!queue.admit());
        queue.exported(10);
        assert_eq!(queue.pending(), 0, "never below zero");
    }
}

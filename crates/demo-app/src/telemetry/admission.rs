//! Counting what the batch processors would drop silently. The SDK's batch
//! processors drop a span or log record when their queue is full and keep
//! that count private. These wrappers keep their own count of items queued
//! but not yet handed to the exporter, refuse (and count in
//! `telemetry_dropped_total`) anything beyond the queue's capacity, so the
//! inner queue never overflows and every lost item is counted: here, or by
//! the exporter wrappers in `dropped.rs` when an export fails.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::dropped;
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

    fn event_enabled(&self, level: opentelemetry::logs::Severity, target: &str, name: Option<&str>) -> bool {
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

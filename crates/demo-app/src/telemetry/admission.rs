//! Counting what the batch processors would drop silently. The SDK's batch
//! processors drop a span or log record when their queue is full and keep
//! that count private. These wrappers keep their own count of items queued
//! but not yet handed to the exporter, refuse (and count in
//! `telemetry_dropped_total`) anything beyond the queue's capacity, so the
//! inner queue never overflows and every lost item is counted: here, or by
//! the exporter wrappers in `dropped.rs` when an export fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::dropped;

/// Items admitted into a batch processor's queue and not yet exported.
#[derive(Debug, Clone)]
pub struct Queue {
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

impl Queue {
    /// `capacity` from the SDK's variable (e.g. OTEL_BSP_MAX_QUEUE_SIZE), else its default.
    pub fn from_env(variable: &str, default: usize) -> Self {
        let capacity = std::env::var(variable).ok().and_then(|v| v.parse().ok()).filter(|c| *c > 0).unwrap_or(default);
        Self { pending: Arc::new(AtomicUsize::new(0)), capacity }
    }

    /// True when the item may enter the queue.
    fn admit(&self) -> bool {
        self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then_some(n + 1)).is_ok()
    }

    /// The exporter took `n` items out of the queue.
    pub fn exported(&self, n: usize) {
        let _ = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some(p.saturating_sub(n)));
    }
}

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
        let queue = Queue { pending: Arc::new(AtomicUsize::new(0)), capacity: 3 };
        assert!((0..3).all(|_| queue.admit()));
        assert!(!queue.admit(), "the fourth item would overflow the inner queue");
        queue.exported(2);
        assert!(queue.admit() && queue.admit());
        assert!(!queue.admit());
        queue.exported(10);
        assert_eq!(queue.pending.load(Ordering::Relaxed), 0, "never below zero");
    }
}

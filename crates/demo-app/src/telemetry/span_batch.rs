//! The spans of HTTP requests on their way to the Collector: a bounded
//! queue the request threads push to (one uncontended lock), emptied by a
//! task on the export runtime when a batch is full or the batch delay has
//! passed. The SDK's batch processor, which still carries the gRPC server
//! spans, moved each ~400-byte `SpanData` through a channel and a buffer:
//! 0.8k instructions a span.
//!
//! Same settings, same accounting as the SDK's: OTEL_BSP_MAX_QUEUE_SIZE,
//! OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY; a span that
//! finds the queue full, or whose batch fails or falls in an export pause
//! (pause.rs), is counted in `telemetry_dropped_total{signal="traces"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::dropped;
use super::pause::Pause;
use super::queue::setting;
use super::span_encoding::{self, SharedFields};
use super::span_export::OtlpSpanExporter;
use super::span_record::{Finished, Sink};

#[derive(Debug)]
pub struct SpanBatch {
    queued: Mutex<Vec<Finished>>,
    capacity: usize,
    batch_size: usize,
    delay: Duration,
    /// Woken when a batch is full.
    full: Notify,
    exporter: OtlpSpanExporter,
    pause: Arc<Pause>,
    exporting: tokio::sync::Mutex<Exporting>,
}

impl SpanBatch {
    /// Sizes and delay from the SDK's variables, their defaults otherwise.
    pub fn from_env(vars: &HashMap<String, String>, exporter: OtlpSpanExporter, pause: Arc<Pause>) -> Self {
        let capacity = setting(vars, "OTEL_BSP_MAX_QUEUE_SIZE", 2048);
        // Never more than the queue holds (the SDK's rule too).
        let batch_size = setting(vars, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).min(capacity);
        Self {
            // A batch's room from the start: growing the queue from empty
            // after each swap cost a request 190 instructions of copying
            // (callgrind, `GET /api/info`), and it happens on request threads.
            queued: Mutex::new(Vec::with_capacity(batch_size)),
            capacity,
            batch_size,
            delay: Duration::from_millis(setting(vars, "OTEL_BSP_SCHEDULE_DELAY", 5000) as u64),
            full: Notify::new(),
            exporter,
            pause,
            exporting: tokio::sync::Mutex::new(Exporting {
                shared: SharedFields::default(),
                spans: Vec::with_capacity(batch_size),
            }),
        }
    }

    /// Exports whenever a batch is full or the delay has passed, for the
    /// life of the process, on `runtime` (never a thread serving requests).
    pub fn start(&'static self, runtime: &tokio::runtime::Handle) {
        runtime.spawn(async move {
            loop {
                let _ = tokio::time::timeout(self.delay, self.full.notified()).await;
                self.export_queued().await;
            }
        });
    }

    /// Sends what is queued now, a batch at a time (also at shutdown).
    pub async fn export_queued(&self) {
        // One export at a time (the task's, or the flush at shutdown).
        let mut exporting = self.exporting.lock().await;
        let Exporting { shared, spans } = &mut *exporting;
        // The queue takes the emptied buffer of the last export: no
        // allocation per batch once both have grown.
        std::mem::swap(spans, &mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
        for batch in spans.chunks(self.batch_size) {
            if !self.pause.attempts_export() {
                dropped::count("traces", batch.len());
                continue;
            }
            let body = span_encoding::records_request(self.exporter.resource(), shared, batch);
            let result = self.exporter.send(Bytes::from(body)).await;
            self.pause.judge(result.is_ok());
            if let Err(error) = result {
                dropped::count("traces", batch.len());
                // Target `opentelemetry`: never exported itself (telemetry/mod.rs).
                tracing::warn!(target: "opentelemetry", %error, spans = batch.len(), "request spans were not exported");
            }
        }
        spans.clear();
    }
}

/// What only the exporting side touches.
#[derive(Debug)]
struct Exporting {
    shared: SharedFields,
    /// The spans being exported; between exports, an empty buffer.
    spans: Vec<Finished>,
}

impl Sink for SpanBatch {
    fn finish(&self, span: Finished) {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        if queued.len() >= self.capacity {
            drop(queued);
            dropped::count("traces", 1);
            return;
        }
        queued.push(span);
        let full = queued.len() == self.batch_size;
        drop(queued);
        if full {
            self.full.notify_one();
        }
    }
}

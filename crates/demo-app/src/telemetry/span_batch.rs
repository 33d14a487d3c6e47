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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::dropped;
use super::otlp_export::OtlpSpanExporter;
use super::pause::Pause;
use super::queue::setting;
use super::span_encoding::{self, SharedFields};
use super::span_record::{Finished, Sink};

#[derive(Debug)]
pub struct SpanBatch {
    queued: Mutex<Batches>,
    delay: Duration,
    /// Woken when a batch is full.
    full: Notify,
    exporter: OtlpSpanExporter,
    pause: Arc<Pause>,
    /// One export at a time (the task's, or the flush at shutdown), and
    /// what only the exporting side touches.
    exporting: tokio::sync::Mutex<Exporting>,
}

#[derive(Debug, Default)]
struct Exporting {
    shared: SharedFields,
    /// The buffer batches are encoded into, back from the exporter after
    /// each send: a fresh one a batch (160 KiB) left freed blocks behind for
    /// the allocator to return later, half a MiB more resident under load.
    body: Vec<u8>,
}

impl SpanBatch {
    /// Sizes and delay from the SDK's variables, their defaults otherwise.
    pub fn from_env(vars: &HashMap<String, String>, exporter: OtlpSpanExporter, pause: Arc<Pause>) -> Self {
        let capacity = setting(vars, "OTEL_BSP_MAX_QUEUE_SIZE", 2048);
        // Never more than the queue holds (the SDK's rule too).
        let batch_size = setting(vars, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).min(capacity);
        Self {
            queued: Mutex::new(Batches::new(capacity, batch_size)),
            delay: Duration::from_millis(setting(vars, "OTEL_BSP_SCHEDULE_DELAY", 5000) as u64),
            full: Notify::new(),
            exporter,
            pause,
            exporting: tokio::sync::Mutex::new(Exporting::default()),
        }
    }

    /// Exports whenever a batch is full or the delay has passed, for the
    /// life of the process, on `runtime` (never a thread serving requests).
    pub fn start(&'static self, runtime: &tokio::runtime::Handle) {
        runtime.spawn(async move {
            loop {
                let delay_passed = tokio::time::timeout(self.delay, self.full.notified()).await.is_err();
                self.export_queued(delay_passed).await;
            }
        });
    }

    /// Sends the whole batches queued, a batch at a time, and with `all`
    /// (the delay has passed, or at shutdown) the one being filled, once:
    /// taking it again while it refilled during each send made exports of a
    /// few dozen spans, 12k instructions a request over gRPC.
    pub async fn export_queued(&self, all: bool) {
        let mut exporting = self.exporting.lock().await;
        let mut partial = all;
        loop {
            // The lock released before the export (a `while let` would hold it).
            let Some(mut batch) = self.lock().take(&mut partial) else { break };
            self.export(&mut exporting, &batch).await;
            batch.clear();
            self.lock().recycle(batch);
        }
    }

    async fn export(&self, exporting: &mut Exporting, batch: &[Finished]) {
        if !self.pause.attempts_export() {
            dropped::count("traces", batch.len());
            return;
        }
        let Exporting { shared, body } = exporting;
        span_encoding::records_request(body, self.exporter.resource(), shared, batch);
        let sent = Bytes::from(std::mem::take(body));
        let result = self.exporter.send(sent.clone()).await;
        // The sender's copies are dropped once it has its answer; if one is
        // still held, the next batch takes a new buffer.
        *body = sent.try_into_mut().map(Vec::from).unwrap_or_default();
        self.pause.judge(result.is_ok());
        if let Err(error) = result {
            dropped::count("traces", batch.len());
            // Target `opentelemetry`: never exported itself (telemetry/mod.rs).
            tracing::warn!(target: "opentelemetry", %error, spans = batch.len(), "request spans were not exported");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Batches> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for SpanBatch {
    fn finish(&self, span: Finished) {
        let pushed = self.lock().push(span);
        match pushed {
            Pushed::Queued => {}
            Pushed::BatchFull => self.full.notify_one(),
            Pushed::Dropped => dropped::count("traces", 1),
        }
    }
}

/// The queue as batches of the export's size: the exporter takes the oldest
/// whole batch and hands its buffer back emptied. One buffer the size of the
/// queue, swapped whole with the exporter's, had grown both to the queue's
/// size under load: 2 × 2048 spans of 240 bytes, about 1 MiB resident for
/// what is at most the queue and the batch on its way.
#[derive(Debug)]
struct Batches {
    /// Whole batches, oldest first.
    full: VecDeque<Vec<Finished>>,
    /// The batch the request threads fill.
    filling: Vec<Finished>,
    /// Emptied buffers, a batch's room each: no allocation per batch once
    /// the queue has been full once.
    spare: Vec<Vec<Finished>>,
    capacity: usize,
    batch_size: usize,
}

#[derive(Debug, PartialEq)]
enum Pushed {
    Queued,
    /// The span completed a batch: time to wake the exporter.
    BatchFull,
    /// The queue was full: the span is lost, to be counted.
    Dropped,
}

impl Batches {
    fn new(capacity: usize, batch_size: usize) -> Self {
        // A batch's room from the start: growing the buffer from empty cost a
        // request 190 instructions of copying (callgrind, `GET /api/info`),
        // and it happens on request threads.
        Self { full: VecDeque::new(), filling: Vec::with_capacity(batch_size), spare: Vec::new(), capacity, batch_size }
    }

    fn len(&self) -> usize {
        self.full.len() * self.batch_size + self.filling.len()
    }

    fn push(&mut self, span: Finished) -> Pushed {
        if self.len() >= self.capacity {
            return Pushed::Dropped;
        }
        self.filling.push(span);
        if self.filling.len() < self.batch_size {
            return Pushed::Queued;
        }
        let batch = self.start_next();
        self.full.push_back(batch);
        Pushed::BatchFull
    }

    /// The oldest whole batch, else, if `partial` (then cleared), the one
    /// being filled; None when there is neither.
    fn take(&mut self, partial: &mut bool) -> Option<Vec<Finished>> {
        if let Some(batch) = self.full.pop_front() {
            return Some(batch);
        }
        if !std::mem::take(partial) || self.filling.is_empty() {
            return None;
        }
        Some(self.start_next())
    }

    /// The batch being filled, replaced by a spare buffer (or a new one).
    fn start_next(&mut self) -> Vec<Finished> {
        let next = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(self.batch_size));
        std::mem::replace(&mut self.filling, next)
    }

    fn recycle(&mut self, batch: Vec<Finished>) {
        debug_assert!(batch.is_empty());
        self.spare.push(batch);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;
    use crate::telemetry::span_record::Detail;

    fn spans(n: usize) -> impl Iterator<Item = Finished> {
        (0..n).map(|_| Finished {
            trace_id: TraceId::from(1),
            span_id: SpanId::from(2),
            parent_span_id: SpanId::INVALID,
            parent_is_remote: false,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::NONE,
            name: "GET /healthz",
            start: 1,
            end: 2,
            detail: Detail::Server { method: "GET", path: "/healthz".into(), route: None, method_original: None },
            status: 200,
            error: None,
            exception: None,
            sampler_attributes: Vec::new(),
        })
    }

    #[test]
    fn batches_leave_whole_and_oldest_first_and_a_full_queue_drops() {
        let mut queue = Batches::new(6, 4);
        let pushed: Vec<_> = spans(7).map(|s| queue.push(s)).collect();
        assert_eq!(pushed[3], Pushed::BatchFull, "the fourth span completes a batch");
        assert_eq!(&pushed[4..], [Pushed::Queued, Pushed::Queued, Pushed::Dropped], "six at most");
        let mut partial = false;
        assert_eq!(queue.take(&mut partial).map(|b| b.len()), Some(4), "the whole batch first");
        assert!(queue.take(&mut partial).is_none(), "the one being filled waits for the delay");
        let mut partial = true;
        assert_eq!(queue.take(&mut partial).map(|b| b.len()), Some(2), "then goes");
        queue.push(spans(1).next().unwrap());
        assert!(queue.take(&mut partial).is_none(), "once: what came during its send waits");
    }

    #[test]
    fn buffers_are_reused_and_never_grow_past_a_batch() {
        let mut queue = Batches::new(8, 4);
        for _ in 0..3 {
            spans(8).for_each(|s| assert_ne!(queue.push(s), Pushed::Dropped));
            while let Some(mut batch) = queue.take(&mut true) {
                assert_eq!(batch.capacity(), 4, "a batch's room, never the queue's");
                batch.clear();
                queue.recycle(batch);
            }
        }
        // The three buffers of the first round (two whole batches and the
        // one filled next), reused ever since.
        assert_eq!(queue.spare.len(), 2, "and the one being filled");
    }

    #[tokio::test]
    async fn each_batch_is_encoded_into_the_buffer_the_last_send_handed_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let collector = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
        tokio::spawn(async move { axum::serve(listener, collector).await });
        let exporter = OtlpSpanExporter::http(
            &url,
            &[],
            reqwest::Client::new(),
            Duration::from_secs(5),
            tokio::runtime::Handle::current(),
        )
        .unwrap();
        let batch = SpanBatch::from_env(&HashMap::new(), exporter, Arc::new(Pause::new(Duration::from_secs(5))));
        let mut buffers = Vec::new();
        for _ in 0..3 {
            spans(10).for_each(|span| batch.finish(span));
            batch.export_queued(true).await;
            let exporting = batch.exporting.lock().await;
            assert!(exporting.body.capacity() > 0, "the buffer came back from the send");
            buffers.push(exporting.body.as_ptr());
        }
        assert!(buffers.windows(2).all(|pair| pair[0] == pair[1]), "one allocation for every batch: {buffers:?}");
    }
}

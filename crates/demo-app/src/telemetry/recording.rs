//! Which spans are recorded and where they go: the sink and sampler every
//! span of an HTTP request shares (the server span of `http.rs`, the client
//! call of `http::send`, the database operations of `store/mod.rs`), their
//! ids, and `ChildSpan`, a span started inside a request.
//!
//! Unset, requests make no span (telemetry off).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceId};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use super::dropped::PausingSampler;
use super::pause::{self, Pause};
use super::sampler::Configured;
use super::span_record::{self, Detail, Finished, Sink};

#[derive(Debug)]
pub(super) struct Recorder {
    /// For the life of the process: a reference, not an `Arc`, saves each
    /// span a forwarding call and a copy of its record.
    sink: &'static dyn Sink,
    sampler: PausingSampler,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Spans from now on go to `sink`, recorded when `sampler` says so: a
/// test's SDK span processor (`span_record::ToProcessor`).
pub fn trace_with(sink: impl Sink + 'static, sampler: impl ShouldSample + 'static) {
    let pause = Arc::new(Pause::new(pause::LENGTH));
    trace_paused_with(Box::leak(Box::new(sink)), PausingSampler { inner: Configured::Sdk(Box::new(sampler)), pause });
}

/// `trace_with`, with the sampler that pauses with the export (`telemetry::init`).
pub(super) fn trace_paused_with(sink: &'static dyn Sink, sampler: PausingSampler) {
    let _ = RECORDER.set(Recorder { sink, sampler });
}

/// None while telemetry is off.
pub(super) fn recorder() -> Option<&'static Recorder> {
    RECORDER.get()
}

thread_local! {
    /// Ids as the SDK's own generator makes them: a small fast generator
    /// per thread, seeded from the OS (`rand::rng()`, a ChaCha block
    /// cipher, cost about 30 instructions a span more).
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

fn random_id<T>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    IDS.with(|ids| ids.borrow_mut().random())
}

impl Recorder {
    /// A span named `name`, child of `parent` (or a root in a trace of its
    /// own): its context, and its recording when it is sampled and export is
    /// not paused (while it is, the sampler is not even asked). `detail`
    /// is built only for a recorded span.
    pub(super) fn start(
        &self,
        parent: &Context,
        name: &'static str,
        kind: SpanKind,
        detail: impl FnOnce() -> Detail,
    ) -> (Option<Recording>, SpanContext) {
        let parent_span = parent.span();
        let known = parent_span.span_context();
        let trace_id = if known.is_valid() { known.trace_id() } else { TraceId::from(random_id::<u128>()) };
        // The trace state as the sampler leaves it: the parent's, unless the
        // SDK's sampler says otherwise.
        let (recorded, trace_state, sampler_attributes) = match self.sampler.records_at_once(parent) {
            Some(recorded) => (recorded, known.trace_state().clone(), Vec::new()),
            None => {
                let sampling = (!self.sampler.drops_for_pause(parent, trace_id, name, &kind))
                    .then(|| self.sampler.should_sample(Some(parent), trace_id, name, &kind, &[], &[]));
                match sampling {
                    Some(s) => (s.decision == SamplingDecision::RecordAndSample, s.trace_state, s.attributes),
                    None => (false, known.trace_state().clone(), Vec::new()),
                }
            }
        };
        let span_id = SpanId::from(random_id::<u64>());
        // The SDK's rules: the parent's flags, sampled or not as decided.
        let flags = known.trace_flags().with_sampled(recorded);
        let context = SpanContext::new(trace_id, span_id, flags, false, trace_state.clone());
        let record = recorded.then(|| Finished {
            trace_id,
            span_id,
            parent_span_id: if known.is_valid() { known.span_id() } else { SpanId::INVALID },
            parent_is_remote: known.is_valid() && known.is_remote(),
            flags,
            trace_state,
            name,
            start: span_record::now(),
            end: 0,
            detail: detail(),
            status: 0,
            error: None,
            exception: None,
            sampler_attributes,
        });
        (record.map(|span| Recording { span, sink: self.sink }), context)
    }
}

/// A span being recorded, and where it goes when it ends.
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) span: Finished,
    sink: &'static dyn Sink,
}

impl Recording {
    /// Ends the span, now unless its end is known, and hands it to the sink.
    pub(super) fn finish(mut self) {
        if self.span.end == 0 {
            self.span.end = span_record::now();
        }
        self.sink.finish(self.span);
    }
}

/// A client span started inside a request (an HTTP call, a database
/// operation), child of the current context: the server span's while its
/// handler runs. Ends when dropped; dropped before its outcome was told
/// (`status`, `fail`, `succeed`), its caller gave up on it: it ends as an
/// error, `error.type` "cancelled".
pub struct ChildSpan {
    /// None while not recorded (not sampled, export paused, telemetry off).
    recording: Option<Recording>,
    /// None while telemetry is off.
    context: Option<SpanContext>,
    outcome_told: bool,
}

impl ChildSpan {
    /// Starts a span named `name`; `detail` is built only if it is recorded.
    pub fn start(name: &'static str, detail: impl FnOnce() -> Detail) -> Self {
        let Some(recorder) = recorder() else {
            return Self { recording: None, context: None, outcome_told: false };
        };
        let (recording, context) =
            Context::map_current(|parent| recorder.start(parent, name, SpanKind::Client, detail));
        Self { recording, context: Some(context), outcome_told: false }
    }

    /// The context to hand downstream: the current one (baggage included)
    /// with this span in it.
    pub fn outgoing(&self) -> Context {
        match &self.context {
            Some(span) => Context::current().with_remote_span_context(span.clone()),
            None => Context::current(),
        }
    }

    /// `http.response.status_code` of the answer received.
    pub fn status(&mut self, status: u16) {
        self.outcome_told = true;
        if let Some(recording) = &mut self.recording {
            recording.span.status = status;
        }
    }

    /// The operation succeeded (one without a status code).
    pub fn succeed(&mut self) {
        self.outcome_told = true;
    }

    /// The operation failed: `error.type`, and an `exception` event with
    /// `message` (made only for a recorded span).
    pub fn fail(&mut self, error: &'static str, message: impl FnOnce() -> String) {
        self.outcome_told = true;
        if let Some(recording) = &mut self.recording {
            recording.span.error = Some(error);
            recording.span.exception = Some((span_record::now(), message()));
        }
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        if let Some(mut recording) = self.recording.take() {
            if !self.outcome_told {
                recording.span.error = Some("cancelled");
            }
            recording.finish();
        }
    }
}

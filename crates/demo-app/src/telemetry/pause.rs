//! What telemetry does while the Collector cannot be reached. After an
//! export fails (the exporter's own retries included), export pauses: the
//! batches already queued are dropped without an attempt, and new spans are
//! not recorded at all (`dropped::PausingSampler`), both counted in
//! `telemetry_dropped_total`. Recording, queueing and then dropping a span
//! per request cost `GET /api/info` a quarter of its throughput with the
//! Collector down, for telemetry nobody would receive (docs/benchmarks.md).
//!
//! When the pause is over, a few spans are recorded again (`PROBE_SPANS`)
//! and the batch they are in is the next attempt: success ends the pause,
//! failure starts another. Spans flow again within a pause and a batch
//! delay of the Collector's return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long export pauses after a failed one.
pub const LENGTH: Duration = Duration::from_secs(5);

/// Spans recorded after a pause to find out whether the Collector is back:
/// the batch processor's default batch, which it sends as soon as it is full
/// (a smaller probe would wait for the batch delay, 5 s, under any load).
pub const PROBE_SPANS: u32 = 512;

#[derive(Debug)]
pub struct Pause {
    length: Duration,
    /// False while exports succeed: a span then costs one atomic load here.
    paused: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Exporting,
    Paused {
        until: Instant,
    },
    /// The pause is over and the next export decides; `spans_left` more
    /// spans may be recorded until then.
    Probing {
        spans_left: u32,
    },
}

impl Pause {
    pub fn new(length: Duration) -> Self {
        Self { length, paused: AtomicBool::new(false), state: Mutex::new(State::Exporting) }
    }

    /// Whether a failed export has paused recording and export (a probe
    /// may be under way).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Whether a new span is recorded.
    pub fn records_span(&self) -> bool {
        !self.paused.load(Ordering::Acquire) || self.records_span_at(Instant::now())
    }

    fn records_span_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (records, next) = match *state {
            State::Exporting => (true, State::Exporting),
            State::Paused { until } if now < until => (false, State::Paused { until }),
            State::Paused { .. } => (true, State::Probing { spans_left: PROBE_SPANS - 1 }),
            State::Probing { spans_left: 0 } => (false, State::Probing { spans_left: 0 }),
            State::Probing { spans_left } => (true, State::Probing { spans_left: spans_left - 1 }),
        };
        *state = next;
        records
    }

    /// Whether a span starting now is not recorded, asked without taking
    /// one of the probe's spans (`records_span` takes them).
    pub fn skips_span(&self) -> bool {
        self.paused.load(Ordering::Acquire) && self.skips_span_at(Instant::now())
    }

    fn skips_span_at(&self, now: Instant) -> bool {
        match *self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Paused { until } => now < until,
            State::Probing { spans_left } => spans_left == 0,
            State::Exporting => false,
        }
    }

    /// Whether a batch is sent, or dropped without an attempt.
    pub fn attempts_export(&self) -> bool {
        !self.paused.load(Ordering::Acquire) || self.attempts_export_at(Instant::now())
    }

    fn attempts_export_at(&self, now: Instant) -> bool {
        !matches!(*self.state.lock().unwrap_or_else(PoisonError::into_inner), State::Paused { until } if now < until)
    }

    /// The outcome of an export that was attempted.
    pub fn judge(&self, succeeded: bool) {
        self.judge_at(succeeded, Instant::now());
    }

    fn judge_at(&self, succeeded: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = if succeeded { State::Exporting } else { State::Paused { until: now + self.length } };
        self.paused.store(!succeeded, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_failed_export_pauses_recording_and_export_until_a_probe_succeeds() {
        let pause = Pause::new(5 * SECOND);
        let t0 = Instant::now();
        assert!(pause.records_span() && pause.attempts_export(), "exporting until something fails");

        pause.judge_at(false, t0);
        assert!(!pause.records_span_at(t0 + SECOND), "no span recorded during the pause");
        assert!(!pause.attempts_export_at(t0 + SECOND), "queued batches dropped during the pause");

        assert!(pause.skips_span_at(t0 + SECOND), "asked without a span: skipped too");
        let over = t0 + 5 * SECOND;
        assert!(!pause.skips_span_at(over), "the pause is over: the probe may start");
        let probes = (0..PROBE_SPANS + 10).filter(|_| pause.records_span_at(over)).count();
        assert_eq!(probes, PROBE_SPANS as usize, "after the pause only the probe spans are recorded");
        assert!(pause.skips_span_at(over), "the probe's spans are taken");
        assert!(pause.attempts_export_at(over), "the probe's batch is sent");

        pause.judge_at(false, over);
        assert!(!pause.records_span_at(over + SECOND), "a failed probe starts another pause");
        assert!(pause.records_span_at(over + 5 * SECOND));

        pause.judge(true);
        assert!((0..1000).all(|_| pause.records_span()), "a successful export ends the pause");
        assert!(pause.attempts_export());
    }
}

//! The count of items a batch processor holds: admitted by the processor
//! wrappers (admission.rs), released by the exporter wrappers (dropped.rs)
//! once the exporter took them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        Self::with_capacity(capacity)
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self { pending: Arc::new(AtomicUsize::new(0)), capacity }
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// True when the item may enter the queue.
    pub(super) fn admit(&self) -> bool {
        self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then_some(n + 1)).is_ok()
    }

    /// The exporter took `n` items out of the queue.
    pub fn exported(&self, n: usize) {
        let _ = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some(p.saturating_sub(n)));
    }
}

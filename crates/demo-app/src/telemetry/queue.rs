//! The count of items a batch processor holds: admitted by the processor
//! wrappers (admission.rs), released by the exporter wrappers (dropped.rs)
//! once the exporter took them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A positive whole number from the SDK's `variable`, else its default.
pub fn setting(vars: &HashMap<String, String>, variable: &str, default: usize) -> usize {
    vars.get(variable).and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// Items admitted into a batch processor's queue and not yet exported.
#[derive(Debug, Clone)]
pub struct Queue {
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

impl Queue {
    /// `capacity` from the SDK's variable (e.g. OTEL_BSP_MAX_QUEUE_SIZE), else its default.
    pub fn from_env(vars: &HashMap<String, String>, variable: &str, default: usize) -> Self {
        Self::with_capacity(setting(vars, variable, default))
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

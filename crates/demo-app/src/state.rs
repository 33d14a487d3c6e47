//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::memory_budget::MemoryBudget;
use crate::metrics::Metrics;
use crate::store::Store;

/// Probe and fault flags, flipped by control routes and by shutdown.
#[derive(Debug)]
pub struct Flags {
    healthy: AtomicBool,
    ready: AtomicBool,
    shutting_down: AtomicBool,
    fault_injection: AtomicBool,
}

impl Flags {
    pub fn new(healthy: bool, ready: bool) -> Self {
        Self {
            healthy: AtomicBool::new(healthy),
            ready: AtomicBool::new(ready),
            shutting_down: AtomicBool::new(false),
            fault_injection: AtomicBool::new(false),
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Ready as configured, and not draining.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutting_down()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Shutdown turns readiness off for good: a draining pod never comes back.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn fault_injection(&self) -> bool {
        self.fault_injection.load(Ordering::Relaxed)
    }

    pub fn set_fault_injection(&self, on: bool) {
        self.fault_injection.store(on, Ordering::Relaxed);
    }
}

/// What every handler shares, behind one `Arc`: axum clones the state for
/// each request and each layer that takes it, and a clone of the fields one
/// by one (nine reference counts, the store's and the HTTP client's
/// included) cost about 3k instructions a request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub hostname: Arc<str>,
    pub flags: Arc<Flags>,
    /// `None` for the frontend role, which keeps no state of its own.
    pub store: Option<Store>,
    /// For echo fan-out and checkout → orders calls.
    pub http: reqwest::Client,
    pub jwt_secret: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// Memory clients may make the process hold (request bodies, WebSockets).
    pub memory: MemoryBudget,
    /// GET /api/info's JSON around its one changing value (routes/info.rs).
    pub info_document: std::sync::OnceLock<(String, String)>,
}

/// Lets the metrics handler and middleware take only the metrics.
impl axum::extract::FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

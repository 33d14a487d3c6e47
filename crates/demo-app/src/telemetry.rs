//! Logs now; OpenTelemetry traces, metrics and logs join here (issue 4).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// JSON lines on stdout at `level` (RUST_LOG overrides it).
pub fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn")));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_events(FmtSpan::NONE)
        .try_init();
}

/// Flushes telemetry before exit; nothing is buffered yet.
pub fn flush() {}

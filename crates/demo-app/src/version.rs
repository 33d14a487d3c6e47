//! Build identity, stamped by build.rs from the environment of the build.

/// The crate version (the chart's appVersion follows it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or "unknown".
pub const REVISION: &str = match option_env!("DEMO_APP_REVISION") {
    Some(rev) => rev,
    None => "unknown",
};

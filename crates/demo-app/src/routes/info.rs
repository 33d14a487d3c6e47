//! GET /api/info (and / for non-browsers) and GET /version, with podinfo's keys.

use std::fmt::Write as _;

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::AppState;
use crate::version::{REVISION, VERSION};

/// podinfo's info document; every value is a string, as there. The `go*`
/// keys keep their names for compatibility and describe this Rust binary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Info {
    pub hostname: String,
    pub version: String,
    pub revision: String,
    pub color: String,
    pub logo: String,
    pub message: String,
    pub goos: String,
    pub goarch: String,
    pub runtime: String,
    pub num_goroutine: String,
    pub num_cpu: String,
}

pub fn info(state: &AppState) -> Info {
    let config = &state.config;
    Info {
        hostname: state.hostname.to_string(),
        version: VERSION.into(),
        revision: REVISION.into(),
        color: config.ui_color.clone(),
        logo: config.ui_logo.clone(),
        message: config.ui_message.clone(),
        goos: std::env::consts::OS.into(),
        goarch: std::env::consts::ARCH.into(),
        runtime: format!("rust (tokio {} workers)", tokio::runtime::Handle::current().metrics().num_workers()),
        num_goroutine: tokio::runtime::Handle::current().metrics().num_alive_tasks().to_string(),
        num_cpu: num_cpu().to_string(),
    }
}

#[utoipa::path(get, path = "/api/info", operation_id = "getInfo", tag = "podinfo", responses((status = 200, body = Info)))]
pub fn handler(state: &AppState) -> Response {
    // Synchronous and of the state alone: served by the exact routes
    // (exact.rs) as well as by the router. Everything but the task count is
    // fixed for the process: serialized once, the document is two copies
    // and a number (it is the route load balancers and benchmarks hit most).
    let (head, tail) = state.info_document.get_or_init(|| split_document(state));
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let mut body = String::with_capacity(head.len() + tail.len() + 20);
    body.push_str(head);
    let _ = write!(body, "{tasks}");
    body.push_str(tail);
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The info document's JSON around the value of `num_goroutine`.
fn split_document(state: &AppState) -> (String, String) {
    const MARK: &str = "\u{1}tasks\u{1}";
    let mut document = info(state);
    document.num_goroutine = MARK.into();
    let json = serde_json::to_string(&document).expect("strings always serialize");
    let quoted = serde_json::to_string(MARK).expect("strings always serialize");
    let at = json.find(&quoted).expect("the mark is in the document");
    // Keep the quotes around the number: podinfo's values are all strings.
    (json[..=at].to_string(), json[at + quoted.len() - 1..].to_string())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Version {
    commit: &'static str,
    version: &'static str,
}

#[utoipa::path(get, path = "/version", operation_id = "getVersion", tag = "podinfo", responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version { commit: REVISION, version: VERSION })
}

/// Read once: `available_parallelism` reads the affinity mask and the cgroup
/// CPU quota files on every call (~20 syscalls), which cost two thirds of
/// `/api/info`'s throughput in `make bench`.
fn num_cpu() -> usize {
    static NUM_CPU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *NUM_CPU.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

//! Probes: /healthz (liveness), /readyz (readiness) and the readiness switches.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// A readiness check must answer well inside the kubelet's probe timeout.
const STORE_PING_TIMEOUT: Duration = Duration::from_millis(1500);

/// podinfo's answer, written once: probes and load balancers ask often.
fn ok() -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], r#"{"status":"OK"}"#).into_response()
}

/// Live unless switched off, or the store is broken in a way only a restart
/// mends (a transient database outage is readiness' business, not this).
/// Synchronous and of the state alone: served by the exact routes
/// (exact.rs) as well as by the router.
pub fn healthz(state: &AppState) -> Response {
    if !is_live(state) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ok()
}

/// /healthz on the metrics port, where the chart's liveness probe goes (a
/// flooded app port is slow, not dead): the same verdict, podinfo's body.
pub async fn metrics_port_healthz(State(state): State<AppState>) -> Response {
    if !is_live(&state) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    "OK".into_response()
}

fn is_live(state: &AppState) -> bool {
    if !state.flags.healthy() {
        return false;
    }
    if let Some(why) = state.store.as_ref().and_then(|store| store.broken_for_good()) {
        tracing::error!(error = %why, "not live: the store needs a restart");
        return false;
    }
    true
}

/// Below this much free space on the data volume, writes (orders, /store)
/// would fail: the pod takes no traffic until space is freed.
const MIN_FREE_BYTES: u64 = 1 << 20;

/// Ready when switched on, not draining, the data volume has room to write,
/// and the database (if this role has one) answers within the timeout.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !state.flags.ready() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // statvfs blocks on a hung volume: off the async workers, bounded.
    let path = state.config.data_path.clone();
    match tokio::time::timeout(STORE_PING_TIMEOUT, tokio::task::spawn_blocking(move || volume_room(&path))).await {
        Ok(Ok(Some(Room::ReadOnly))) => {
            tracing::warn!(path = %state.config.data_path.display(), "not ready: the data volume is read-only");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Ok(Ok(Some(Room::Free(free)))) if free < MIN_FREE_BYTES => {
            tracing::warn!(free_bytes = free, path = %state.config.data_path.display(), "not ready: the data volume is full");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Err(_) => {
            tracing::warn!(path = %state.config.data_path.display(), "not ready: the data volume does not answer");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        _ => {}
    }
    if let Some(store) = &state.store {
        match tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "not ready: database ping failed");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            Err(_) => {
                tracing::warn!("not ready: database ping timed out");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    ok()
}

pub async fn enable(State(state): State<AppState>) -> StatusCode {
    state.flags.set_ready(true);
    StatusCode::ACCEPTED
}

pub async fn disable(State(state): State<AppState>) -> StatusCode {
    state.flags.set_ready(false);
    StatusCode::ACCEPTED
}

enum Room {
    /// Bytes an unprivileged writer may still use.
    Free(u64),
    /// Mounted read-only (e.g. remounted by the node after disk errors).
    ReadOnly,
}

/// What the volume holding `path` can still take (None when it cannot be
/// asked, e.g. the folder does not exist yet).
fn volume_room(path: &std::path::Path) -> Option<Room> {
    let stats = rustix::fs::statvfs(path).ok()?;
    if stats.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Some(Room::ReadOnly);
    }
    Some(Room::Free(stats.f_bavail.saturating_mul(stats.f_frsize)))
}

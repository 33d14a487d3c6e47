//! Chaos switches: fault injection on/off and /panic. Mounted only with
//! --control-endpoints (on by default for podinfo parity, off in production).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn enable_faults(State(state): State<AppState>) -> StatusCode {
    tracing::warn!("fault injection enabled: app routes now answer 500");
    state.flags.set_fault_injection(true);
    StatusCode::ACCEPTED
}

pub async fn disable_faults(State(state): State<AppState>) -> StatusCode {
    tracing::info!("fault injection disabled");
    state.flags.set_fault_injection(false);
    StatusCode::ACCEPTED
}

pub async fn fault_status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "enabled": state.flags.fault_injection() }))
}

/// Exits with 255 at once, as podinfo does, to exercise restarts.
pub async fn panic() {
    tracing::error!("panic command received, exiting with 255");
    std::process::exit(255);
}

//! GET /delay/{seconds}: answers after waiting.

use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api_error::PodinfoError;

/// Longer waits are refused rather than left to time out somewhere else.
pub const MAX_DELAY_SECONDS: u64 = 600;

pub fn parse_seconds(raw: &str) -> Result<u64, PodinfoError> {
    raw.parse::<u64>().ok().filter(|s| *s <= MAX_DELAY_SECONDS).ok_or_else(|| {
        PodinfoError::new(StatusCode::BAD_REQUEST, format!("invalid delay {raw:?}: use 0-{MAX_DELAY_SECONDS} seconds"))
    })
}

#[utoipa::path(get, path = "/delay/{seconds}", operation_id = "delay", tag = "podinfo",
    params(("seconds" = u64, Path)), responses((status = 200, description = "`{\"delay\": seconds}`"), (status = 400, description = "not a number of seconds, or too many")))]
pub async fn handler(Path(seconds): Path<String>) -> Result<Json<Value>, PodinfoError> {
    let seconds = parse_seconds(&seconds)?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(Json(json!({ "delay": seconds })))
}

//! Error bodies. Two shapes on purpose:
//! - podinfo's routes answer `{"code": N, "message": "..."}` (its JSON keys,
//!   so podinfo clients keep working), but with the real HTTP status where
//!   podinfo always sent 200;
//! - our own APIs (orders, checkout) answer `{"error": "...", "detail": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// podinfo's error body, with a truthful status.
#[derive(Debug)]
pub struct PodinfoError {
    pub status: StatusCode,
    pub message: String,
}

impl PodinfoError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

#[derive(Serialize)]
struct PodinfoErrorBody<'a> {
    code: u16,
    message: &'a str,
}

impl IntoResponse for PodinfoError {
    fn into_response(self) -> Response {
        let body = PodinfoErrorBody { code: self.status.as_u16(), message: &self.message };
        (self.status, Json(body)).into_response()
    }
}

/// axum's own rejections (a body over the limit on a route that reads raw
/// bytes, a method the route does not take, an unknown path) answer plain
/// text or nothing; every error this server sends is JSON, so these become
/// podinfo's shape (`as_json`) with the same status and headers (`Allow`
/// stays).
pub fn is_plain_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response.headers().get(CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"))
}

/// A plain-text error answer in podinfo's JSON shape (see `is_plain_error`).
pub async fn as_json(response: Response) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    // Rejection texts are one line; a longer body is not buffered (the
    // status's reason phrase stands in for it).
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
        text => text.to_string(),
    };
    let mut json = PodinfoError::new(status, message).into_response();
    for (name, value) in parts.headers.iter().filter(|(n, _)| **n != CONTENT_TYPE && **n != CONTENT_LENGTH) {
        json.headers_mut().append(name.clone(), value.clone());
    }
    json
}

/// Error of the orders and checkout APIs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Short machine-friendly kind, e.g. `validation_failed`.
    pub error: String,
    /// What went wrong and, for validation, which field.
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, detail: impl Into<String>) -> Self {
        Self { status, error: error.into(), detail: detail.into() }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                // The client gets a retry hint; the operator needs the cause.
                tracing::warn!(error = %cause, "answering 503: the database is unavailable");
                Self::unavailable("the database is unavailable, retry later")
            }
            StoreError::IdempotencyConflict => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                "Idempotency-Key was already used for a different order",
            ),
            StoreError::Overflow => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "quantity * unit_price_cents is too large",
            ),
            StoreError::Other(msg) => {
                tracing::error!(error = %msg, "store failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "unexpected database error")
            }
        }
    }
}

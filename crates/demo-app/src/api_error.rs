//! Error bodies. Two shapes on purpose:
//! - podinfo's routes answer `{"code": N, "message": "..."}` (its JSON keys,
//!   so podinfo clients keep working), but with the real HTTP status where
//!   podinfo always sent 200;
//! - our own APIs (orders, checkout) answer `{"error": "...", "detail": "..."}`.

use axum::Json;
use axum::http::StatusCode;
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

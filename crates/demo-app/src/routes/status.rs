//! /status/{code}: answers with the status it is asked for.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api_error::PodinfoError;

#[utoipa::path(get, path = "/status/{code}", operation_id = "getStatus", tag = "podinfo",
    params(("code" = u16, Path, minimum = 200, maximum = 599, description = "HTTP status to answer with, 200-599")),
    responses((status = 200, description = "`{\"status\": code}` with that status"), (status = 400, description = "not a status code")))]
pub async fn handler(Path(code): Path<String>) -> Response {
    // podinfo drops the connection for codes it cannot send; we say why.
    match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)).and_then(|c| StatusCode::from_u16(c).ok()) {
        // 204 and 304 have no body and no Content-Length (RFC 9110), not even
        // the 0 axum derives from an empty body for HEAD: the body's length
        // is left unknown, and hyper sends none for these statuses.
        Some(status) if matches!(status.as_u16(), 204 | 304) => {
            (status, Body::from_stream(futures::stream::empty::<Result<Bytes, std::io::Error>>())).into_response()
        }
        // 205 must not carry content either; Content-Length: 0 says so.
        Some(StatusCode::RESET_CONTENT) => StatusCode::RESET_CONTENT.into_response(),
        Some(status) => (status, Json(json!({ "status": status.as_u16() }))).into_response(),
        None => PodinfoError::new(StatusCode::BAD_REQUEST, format!("invalid status code {code:?}: use 200-599"))
            .into_response(),
    }
}

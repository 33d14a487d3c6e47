//! /cache/{key}: podinfo's Redis cache API, kept in our database instead.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::api_error::PodinfoError;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Keys are path segments; bound their size so the table stays sane.
const MAX_KEY_LEN: usize = 256;

fn store(state: &AppState) -> Result<&Store, PodinfoError> {
    state.store.as_ref().ok_or_else(|| PodinfoError::new(StatusCode::SERVICE_UNAVAILABLE, "cache server is offline"))
}

fn check_key(key: &str) -> Result<(), PodinfoError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(PodinfoError::new(StatusCode::BAD_REQUEST, format!("key must be 1-{MAX_KEY_LEN} bytes")));
    }
    // PostgreSQL text cannot hold NUL (SQLite can): refused on both engines
    // alike, rather than a 500 on one of them.
    if key.contains('\0') {
        return Err(PodinfoError::new(StatusCode::BAD_REQUEST, "key must not contain a NUL character"));
    }
    Ok(())
}

fn store_error(err: StoreError) -> PodinfoError {
    match err {
        StoreError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "answering 503: the cache's database is unavailable");
            PodinfoError::new(StatusCode::SERVICE_UNAVAILABLE, "cache server is offline")
        }
        other => {
            tracing::error!(error = %other, "cache operation failed");
            PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, "cache operation failed")
        }
    }
}

#[utoipa::path(get, path = "/cache/{key}", operation_id = "cacheRead", tag = "podinfo", params(("key" = String, Path)),
    responses((status = 200, description = "the stored value"), (status = 400, description = "key empty, too long or with a NUL"), (status = 404), (status = 503, description = "database unavailable")))]
pub async fn read(State(state): State<AppState>, Path(key): Path<String>) -> Result<Response, PodinfoError> {
    check_key(&key)?;
    match store(&state)?.cache_get(&key).await.map_err(store_error)? {
        Some(value) => Ok(([(CONTENT_TYPE, "application/octet-stream")], value).into_response()),
        None => Err(PodinfoError::new(StatusCode::NOT_FOUND, format!("key {key:?} not found"))),
    }
}

#[utoipa::path(post, path = "/cache/{key}", operation_id = "cacheWrite", tag = "podinfo", params(("key" = String, Path)),
    request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202), (status = 400, description = "key empty, too long or with a NUL"), (status = 503)))]
pub async fn write(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<StatusCode, PodinfoError> {
    check_key(&key)?;
    store(&state)?.cache_set(&key, &body).await.map_err(store_error)?;
    Ok(StatusCode::ACCEPTED)
}

/// 202 whether or not the key existed, as podinfo does.
#[utoipa::path(delete, path = "/cache/{key}", operation_id = "cacheDelete", tag = "podinfo", params(("key" = String, Path)), responses((status = 202), (status = 400, description = "key empty, too long or with a NUL"), (status = 503)))]
pub async fn delete(State(state): State<AppState>, Path(key): Path<String>) -> Result<StatusCode, PodinfoError> {
    check_key(&key)?;
    store(&state)?.cache_delete(&key).await.map_err(store_error)?;
    Ok(StatusCode::ACCEPTED)
}

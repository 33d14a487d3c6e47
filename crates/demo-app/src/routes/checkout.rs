//! POST /api/checkout (frontend role): places an order through the
//! backend's orders API over HTTP, so one checkout spans two services.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::orders::{IDEMPOTENCY_KEY, OrderRequest, idempotency_key, json_error};
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::store::Order;

#[utoipa::path(post, path = "/api/checkout", operation_id = "checkout", tag = "orders", request_body = OrderRequest,
    responses((status = 201, body = Order), (status = 422, body = ApiError), (status = 502, body = ApiError), (status = 503, body = ApiError),
        (status = 504, body = ApiError)))]
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = body.map_err(json_error)?.0;
    request.clone().validate()?;
    // The key makes the backend call safe to retry (by us, the mesh or the
    // client): one checkout never creates two orders.
    let key = idempotency_key(&headers)?.unwrap_or_else(uuid_like_key);
    let result = place_order(&state, &request, &key).await;
    state.metrics.checkout_duration.observe(started.elapsed().as_secs_f64());
    result
}

async fn place_order(state: &AppState, request: &OrderRequest, key: &str) -> Result<Response, ApiError> {
    let Some(origin) = state.config.backend_urls.first().map(|u| origin(u)) else {
        // Role `all` without backends: the orders API is in this process.
        let headers = HeaderMap::from_iter([(
            axum::http::HeaderName::from_static(IDEMPOTENCY_KEY),
            HeaderValue::from_str(key)
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", "bad key"))?,
        )]);
        return super::orders::create(State(state.clone()), headers, Ok(Json(request.clone()))).await;
    };
    let url = format!("{origin}/api/orders");
    let call = state.http.post(&url).header(IDEMPOTENCY_KEY, key).json(request);
    let limit = state.config.checkout_max_response_bytes;
    let answer = async {
        let response = crate::telemetry::http::send(&state.http, call)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "backend_unreachable", format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        Ok::<_, ApiError>((status, read_limited(response, limit).await.map_err(|e| bad_answer(&url, e))?))
    };
    let (status, body) = tokio::time::timeout(state.config.checkout_timeout, answer).await.map_err(|_| {
        let waited = humantime::format_duration(state.config.checkout_timeout);
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, "backend_timeout", format!("{url}: no answer within {waited}"))
    })??;
    judge(status, &body).map_err(|why| bad_answer(&url, why))
}

/// What the checkout answers for the backend's (status, body): its order
/// (201, or 200 for a replay) or its own error (4xx with the error shape;
/// 503 when the backend's store is down). Anything else is the backend's
/// defect, never passed to the client as if it were an answer.
fn judge(status: u16, body: &[u8]) -> Result<Response, String> {
    match status {
        200 | 201 => {
            let order: Order = serde_json::from_slice(body).map_err(|e| format!("{status} without an order: {e}"))?;
            Ok((StatusCode::from_u16(status).expect("a known status"), Json(order)).into_response())
        }
        400..=499 | 503 => {
            let error: BackendError = serde_json::from_slice(body)
                .map_err(|e| format!("{status} without the error shape of the orders API: {e}"))?;
            let status = StatusCode::from_u16(status).expect("a known status");
            Ok(ApiError::new(status, &error.error, error.detail).into_response())
        }
        other => Err(format!("unexpected status {other}")),
    }
}

#[derive(serde::Deserialize)]
struct BackendError {
    error: String,
    detail: String,
}

fn bad_answer(url: &str, why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "backend_invalid_response", format!("{url}: {why}"))
}

/// The body, read a chunk at a time, refused as soon as it passes `limit`.
async fn read_limited(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(format!("answer larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `scheme://host:port` of a backend URL such as `http://backend:9898/echo`.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.split('/').next().unwrap_or(url).to_string(),
    }
}

/// 128 random bits in hex: unique enough for an idempotency key.
fn uuid_like_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orders_and_shaped_errors_pass_through() {
        let order = br#"{"id":1,"sku":"s","quantity":1,"unit_price_cents":1,"total_cents":1,"created_at":"2026-12-04T00:00:00Z"}"#;
        assert_eq!(judge(201, order).map(|r| r.status()), Ok(StatusCode::CREATED));
        let error = br#"{"error":"validation_failed","detail":"quantity"}"#;
        assert_eq!(judge(422, error).map(|r| r.status()), Ok(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(judge(299, order).unwrap_err().contains("unexpected status 299"));
        assert!(judge(201, b"{}").unwrap_err().contains("without an order"));
        assert!(judge(500, error).is_err(), "a backend crash is a 502, not passed on");
        assert!(judge(404, b"<html>").unwrap_err().contains("error shape"));
    }

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(super::origin("http://backend:9898/echo"), "http://backend:9898");
        assert_eq!(super::origin("http://backend:9898"), "http://backend:9898");
    }
}

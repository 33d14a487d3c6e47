//! POST /api/checkout (frontend role): places an order through the
//! backend's orders API over HTTP, so one checkout spans two services.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::orders::{IDEMPOTENCY_KEY, OrderRequest, idempotency_key, json_error, validate};
use super::upstream::{self, origin};
use crate::api_error::ApiError;
use crate::state::AppState;
use crate::store::Order;

#[utoipa::path(post, path = "/api/checkout", operation_id = "checkout", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "retries with the same key place one order; one is made up when absent")),
    responses((status = 201, body = Order), (status = 400, body = ApiError), (status = 413, body = ApiError), (status = 415, body = ApiError),
        (status = 422, body = ApiError), (status = 502, body = ApiError), (status = 503, body = ApiError), (status = 504, body = ApiError)))]
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = body.map_err(json_error)?.0;
    validate(request.clone())?;
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
    let (status, order): (_, Order) = upstream::call(state, &url, call, &[200, 201]).await?;
    Ok((status, Json(order)).into_response())
}

/// 128 random bits in hex: unique enough for an idempotency key.
fn uuid_like_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

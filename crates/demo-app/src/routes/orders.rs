//! The orders API: create (idempotent with `Idempotency-Key`), get, list
//! with keyset pagination.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use demo_app_input::NewOrder;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::state::AppState;
use crate::store::{Created, Order, Store};

pub use demo_app_input::{IDEMPOTENCY_KEY, ListParams, OrderRequest};

/// An order's fields checked, or the first invalid one named (422).
pub fn validate(order: OrderRequest) -> Result<NewOrder, ApiError> {
    order.validate().map_err(|why| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", why.0))
}

/// Maps axum's JSON rejections onto our error body.
pub fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the order as JSON with Content-Type: application/json",
        ),
        other => ApiError::new(other.status(), "invalid_json", other.body_text()),
    }
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state.store.as_ref().ok_or_else(|| ApiError::unavailable("this instance has no order store"))
}

/// `Idempotency-Key` (see `demo_app_input::idempotency_key`), or 400.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    demo_app_input::idempotency_key(headers)
        .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", why.0))
}

#[utoipa::path(post, path = "/api/orders", operation_id = "createOrder", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "retries with the same key return the same order")),
    responses((status = 201, body = Order, headers(("Location" = String))), (status = 400, body = ApiError), (status = 413, body = ApiError),
        (status = 415, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let order = validate(body.map_err(json_error)?.0)?;
    let (order, replayed) = match store(&state)?.create_order(&order, key.as_deref()).await? {
        Created::New(order) => {
            tracing::info!(order.id = order.id, order.total_cents = order.total_cents, "order created");
            state.metrics.orders_created.inc();
            state.metrics.orders_value_cents.inc_by(u64::try_from(order.total_cents).unwrap_or(0));
            (order, false)
        }
        Created::Replayed(order) => {
            tracing::info!(order.id = order.id, "order replayed for a retried idempotency key");
            (order, true)
        }
    };
    let location = HeaderValue::from_str(&format!("/api/orders/{}", order.id)).expect("digits are a valid header");
    let mut response = (StatusCode::CREATED, [(LOCATION, location)], Json(order)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/orders/{id}", operation_id = "getOrder", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Order>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", format!("id: {id:?} is not an order id"))
    })?;
    store(&state)?
        .get_order(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("order {id} does not exist")))
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderPage {
    orders: Vec<Order>,
    /// Pass as `after` for the next page; null on the last page.
    next_after: Option<i64>,
}

#[utoipa::path(get, path = "/api/orders", operation_id = "listOrders", tag = "orders", params(ListParams),
    responses((status = 200, body = OrderPage), (status = 400, body = ApiError), (status = 503, body = ApiError),
        (status = 502, body = ApiError, description = "frontend role: the backend's answer was not a page of orders"),
        (status = 504, body = ApiError, description = "frontend role: the backend did not answer in time")))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<OrderPage>, ApiError> {
    let bad = |field: &str, detail: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", format!("{field}: {detail}"))
    };
    // A query that is not one set of these fields (say, `limit` twice).
    let Query(params) = params.map_err(|e| bad("query", &e.body_text()))?;
    let page = params.parse().map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", why.0))?;
    let orders = store(&state)?.list_orders(page.limit, page.after, page.newest_first).await?;
    let next_after = (orders.len() == page.limit as usize).then(|| orders.last().map(|o| o.id)).flatten();
    Ok(Json(OrderPage { orders, next_after }))
}

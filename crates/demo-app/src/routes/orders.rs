//! The orders API: create (idempotent with `Idempotency-Key`), get, list
//! with keyset pagination.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::state::AppState;
use crate::store::{Created, NewOrder, Order, Store};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;
const MAX_QUANTITY: i64 = 10_000;
const MAX_UNIT_PRICE_CENTS: i64 = 100_000_000;

// `remote = "Self"`: the derives become inherent functions, which the trait
// impls below call, so that an order is an object and nothing else (a
// derived struct also accepts the array `["sku", 1, 100]`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct OrderRequest {
    /// Stock-keeping unit: 1-64 characters of `A-Z a-z 0-9 - _ .`
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub sku: String,
    /// 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "json_integer")]
    pub quantity: i64,
    /// 0 to 100000000 (one million in the currency).
    #[schema(minimum = 0, maximum = 100000000)]
    #[serde(deserialize_with = "json_integer")]
    pub unit_price_cents: i64,
}

/// A JSON Schema integer: `3` and also `3.0` (a number with a zero fraction
/// is an integer to JSON Schema, and to JavaScript clients); `3.5` is not.
fn json_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("expected an integer, found {number}"))),
    }
}

impl<'de> Deserialize<'de> for OrderRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = OrderRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an order object with sku, quantity and unit_price_cents")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<OrderRequest, A::Error> {
                OrderRequest::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

impl Serialize for OrderRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OrderRequest::serialize(self, serializer)
    }
}

impl OrderRequest {
    /// The first invalid field, named, or the order to store.
    pub fn validate(self) -> Result<NewOrder, ApiError> {
        let invalid = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail);
        let sku_ok = (1..=64).contains(&self.sku.len())
            && self.sku.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !sku_ok {
            return Err(invalid("sku: 1-64 characters of A-Z a-z 0-9 - _ .".into()));
        }
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(invalid(format!("quantity: must be 1-{MAX_QUANTITY}")));
        }
        if !(0..=MAX_UNIT_PRICE_CENTS).contains(&self.unit_price_cents) {
            return Err(invalid(format!("unit_price_cents: must be 0-{MAX_UNIT_PRICE_CENTS}")));
        }
        Ok(NewOrder { sku: self.sku, quantity: self.quantity, unit_price_cents: self.unit_price_cents })
    }
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

/// `Idempotency-Key`: optional, 1-255 visible ASCII characters, at most
/// once (which of two keys a proxy or server picks differs: refused).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", "Idempotency-Key: send it once"));
    }
    let key = value.to_str().ok().filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_string())).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", "Idempotency-Key: 1-255 visible ASCII characters")
    })
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
    let order = body.map_err(json_error)?.0.validate()?;
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<u32>, nullable = false, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Continue after this order id, in the listing's order (the previous
    /// page's `next_after`).
    #[param(value_type = Option<i64>, nullable = false, minimum = 0)]
    after: Option<String>,
    /// `asc` (default): oldest first; `desc`: newest first.
    #[param(value_type = Option<String>, nullable = false, pattern = "^(asc|desc)$")]
    order: Option<String>,
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
    let (limit, after, newest_first) = params.parse()?;
    let orders = store(&state)?.list_orders(limit, after, newest_first).await?;
    let next_after = (orders.len() == limit as usize).then(|| orders.last().map(|o| o.id)).flatten();
    Ok(Json(OrderPage { orders, next_after }))
}

impl ListParams {
    /// (page size, cursor, newest first), or which field is wrong.
    pub fn parse(&self) -> Result<(u32, Option<i64>, bool), ApiError> {
        let bad = |field: &str, detail: &str| {
            ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", format!("{field}: {detail}"))
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE,
            Some(raw) => {
                raw.parse().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| bad("limit", "must be 1-100"))?
            }
        };
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(raw) => {
                Some(raw.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| bad("after", "must be an order id"))?)
            }
        };
        let newest_first = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(bad("order", "must be asc or desc")),
        };
        Ok((limit, after, newest_first))
    }
}

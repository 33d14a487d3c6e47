//! GET /api/orders on the frontend: the backend's order list, so the UI
//! shows the orders in the deployed layout too (the frontend keeps none).
//! Same limits as checkout (upstream.rs).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::orders::OrderPage;
use super::upstream::{self, origin};
use crate::api_error::ApiError;
use crate::state::AppState;

pub async fn handler(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<OrderPage>, ApiError> {
    let backend = state.config.backend_urls.first().map(|u| origin(u)).ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "no backend configured (--backend-url)")
    })?;
    let url = match query {
        Some(query) => format!("{backend}/api/orders?{query}"),
        None => format!("{backend}/api/orders"),
    };
    let (_, page) = upstream::call(&state, &url, state.http.get(&url), &[200]).await?;
    Ok(Json(page))
}

//! POST /token issues a one-minute HS256 JWT; GET /token/validate checks one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
pub use demo_app_input::check_bearer;
use demo_app_input::{Claims, ISSUER};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api_error::PodinfoError;
use crate::state::AppState;

const LIFETIME_SECONDS: i64 = 60;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Issued {
    token: String,
    expires_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Validated {
    token_name: String,
    expires_at: String,
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[utoipa::path(post, path = "/token", operation_id = "issueToken", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*", description = "user name (default anonymous)"),
    responses((status = 200, body = Issued)))]
pub async fn issue(State(state): State<AppState>, body: Bytes) -> Result<Json<Issued>, PodinfoError> {
    let name = match String::from_utf8_lossy(&body).trim() {
        "" => "anonymous".to_string(),
        name => name.chars().take(256).collect(),
    };
    let (token, exp) = sign(name, state.jwt_secret.as_bytes())
        .map_err(|e| PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("signing failed: {e}")))?;
    Ok(Json(Issued { token, expires_at: rfc3339(exp) }))
}

/// A one-minute token for `name`, and when it expires (Unix seconds).
pub fn sign(name: String, secret: &[u8]) -> Result<(String, i64), jsonwebtoken::errors::Error> {
    let exp = OffsetDateTime::now_utc().unix_timestamp() + LIFETIME_SECONDS;
    let claims = Claims { name, exp, iss: ISSUER.into(), nbf: None };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))?;
    Ok((token, exp))
}

#[utoipa::path(get, path = "/token/validate", operation_id = "validateToken", tag = "podinfo", security(("bearer" = [])),
    responses((status = 200, body = Validated), (status = 401, description = "missing, invalid or expired token")))]
pub async fn validate(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Validated>, PodinfoError> {
    let header = headers.get(AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    let claims = check_bearer(header, state.jwt_secret.as_bytes())
        .map_err(|why| PodinfoError::new(StatusCode::UNAUTHORIZED, why.0))?;
    Ok(Json(Validated { token_name: claims.name, expires_at: rfc3339(claims.exp) }))
}

//! Calls from the frontend to the backend's orders API (checkout, the order
//! list): within --checkout-timeout, at most --checkout-max-response-bytes
//! read, and only the expected answer or the orders API's own error shape
//! passed on; anything else is the backend's defect, a 502 (504 when late).

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;
use crate::state::AppState;

/// Sends `call` to `url` and gives the backend's `T` with its status when
/// the status is one of `ok`; a 4xx or 503 with the error shape becomes the
/// same error of ours.
pub async fn call<T: DeserializeOwned>(
    state: &AppState,
    url: &str,
    call: reqwest::RequestBuilder,
    ok: &[u16],
) -> Result<(StatusCode, T), ApiError> {
    let limit = state.config.checkout_max_response_bytes;
    let answer = async {
        let response = crate::telemetry::http::send(&state.http, call).await.map_err(|e| {
            // --http-client-timeout may be the shorter one: late is late.
            let (status, error) = if e.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, "backend_timeout")
            } else {
                (StatusCode::BAD_GATEWAY, "backend_unreachable")
            };
            tracing::warn!(url, error = %e, "the orders backend did not answer");
            ApiError::new(status, error, format!("the orders backend: {}", e.without_url()))
        })?;
        let status = response.status().as_u16();
        Ok::<_, ApiError>((status, read_limited(response, limit).await.map_err(|e| bad_answer(url, e))?))
    };
    let (status, body) = tokio::time::timeout(state.config.checkout_timeout, answer).await.map_err(|_| {
        let waited = humantime::format_duration(state.config.checkout_timeout);
        tracing::warn!(url, "the orders backend gave no answer in time");
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "backend_timeout",
            format!("the orders backend: no answer within {waited}"),
        )
    })??;
    judge(status, &body, ok).map_err(|why| why.unwrap_or_else(|why| bad_answer(url, why)))
}

/// The backend's (status, body) as our answer: Ok for an expected status
/// with a `T`; Err(Ok(error)) for its own error; Err(Err(why)) for a defect.
fn judge<T: DeserializeOwned>(
    status: u16,
    body: &[u8],
    ok: &[u16],
) -> Result<(StatusCode, T), Result<ApiError, String>> {
    let code = StatusCode::from_u16(status).map_err(|_| Err(format!("invalid status {status}")))?;
    if ok.contains(&status) {
        let value =
            serde_json::from_slice(body).map_err(|e| Err(format!("{status} without the expected body: {e}")))?;
        return Ok((code, value));
    }
    if (400..500).contains(&status) || status == 503 {
        let error: BackendError = serde_json::from_slice(body)
            .map_err(|e| Err(format!("{status} without the error shape of the orders API: {e}")))?;
        return Err(Ok(ApiError::new(code, &error.error, error.detail)));
    }
    Err(Err(format!("unexpected status {status}")))
}

/// The error shape of the orders API, as the backend sends it.
#[derive(serde::Deserialize)]
struct BackendError {
    error: String,
    detail: String,
}

/// The client learns what was wrong, not where the backend lives (the URL
/// goes to the log).
fn bad_answer(url: &str, why: String) -> ApiError {
    tracing::warn!(url, why, "the orders backend's answer is refused");
    ApiError::new(StatusCode::BAD_GATEWAY, "backend_invalid_response", format!("the orders backend's answer: {why}"))
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
pub fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.split('/').next().unwrap_or(url).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Order;

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(origin("http://backend:9898/echo"), "http://backend:9898");
        assert_eq!(origin("http://backend:9898"), "http://backend:9898");
    }

    #[test]
    fn only_expected_answers_and_shaped_errors_pass_through() {
        let order = br#"{"id":1,"sku":"s","quantity":1,"unit_price_cents":1,"total_cents":1,"created_at":"2026-12-04T00:00:00Z"}"#;
        let ok = &[200, 201];
        assert_eq!(judge::<Order>(201, order, ok).map(|(s, _)| s).ok(), Some(StatusCode::CREATED));
        let error = br#"{"error":"validation_failed","detail":"quantity"}"#;
        let passed = judge::<Order>(422, error, ok).unwrap_err().unwrap();
        assert_eq!((passed.status, passed.error.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
        assert!(judge::<Order>(299, order, ok).unwrap_err().unwrap_err().contains("unexpected status 299"));
        assert!(judge::<Order>(201, b"{}", ok).unwrap_err().unwrap_err().contains("without the expected body"));
        assert!(judge::<Order>(500, error, ok).unwrap_err().is_err(), "a backend crash is a 502, not passed on");
        assert!(judge::<Order>(404, b"<html>", ok).unwrap_err().unwrap_err().contains("error shape"));
    }
}

//! /echo, /api/echo (and any sub-path): without backends, answers 202 with
//! the body; with --backend-url, posts the body to every backend in parallel
//! and answers 200 with their answers in configuration order.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::version::{REVISION, VERSION};

const X_COLOR: HeaderName = HeaderName::from_static("x-color");

/// Request headers passed on to backends so a request can be followed.
const FORWARDED: [&str; 7] = [
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
];

#[utoipa::path(post, path = "/api/echo", operation_id = "echo", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"),
    responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend")))]
pub async fn handler(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let color = state.config.ui_color.clone();
    if state.config.backend_urls.is_empty() {
        // An opaque type, nosniff and a closed CSP: the echoed body can never
        // run as a page in our origin (podinfo's CVE-2026-43644).
        return (
            StatusCode::ACCEPTED,
            [
                (X_COLOR, color.as_str()),
                (CONTENT_TYPE, "application/octet-stream"),
                (CONTENT_SECURITY_POLICY, "default-src 'none'"),
            ],
            body,
        )
            .into_response();
    }
    let calls = state.config.backend_urls.iter().map(|url| call_backend(&state.http, url, &headers, body.clone()));
    let answers = futures::future::join_all(calls).await;
    (StatusCode::OK, [(X_COLOR, color.as_str())], Json(answers)).into_response()
}

async fn call_backend(client: &reqwest::Client, url: &str, headers: &HeaderMap, body: Bytes) -> String {
    let mut request = client.post(url).header("X-API-Version", VERSION).header("X-API-Revision", REVISION).body(body);
    for name in FORWARDED {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match crate::telemetry::http::send(client, request).await {
        Err(err) => format!("backend {url} call failed {err}"),
        Ok(response) if response.status().as_u16() >= 400 => {
            format!("backend {url} response status code {}", response.status().as_u16())
        }
        Ok(response) => match response.text().await {
            Ok(text) => text,
            Err(err) => format!("backend {url} call failed {err}"),
        },
    }
}

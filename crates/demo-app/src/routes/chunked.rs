//! /chunked/{seconds}: sends the status line at once, then the body after
//! the wait, as a chunked stream (for testing proxies and timeouts).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::delay::parse_seconds;
use crate::api_error::PodinfoError;

pub async fn handler(Path(seconds): Path<String>) -> Result<Response, PodinfoError> {
    Ok(stream_after(parse_seconds(&seconds)?))
}

/// Bare /chunked waits 10-30 s (podinfo meant a random wait; its 6.9.2
/// overflows and drops the connection instead).
pub async fn random() -> Response {
    stream_after(rand::rng().random_range(10..=30))
}

fn stream_after(seconds: u64) -> Response {
    let body = futures::stream::once(async move {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        Ok::<_, Infallible>(Bytes::from(format!("{{\"delay\":{seconds}}}")))
    });
    ([(CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
}

//! One HTTP client for the three signals over OTLP/HTTP, the span and log
//! exporters' (otlp_export.rs), handed to the library's metric exporter too.
//! It is of the reqwest release demo-app calls its backend with; the
//! library's own client was another release, with a pool of its own:
//! another copy of the HTTP stack's code resident, and a connection a
//! signal.

use axum::http;
use bytes::{Bytes, BytesMut};
use opentelemetry_http::{HttpClient, HttpError};

/// The largest answer read from the Collector, as the library's clients
/// bound it: an OTLP answer is a few bytes, and an endpoint that streams
/// without end must not grow the process.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SharedClient(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for SharedClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let mut response = self.0.execute(reqwest::Request::try_from(request)?).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = read_answer(response).await?;
        let mut answer = http::Response::builder().status(status).body(body)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// The body of `response`, failing past `MAX_ANSWER` bytes.
pub async fn read_answer(mut response: reqwest::Response) -> Result<Bytes, HttpError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("the Collector's answer is over {MAX_ANSWER} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use axum::routing::post;

    use super::*;

    /// A Collector on loopback: `/v1/logs` echoes the body with a header,
    /// `/huge` answers more than `MAX_ANSWER` bytes.
    async fn collector() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route(
                "/v1/logs",
                post(|body: Bytes| async move { (http::StatusCode::ACCEPTED, [("x-seen", "yes")], body) }),
            )
            .route("/huge", post(|| async { vec![0u8; MAX_ANSWER + 1] }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn sends_the_library_s_request_and_hands_back_status_headers_and_body() {
        let url = collector().await;
        let request = http::Request::post(format!("{url}/v1/logs")).body(Bytes::from_static(b"records")).unwrap();
        let answer = SharedClient(reqwest::Client::new()).send_bytes(request).await.unwrap();
        assert_eq!(answer.status(), http::StatusCode::ACCEPTED);
        assert_eq!(answer.headers()["x-seen"], "yes");
        assert_eq!(answer.body().as_ref(), b"records");
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_an_error_not_memory() {
        let url = collector().await;
        let request = http::Request::post(format!("{url}/huge")).body(Bytes::new()).unwrap();
        let error = SharedClient(reqwest::Client::new()).send_bytes(request).await.unwrap_err();
        assert!(error.to_string().contains("answer is over 4194304 bytes"), "{error}");
    }
}

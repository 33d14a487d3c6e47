//! gRPC server spans as OpenTelemetry's RPC conventions name them: span
//! `package.Service/Method`, `rpc.system`, `rpc.service`, `rpc.method` and
//! `rpc.grpc.status_code`. The code travels in the response's headers
//! (an error answered at once) or in its trailers (after the messages), so
//! the span lasts until the body ends, and the code is read from either.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use opentelemetry::global;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::http::HeaderExtractor;

/// Server span for every gRPC call of the gRPC port.
pub async fn trace_calls(request: Request, next: Next) -> Response {
    // `/package.Service/Method`; anything else is not a call tonic routes.
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc_server_call",
        otel.name = path,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        error.r#type = Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    // An error answered at once carries its code in the headers.
    if let Some(code) = status_code(response.headers()) {
        record(&span, code);
        return response;
    }
    response.map(|body| Body::new(Traced { inner: body, span: Some(span) }))
}

fn status_code(headers: &HeaderMap) -> Option<u8> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The code on the span; the codes that are the server's fault (UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) mark
/// it as an error, as the conventions say for server spans.
fn record(span: &tracing::Span, code: u8) {
    span.record("rpc.grpc.status_code", code);
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", code);
    }
}

/// A call's response body, ending its span with the trailers' code.
struct Traced {
    inner: Body,
    span: Option<tracing::Span>,
}

impl http_body::Body for Traced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) if frame.is_trailers() => {
                if let (Some(span), Some(code)) = (self.span.take(), frame.trailers_ref().and_then(status_code)) {
                    record(&span, code);
                }
            }
            // Ended without trailers or failed: the span ends, code unknown.
            None | Some(Err(_)) => drop(self.span.take()),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

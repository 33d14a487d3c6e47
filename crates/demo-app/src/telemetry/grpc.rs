//! gRPC server spans as OpenTelemetry's RPC conventions name them: span
//! `package.Service/Method`, `rpc.system`, `rpc.service`, `rpc.method` and
//! `rpc.grpc.status_code`. The code travels in the response's headers
//! (an error answered at once) or in its trailers (after the messages), so
//! the span lasts until the body ends (src/grpc_status.rs); a call cut
//! before its end is CANCELLED.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::global;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::trace_context::HeaderExtractor;
use crate::grpc_status;

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
    // The span lasts until the call's code is known.
    grpc_status::when_done(response, move |code| record(&span, code))
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

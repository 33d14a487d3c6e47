//! HTTP spans and metrics: one server span per request named `METHOD
//! /route`, W3C context extracted from the request; client spans with the
//! context injected into every outgoing call.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Version};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::instruments::INSTRUMENTS;

pub(super) struct HeaderExtractor<'a>(pub(super) &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::from_bytes(key.as_bytes()), reqwest::header::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Server span and `http.server.*` metrics for every routed request.
pub async fn trace_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Bounded like the Prometheus label (crate::metrics::method_label).
    let method = crate::metrics::method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let name = route.as_ref().map_or_else(|| method.to_string(), |r| format!("{method} {r}"));
    let headers = request.headers();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    let (address, port) = host.rsplit_once(':').map_or((host, ""), |(a, p)| (a, p));
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    // Values as &str and integers, never `%`: the tracing layer would format
    // each Display value into a new String.
    let span = tracing::info_span!(
        "http_server_request",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route.as_deref(),
        http.response.status_code = Empty,
        url.path = request.uri().path(),
        url.scheme = "http",
        server.address = address,
        server.port = port.parse::<u16>().ok(),
        client.address = client.as_deref(),
        user_agent.original = headers.get("user-agent").and_then(|v| v.to_str().ok()),
        network.protocol.version = protocol_version(request.version()),
        error.r#type = Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);

    let response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
        span.in_scope(|| tracing::error!(exception.message = %format!("{name} answered {status}"), "exception"));
    }
    // The one OpenTelemetry metric per request (the Prometheus histogram on
    // /metrics is recorded by crate::metrics, with podinfo's names).
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new("http.request.method", method));
    attributes.push(KeyValue::new("url.scheme", "http"));
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    attributes.push(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
    INSTRUMENTS.server_duration.record(started.elapsed().as_secs_f64(), &attributes);
    response
}

/// Sends `request` inside a client span, with the W3C context (and baggage)
/// of that span injected into its headers.
pub async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let request = request.build()?;
    let method = request.method().as_str().to_string();
    let url = request.url().clone();
    let span = tracing::info_span!(
        "http_client_request",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %url,
        server.address = url.host_str(),
        server.port = url.port_or_known_default(),
        http.response.status_code = Empty,
        error.r#type = Empty,
    );
    let mut request = request;
    global::get_text_map_propagator(|p| p.inject_context(&span.context(), &mut HeaderInjector(request.headers_mut())));
    let started = Instant::now();
    let result = client.execute(request).instrument(span.clone()).await;
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("server.address", url.host_str().unwrap_or_default().to_string()),
    ];
    match &result {
        Ok(response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.to_string());
            }
        }
        Err(err) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", if err.is_timeout() { "timeout" } else { "connection" });
            span.in_scope(|| tracing::warn!(exception.message = %err, "exception"));
            attributes.push(KeyValue::new("error.type", "transport"));
        }
    }
    INSTRUMENTS.client_duration.record(started.elapsed().as_secs_f64(), &attributes);
    result
}

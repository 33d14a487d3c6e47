//! One checkout through frontend → backend produces one trace: the frontend
//! server span, its client span, the backend server span and the database
//! span, each the parent of the next, with semantic-convention attributes.
//! Spans go to the SDK's in-memory exporter (the OTLP path is covered by
//! `cargo xtask e2e`).

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use opentelemetry::global;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SimpleSpanProcessor, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use demo_app::config::Role;
use demo_app::telemetry::span_record::ToProcessor;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_across_both_services() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    global::set_tracer_provider(provider.clone());
    // The spans of HTTP requests are demo-app's own records
    // (telemetry/span_record.rs), handed to the same exporter in the SDK's
    // shape; gRPC spans take the SDK's path.
    demo_app::telemetry::recording::trace_with(
        ToProcessor(SimpleSpanProcessor::new(exporter.clone())),
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    );
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let backend = helpers::spawn_app_with(|c| c.role = Role::Backend).await;
    let frontend = helpers::spawn_app_with(|c| {
        c.role = Role::Frontend;
        c.backend_urls = vec![backend.url("")];
    })
    .await;
    let order = serde_json::json!({"sku": "traced", "quantity": 2, "unit_price_cents": 50});
    assert_eq!(frontend.post_json("/api/checkout", &order).await.status(), 201);
    assert_eq!(frontend.get("/status/503").await.status(), 503);
    // A method the conventions do not know: `_OTHER`, and the method as sent.
    let purge = reqwest::Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(frontend.client.request(purge, frontend.url("/api/info")).send().await.unwrap().status(), 405);
    // The readiness check's `SELECT 1` touches no table.
    assert_eq!(backend.get("/readyz").await.status(), 200);
    // The backend ends its server span after the response has left, so the
    // frontend can hold its answer before the backend's spans are exported:
    // wait for them (bounded) rather than read once.
    let wanted = |spans: &[SpanData]| {
        let has = |name: &str, kind: SpanKind| spans.iter().any(|s| s.name == name && s.span_kind == kind);
        has("POST /api/orders", SpanKind::Server)
            && has("INSERT orders", SpanKind::Client)
            && has("SELECT", SpanKind::Client)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let spans = loop {
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        if wanted(&spans) || std::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    let named = |name: &str, kind: SpanKind| {
        spans.iter().find(|s| s.name == name && s.span_kind == kind).unwrap_or_else(|| {
            let all: Vec<_> = spans.iter().map(|s| (s.name.to_string(), s.span_kind.clone())).collect();
            panic!("no {kind:?} span {name:?} in {all:?}")
        })
    };
    let other = spans.iter().find(|s| attribute(s, "http.request.method").as_deref() == Some("_OTHER"));
    let other = other.expect("a server span for the PURGE request");
    assert_eq!(attribute(other, "http.request.method_original").as_deref(), Some("PURGE"));
    assert!(other.name.starts_with("HTTP"), "{}", other.name);
    let checkout = named("POST /api/checkout", SpanKind::Server);
    let client = named("POST", SpanKind::Client);
    let orders = named("POST /api/orders", SpanKind::Server);
    let insert = named("INSERT orders", SpanKind::Client);
    let trace = checkout.span_context.trace_id();
    for span in [client, orders, insert] {
        assert_eq!(span.span_context.trace_id(), trace, "{} is in another trace", span.name);
    }
    assert_eq!(client.parent_span_id, checkout.span_context.span_id());
    assert_eq!(orders.parent_span_id, client.span_context.span_id(), "context crossed the HTTP call");
    assert_eq!(insert.parent_span_id, orders.span_context.span_id());

    assert_eq!(attribute(checkout, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attribute(checkout, "http.route").as_deref(), Some("/api/checkout"));
    assert_eq!(attribute(checkout, "http.response.status_code").as_deref(), Some("201"));
    assert_eq!(attribute(checkout, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attribute(checkout, "url.path").as_deref(), Some("/api/checkout"));
    let mut keys: Vec<&str> = checkout.attributes.iter().map(|kv| kv.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["http.request.method", "http.response.status_code", "http.route", "url.path", "url.scheme"],
        "the conventions' required attributes, each once"
    );
    assert_eq!(attribute(client, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attribute(client, "http.response.status_code").as_deref(), Some("201"));
    assert_eq!(attribute(client, "server.address").as_deref(), Some("127.0.0.1"));
    assert!(attribute(client, "url.full").is_some_and(|url| url.ends_with("/api/orders")), "{client:?}");
    assert_eq!(attribute(insert, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(attribute(insert, "db.operation.name").as_deref(), Some("INSERT"));
    assert_eq!(attribute(insert, "db.collection.name").as_deref(), Some("orders"));
    let ping = named("SELECT", SpanKind::Client);
    assert_eq!(attribute(ping, "db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(attribute(ping, "db.collection.name"), None, "no table, no collection");
    assert_eq!(attribute(ping, "server.address"), None, "SQLite is a file, not a server");

    let failed = named("GET /status/{code}", SpanKind::Server);
    assert_eq!(failed.status, opentelemetry::trace::Status::error(""), "5xx marks the span as an error");
    assert!(failed.events.iter().any(|e| e.name == "exception"), "an exception event on 5xx");

    // gRPC calls: RPC spans, the code from the trailers or the headers.
    use demo_app::grpc::pb;
    let grpc = helpers::spawn_grpc_app(|_| {}).await;
    let address = grpc.grpc_address.clone().unwrap();
    let channel = tonic::transport::Channel::from_shared(address).unwrap().connect().await.unwrap();
    pb::info::info_service_client::InfoServiceClient::new(channel.clone())
        .info(pb::info::InfoRequest {})
        .await
        .unwrap();
    let unavailable = pb::status::status_service_client::StatusServiceClient::new(channel)
        .status(pb::status::StatusRequest { code: "Unavailable".into() })
        .await;
    assert!(unavailable.is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let spans = loop {
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        let done = ["info.InfoService/Info", "status.StatusService/Status"]
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name));
        if done || std::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let call = |name: &str| {
        spans.iter().find(|s| s.name == name && s.span_kind == SpanKind::Server).unwrap_or_else(|| {
            panic!("no server span {name:?} in {:?}", spans.iter().map(|s| s.name.to_string()).collect::<Vec<_>>())
        })
    };
    let info = call("info.InfoService/Info");
    assert_eq!(attribute(info, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(info, "rpc.service").as_deref(), Some("info.InfoService"));
    assert_eq!(attribute(info, "rpc.method").as_deref(), Some("Info"));
    assert_eq!(attribute(info, "rpc.grpc.status_code").as_deref(), Some("0"), "the code of the trailers");
    let status = call("status.StatusService/Status");
    assert_eq!(attribute(status, "rpc.grpc.status_code").as_deref(), Some("14"), "the code of the headers");
    assert_eq!(status.status, opentelemetry::trace::Status::error(""), "UNAVAILABLE is the server's error");
}

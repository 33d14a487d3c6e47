//! The span and log exporters: each batch encoded once on its batch
//! processor's thread (span_encoding.rs, log_encoding.rs), then sent over
//! OTLP/gRPC or OTLP/HTTP from the export runtime, with the retries the
//! OTLP specification asks for.
//!
//! opentelemetry-otlp's exporter cost about 14k instructions a span on the
//! export threads (the batch cloned per attempt, converted, sized by prost at
//! every level of nesting); with the server pinned to one core that halved
//! the throughput of a traced `GET /api/info` (docs/benchmarks.md). Its log
//! exporter cost 5.9k instructions for the one log line of an order stored.
//! Metrics, pushed every 10 s whatever the load, keep the library's exporter.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;

use axum::http;
use http_body::Frame;
use http_body_util::StreamBody;
use tonic::transport::Channel;

use super::otlp_wire::EncodedResource;
use super::{log_encoding, span_encoding};

/// Delays before the retries of a failed attempt (OTLP: exponential backoff).
const RETRY_DELAYS: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)];

/// What an exporter sends: its gRPC method, and how the Collector's answer
/// tells of records it refused.
pub trait Signal: std::fmt::Debug + Clone + Send + Sync + 'static {
    /// What one record is called, in messages.
    const RECORD: &'static str;
    /// The OTLP/gRPC method, as the generated client names it.
    const GRPC_PATH: &'static str;
    /// OTLP's partial success: the records refused, and why (None when all
    /// were taken, or the answer cannot be read: OTLP says the sender may
    /// then take it as a success).
    fn refused(answer: &[u8]) -> Option<(i64, String)>;
}

#[derive(Debug, Clone)]
pub struct Traces;

impl Signal for Traces {
    const RECORD: &'static str = "span";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    fn refused(answer: &[u8]) -> Option<(i64, String)> {
        let partial = ExportTraceServiceResponse::decode(answer).ok()?.partial_success?;
        (partial.rejected_spans > 0).then_some((partial.rejected_spans, partial.error_message))
    }
}

#[derive(Debug, Clone)]
pub struct Logs;

impl Signal for Logs {
    const RECORD: &'static str = "log record";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

    fn refused(answer: &[u8]) -> Option<(i64, String)> {
        let partial = ExportLogsServiceResponse::decode(answer).ok()?.partial_success?;
        (partial.rejected_log_records > 0).then_some((partial.rejected_log_records, partial.error_message))
    }
}

/// Cheap to clone (the connection is shared): the SDK's batch processor
/// owns one, demo-app's server-span batch (span_batch.rs) another.
#[derive(Debug, Clone)]
pub struct OtlpExporter<S> {
    transport: Transport,
    resource: EncodedResource,
    /// Where the sending runs: never a thread that serves requests.
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    signal: PhantomData<S>,
}

pub type OtlpSpanExporter = OtlpExporter<Traces>;
pub type OtlpLogExporter = OtlpExporter<Logs>;

#[derive(Debug, Clone)]
enum Transport {
    Grpc { channel: Channel, metadata: tonic::metadata::MetadataMap },
    Http { client: reqwest::Client, url: String, headers: reqwest::header::HeaderMap },
}

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug)]
struct Failure {
    message: String,
    retryable: bool,
}

impl<S: Signal> OtlpExporter<S> {
    /// An OTLP/gRPC exporter to `endpoint` (the Collector's base URL).
    /// Connects on first use; call inside `runtime`.
    pub fn grpc(
        endpoint: &str,
        headers: &[(String, String)],
        timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| anyhow::anyhow!("OTLP endpoint {endpoint:?} is not a URL: {e}"))?
            .timeout(timeout)
            .connect_lazy();
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (name, value) in headers {
            let key = tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("OTLP header name {name:?} is not valid gRPC metadata"))?;
            let value = value.parse().map_err(|_| anyhow::anyhow!("OTLP header {name:?} has an invalid value"))?;
            metadata.insert(key, value);
        }
        Ok(Self::with(Transport::Grpc { channel, metadata }, timeout, runtime))
    }

    /// An OTLP/HTTP (protobuf) exporter posting to `url` (…/v1/traces, …/v1/logs)
    /// through `client` (shared with the other signals, http_client.rs).
    pub fn http(
        url: &str,
        headers: &[(String, String)],
        client: reqwest::Client,
        timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("OTLP endpoint {url:?} is not a URL: {e}"))?;
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("OTLP header name {name:?} is not a valid HTTP header"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| anyhow::anyhow!("OTLP header {name} has an invalid value"))?;
            map.insert(name, value);
        }
        Ok(Self::with(Transport::Http { client, url: url.to_string(), headers: map }, timeout, runtime))
    }

    fn with(transport: Transport, timeout: Duration, runtime: tokio::runtime::Handle) -> Self {
        Self { transport, resource: EncodedResource::default(), runtime, timeout, signal: PhantomData }
    }

    /// Sends one encoded export request, retried as OTLP says.
    pub async fn send(&self, body: Bytes) -> OTelSdkResult {
        let (transport, timeout) = (self.transport.clone(), self.timeout);
        let sent = self.runtime.spawn(async move {
            let mut delays = RETRY_DELAYS.iter();
            loop {
                let failure = match tokio::time::timeout(timeout, transport.send::<S>(body.clone())).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(failure)) => failure,
                    Err(_) => Failure { message: format!("no answer within {timeout:?}"), retryable: true },
                };
                match delays.next() {
                    Some(delay) if failure.retryable => tokio::time::sleep(*delay).await,
                    _ => {
                        let message = format!("{} export failed: {}", S::RECORD, failure.message);
                        return Err(OTelSdkError::InternalFailure(message));
                    }
                }
            }
        });
        let failed = |e| Err(OTelSdkError::InternalFailure(format!("{} export task failed: {e}", S::RECORD)));
        sent.await.unwrap_or_else(failed)
    }

    /// The resource every request carries, encoded.
    pub fn resource(&self) -> &EncodedResource {
        &self.resource
    }
}

impl SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = Bytes::from(span_encoding::request(&self.resource, &batch));
        drop(batch);
        self.send(body).await
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

impl LogExporter for OtlpLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let body = Bytes::from(log_encoding::request(&self.resource, &batch));
        self.send(body).await
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

impl Transport {
    async fn send<S: Signal>(&self, body: Bytes) -> Result<(), Failure> {
        let answer = match self {
            Self::Grpc { channel, metadata } => grpc_export(channel.clone(), metadata, S::GRPC_PATH, body).await?,
            Self::Http { client, url, headers } => {
                let sent = client
                    .post(url)
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failure { message: e.to_string(), retryable: true })?;
                let status = sent.status();
                let answer = super::http_client::read_answer(sent)
                    .await
                    .map_err(|e| Failure { message: e.to_string(), retryable: true })?;
                if !status.is_success() {
                    // OTLP/HTTP: these are the statuses worth another attempt.
                    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                    return Err(Failure { message: format!("the Collector answered {status}"), retryable });
                }
                answer
            }
        };
        if let Some((rejected, reason)) = S::refused(&answer) {
            // Not retried (OTLP: the rest was accepted). Target `opentelemetry`:
            // never exported over OTLP itself (telemetry/mod.rs).
            tracing::warn!(target: "opentelemetry", rejected, reason, "the Collector rejected {}s", S::RECORD);
        }
        Ok(())
    }
}

/// OTLP/gRPC's failures worth another attempt.
fn grpc_failure(status: tonic::Status) -> Failure {
    use tonic::Code;
    let retryable = matches!(
        status.code(),
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    );
    Failure { message: format!("{}: {}", status.code(), status.message()), retryable }
}

/// One OTLP/gRPC `Export` call, made on the channel itself: tonic's client
/// copied each encoded batch into a buffer of its own before framing it.
/// Here the 5-byte gRPC prefix and the batch go out as two frames of the
/// request body (h2 writes a large frame from the `Bytes` as they are).
async fn grpc_export(
    channel: Channel,
    metadata: &tonic::metadata::MetadataMap,
    path: &'static str,
    message: Bytes,
) -> Result<Bytes, Failure> {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    let transport = |e: &dyn std::fmt::Display| Failure { message: e.to_string(), retryable: true };
    let length =
        u32::try_from(message.len()).map_err(|_| Failure { message: "batch over 4 GiB".into(), retryable: false })?;
    let mut prefix = [0; 5];
    prefix[1..].copy_from_slice(&length.to_be_bytes());
    let frames = [Bytes::copy_from_slice(&prefix), message].map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let mut request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(tonic::body::Body::new(StreamBody::new(futures::stream::iter(frames))))
        .map_err(|e| transport(&e))?;
    request.headers_mut().extend(metadata.clone().into_headers());
    let response = channel.oneshot(request).await.map_err(|e| transport(&e))?;
    let (parts, body) = response.into_parts();
    // An error answered at once comes in the headers ("trailers-only").
    if let Some(status) = tonic::Status::from_header_map(&parts.headers).filter(|s| s.code() != tonic::Code::Ok) {
        return Err(grpc_failure(status));
    }
    if parts.status != http::StatusCode::OK {
        return Err(Failure { message: format!("the Collector answered HTTP {}", parts.status), retryable: true });
    }
    let answer = body.collect().await.map_err(|e| transport(&e))?;
    let status = answer.trailers().and_then(tonic::Status::from_header_map);
    match status {
        Some(status) if status.code() == tonic::Code::Ok => {}
        Some(status) => return Err(grpc_failure(status)),
        None => return Err(Failure { message: "the Collector's answer has no grpc-status".into(), retryable: true }),
    }
    // The answer's own 5-byte prefix, then the message (empty is valid).
    let data = answer.to_bytes();
    Ok(data.slice(5.min(data.len())..))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_sdk::logs::SdkLogRecord;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    fn span(id: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /api/info".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![KeyValue::new("http.route", "/api/info")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("demo-app").build(),
        }
    }

    /// Each request, with its `api-key` header.
    type Received = Vec<(ExportTraceServiceRequest, Option<String>)>;

    /// A Collector that answers each export with the next of `answers`
    /// (then OK), and keeps what it received.
    #[derive(Default, Clone)]
    struct Collector {
        received: Arc<Mutex<Received>>,
        answers: Arc<Mutex<Vec<tonic::Status>>>,
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let key = request.metadata().get("api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
            if let Some(status) = self.answers.lock().unwrap().pop() {
                return Err(status);
            }
            self.received.lock().unwrap().push((request.into_inner(), key));
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    async fn serve(collector: Collector) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{address}")
    }

    fn exporter(transport: anyhow::Result<OtlpSpanExporter>) -> OtlpSpanExporter {
        let mut exporter = transport.unwrap();
        exporter.set_resource(&Resource::builder_empty().with_service_name("demo-app").build());
        exporter
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpc_delivers_every_span_with_the_headers_and_retries_an_unavailable_collector() {
        let collector = Collector::default();
        collector.answers.lock().unwrap().push(tonic::Status::unavailable("starting"));
        let endpoint = serve(collector.clone()).await;
        let headers = [("api-key".to_string(), "s3cret".to_string())];
        let exporter = exporter(OtlpSpanExporter::grpc(
            &endpoint,
            &headers,
            Duration::from_secs(5),
            tokio::runtime::Handle::current(),
        ));

        exporter.export((1..=3).map(span).collect()).await.expect("delivered on the second attempt");

        let received = collector.received.lock().unwrap();
        assert_eq!(received.len(), 1, "the retry, after one UNAVAILABLE");
        let (request, key) = &received[0];
        assert_eq!(key.as_deref(), Some("s3cret"));
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            spans.iter().map(|s| s.span_id.clone()).collect::<Vec<_>>(),
            (1u64..=3).map(|i| i.to_be_bytes().to_vec()).collect::<Vec<_>>()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_that_retrying_cannot_fix_fails_at_once() {
        let collector = Collector::default();
        collector.answers.lock().unwrap().push(tonic::Status::invalid_argument("bad spans"));
        let endpoint = serve(collector.clone()).await;
        let exporter =
            exporter(OtlpSpanExporter::grpc(&endpoint, &[], Duration::from_secs(5), tokio::runtime::Handle::current()));
        let error = exporter.export(vec![span(1)]).await.expect_err("INVALID_ARGUMENT is final");
        assert!(error.to_string().contains("bad spans"), "{error}");
        assert!(collector.received.lock().unwrap().is_empty());
    }

    /// A Collector's logs service that keeps what it receives.
    #[derive(Default, Clone)]
    struct LogCollector(Arc<Mutex<Vec<ExportLogsServiceRequest>>>);

    #[tonic::async_trait]
    impl LogsService for LogCollector {
        async fn export(
            &self,
            request: tonic::Request<ExportLogsServiceRequest>,
        ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
        }
    }

    /// Log lines as the bridge hands them to the exporter.
    fn log_lines(bodies: &[&'static str]) -> Vec<SdkLogRecord> {
        use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
        let logger = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build().logger("bridge");
        bodies
            .iter()
            .map(|body| {
                let mut record = logger.create_log_record();
                record.set_body((*body).into());
                record.set_observed_timestamp(std::time::SystemTime::now());
                record
            })
            .collect()
    }

    fn bodies(request: &ExportLogsServiceRequest) -> Vec<String> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let records = request.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records);
        records
            .map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(Value::StringValue(text)) => text.clone(),
                other => panic!("not a text body: {other:?}"),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn log_records_go_to_the_logs_service_over_grpc_and_http() {
        let scope = InstrumentationScope::builder("bridge").build();
        let records = log_lines(&["order created", "order shipped"]);
        let pairs: Vec<_> = records.iter().map(|r| (r, &scope)).collect();

        let collector = LogCollector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogsServiceServer::new(collector.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut grpc =
            OtlpLogExporter::grpc(&endpoint, &[], Duration::from_secs(5), tokio::runtime::Handle::current()).unwrap();
        grpc.set_resource(&Resource::builder_empty().with_service_name("demo-app").build());
        grpc.export(LogBatch::new(&pairs)).await.expect("delivered over gRPC");
        assert_eq!(bodies(&collector.0.lock().unwrap()[0]), ["order created", "order shipped"]);

        let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let keep = received.clone();
        let app = axum::Router::new().route(
            "/v1/logs",
            axum::routing::post(move |body: Bytes| async move {
                keep.lock().unwrap().push(body);
                ExportLogsServiceResponse::default().encode_to_vec()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/logs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = OtlpLogExporter::http(
            &url,
            &[],
            reqwest::Client::new(),
            Duration::from_secs(5),
            tokio::runtime::Handle::current(),
        )
        .unwrap();
        http.export(LogBatch::new(&pairs)).await.expect("delivered over HTTP");
        let request = ExportLogsServiceRequest::decode(received.lock().unwrap()[0].clone()).unwrap();
        assert_eq!(bodies(&request), ["order created", "order shipped"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_posts_protobuf_to_the_traces_path() {
        let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let keep = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| async move {
                let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                keep.lock().unwrap().push((kind, body));
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let exporter = exporter(OtlpSpanExporter::http(
            &url,
            &[],
            reqwest::Client::new(),
            Duration::from_secs(5),
            tokio::runtime::Handle::current(),
        ));

        exporter.export(vec![span(7)]).await.expect("delivered");

        let received = received.lock().unwrap();
        assert_eq!(received[0].0, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(received[0].1.clone()).unwrap();
        assert_eq!(request.resource_spans[0].scope_spans[0].spans[0].span_id, 7u64.to_be_bytes());
    }
}

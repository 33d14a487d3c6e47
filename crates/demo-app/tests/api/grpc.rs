//! podinfo's gRPC API, spoken to with generated clients over h2c.

use demo_app::grpc::pb;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{TestApp, spawn_grpc_app};

async fn channel(app: &TestApp) -> Channel {
    let address = app.grpc_address.clone().expect("the gRPC API is served");
    Channel::from_shared(address).unwrap().connect().await.expect("connects")
}

#[tokio::test]
async fn info_version_and_echo_answer_as_podinfo_does() {
    let app = spawn_grpc_app(|config| config.ui_message = "hello gRPC".into()).await;
    let channel = channel(&app).await;
    let info = pb::info::info_service_client::InfoServiceClient::new(channel.clone())
        .info(pb::info::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.message, "hello gRPC");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.numcpu.parse::<u32>().unwrap() >= 1, "{info:?}");
    let version = pb::version::version_service_client::VersionServiceClient::new(channel.clone())
        .version(pb::version::VersionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.version, info.version);
    let echoed = pb::echo::echo_service_client::EchoServiceClient::new(channel)
        .echo(pb::echo::Message { body: "ping ✓".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(echoed.body, "ping ✓");
}

#[tokio::test]
async fn status_ends_the_call_with_the_named_code() {
    let app = spawn_grpc_app(|_| {}).await;
    let mut client = pb::status::status_service_client::StatusServiceClient::new(channel(&app).await);
    let ok = client.status(pb::status::StatusRequest { code: "Ok".into() }).await.unwrap().into_inner();
    assert_eq!(ok.status, "Ok");
    for (name, code) in
        [("NotFound", Code::NotFound), ("Unavailable", Code::Unavailable), ("Canceled", Code::Cancelled)]
    {
        let error = client.status(pb::status::StatusRequest { code: name.into() }).await.unwrap_err();
        assert_eq!(error.code(), code, "{name}");
    }
    let unknown = client.status(pb::status::StatusRequest { code: "Teapot".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unknown);
    assert!(unknown.message().contains("Teapot"), "{unknown:?}");
}

#[tokio::test]
async fn delay_waits_and_refuses_what_it_cannot() {
    let app = spawn_grpc_app(|_| {}).await;
    let mut client = pb::delay::delay_service_client::DelayServiceClient::new(channel(&app).await);
    let started = std::time::Instant::now();
    let waited = client.delay(pb::delay::DelayRequest { seconds: 1 }).await.unwrap().into_inner();
    assert_eq!(waited.message, 1);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let refused = client.delay(pb::delay::DelayRequest { seconds: -1 }).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn tokens_issued_over_grpc_validate_from_metadata() {
    let app = spawn_grpc_app(|config| config.jwt_secret = Some("grpc-secret".into())).await;
    let mut client = pb::token::token_service_client::TokenServiceClient::new(channel(&app).await);
    let issued = client.token_generate(pb::token::TokenRequest {}).await.unwrap().into_inner();
    assert_eq!(issued.message, "Token generated successfully");
    let mut request = tonic::Request::new(pb::token::TokenRequest {});
    request.metadata_mut().insert("authorization", format!("Bearer {}", issued.token).parse().unwrap());
    let validated = client.token_validate(request).await.unwrap().into_inner();
    assert_eq!((validated.token.as_str(), validated.expires_at.as_str()), ("anonymous", issued.expires_at.as_str()));
    let missing = client.token_validate(pb::token::TokenRequest {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let mut forged = tonic::Request::new(pb::token::TokenRequest {});
    forged.metadata_mut().insert("authorization", format!("Bearer {}x", issued.token).parse().unwrap());
    assert_eq!(client.token_validate(forged).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn headers_and_env_are_listed_with_secrets_redacted() {
    let app = spawn_grpc_app(|_| {}).await;
    let channel = channel(&app).await;
    let mut request = tonic::Request::new(pb::header::HeaderRequest {});
    request.metadata_mut().insert("x-request-id", "abc-123".parse().unwrap());
    let headers = pb::header::header_service_client::HeaderServiceClient::new(channel.clone())
        .header(request)
        .await
        .unwrap()
        .into_inner()
        .headers;
    assert!(headers.contains(&"x-request-id=abc-123".to_string()), "{headers:?}");
    let vars = pb::env::env_service_client::EnvServiceClient::new(channel)
        .env(pb::env::EnvRequest {})
        .await
        .unwrap()
        .into_inner()
        .env_vars;
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{} variables, no PATH", vars.len());
}

#[tokio::test]
async fn health_says_serving_for_the_server_and_the_service_name() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let app = spawn_grpc_app(|config| config.grpc_service_name = "podinfo".into()).await;
    let mut health = HealthClient::new(channel(&app).await);
    for service in ["", "podinfo"] {
        let answer = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_podinfos_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let app = spawn_grpc_app(|_| {}).await;
    let mut client = ServerReflectionClient::new(channel(&app).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for wanted in
        ["echo.EchoService", "info.InfoService", "status.StatusService", "token.TokenService", "version.VersionService"]
    {
        assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
    }
}

#[tokio::test]
async fn grpc_calls_are_counted_like_http_requests() {
    let app = spawn_grpc_app(|_| {}).await;
    pb::version::version_service_client::VersionServiceClient::new(channel(&app).await)
        .version(pb::version::VersionRequest {})
        .await
        .unwrap();
    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
    let series = metrics.lines().filter(|l| l.contains("versionservice") && !l.starts_with('#')).count();
    assert!(series > 0, "no series for the gRPC call:\n{metrics}");
}

#[tokio::test]
async fn a_failed_call_is_counted_by_its_code_not_as_http_200() {
    let app = spawn_grpc_app(|_| {}).await;
    let mut client = pb::status::status_service_client::StatusServiceClient::new(channel(&app).await);
    let error = client.status(pb::status::StatusRequest { code: "NotFound".into() }).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
    let counted: Vec<_> = metrics.lines().filter(|l| l.contains("statusservice") && l.contains("_count")).collect();
    assert!(counted.iter().any(|l| l.contains("status=\"404\"")), "NotFound not counted as 404: {counted:?}");
    assert!(!counted.iter().any(|l| l.contains("status=\"200\"")), "a failed call counted as 200: {counted:?}");
}

#[tokio::test]
async fn messages_count_against_the_memory_budget() {
    let app = spawn_grpc_app(|config| config.max_buffered_bytes = Some(2 << 20)).await;
    let mut client = pb::echo::echo_service_client::EchoServiceClient::new(channel(&app).await);
    let small = client.echo(pb::echo::Message { body: "x".repeat(256 << 10) }).await;
    assert!(small.is_ok(), "256 KiB fits a 2 MiB budget: {small:?}");
    let large = client.echo(pb::echo::Message { body: "x".repeat(3 << 20) }).await.unwrap_err();
    assert_eq!(large.code(), Code::ResourceExhausted, "{large:?}");
    assert!(large.message().contains("--max-buffered-bytes"), "{large:?}");
}

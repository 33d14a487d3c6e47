//! Differential test of the gRPC API: the same calls to real podinfo (built
//! by `make tools`, started with --grpc-port) and to demo-app; the status
//! code of every call and the set of fields each answer fills must match.
//! Deliberate differences (README, "Differences from podinfo") are asserted
//! as such.

#[allow(dead_code)]
mod support;

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};
use support::podinfo::{self, Podinfo};

use demo_app::grpc::pb;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// The same logo for both (podinfo's default is a URL, ours empty).
const LOGO: &str = "https://example.test/logo.png";

/// podinfo with its gRPC API, and a channel to it once it answers.
async fn start_podinfo() -> (Podinfo, Channel) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let podinfo = podinfo::spawn(port, &["--port", "0", "--grpc-port", &port.to_string(), "--ui-logo", LOGO]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) = Channel::from_shared(podinfo.base.clone()).unwrap().connect().await {
            return (podinfo, channel);
        }
        assert!(Instant::now() < deadline, "podinfo's gRPC port did not open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A call's outcome: its status code, and which fields of the answer are
/// filled (proto3 sends defaults as absent), from its Debug form.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: Code,
    filled: Vec<String>,
}

fn outcome<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Outcome {
    match result {
        Ok(response) => Outcome { code: Code::Ok, filled: filled_fields(&format!("{:?}", response.into_inner())) },
        Err(status) => Outcome { code: status.code(), filled: Vec::new() },
    }
}

/// `Message { a: "x", b: "", c: 0, d: [] }` → `["a"]`.
fn filled_fields(debug: &str) -> Vec<String> {
    let inner = debug.split_once('{').map_or("", |(_, rest)| rest.trim_end().trim_end_matches('}'));
    let mut filled: Vec<String> = inner
        .split(", ")
        .filter_map(|field| field.split_once(": "))
        .filter(|(_, value)| !matches!(value.trim(), "\"\"" | "0" | "[]" | "false"))
        .map(|(name, _)| name.trim().to_string())
        .collect();
    filled.sort();
    filled
}

/// Every shared call, on one channel.
async fn calls(channel: Channel) -> Vec<(&'static str, Outcome)> {
    let mut info = pb::info::info_service_client::InfoServiceClient::new(channel.clone());
    let mut version = pb::version::version_service_client::VersionServiceClient::new(channel.clone());
    let mut echo = pb::echo::echo_service_client::EchoServiceClient::new(channel.clone());
    let mut delay = pb::delay::delay_service_client::DelayServiceClient::new(channel.clone());
    let mut env = pb::env::env_service_client::EnvServiceClient::new(channel.clone());
    let mut header = pb::header::header_service_client::HeaderServiceClient::new(channel.clone());
    let mut status = pb::status::status_service_client::StatusServiceClient::new(channel.clone());
    let mut token = pb::token::token_service_client::TokenServiceClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status_of = |code: &str| pb::status::StatusRequest { code: code.into() };
    vec![
        ("Info", outcome(info.info(pb::info::InfoRequest {}).await)),
        ("Version", outcome(version.version(pb::version::VersionRequest {}).await)),
        ("Echo", outcome(echo.echo(pb::echo::Message { body: "parity".into() }).await)),
        ("Delay 1", outcome(delay.delay(pb::delay::DelayRequest { seconds: 1 }).await)),
        ("Env", outcome(env.env(pb::env::EnvRequest {}).await)),
        ("Header", outcome(header.header(pb::header::HeaderRequest {}).await)),
        ("Status Ok", outcome(status.status(status_of("Ok")).await)),
        ("Status NotFound", outcome(status.status(status_of("NotFound")).await)),
        ("Status Unavailable", outcome(status.status(status_of("Unavailable")).await)),
        ("Status unknown name", outcome(status.status(status_of("Teapot")).await)),
        ("TokenGenerate", outcome(token.token_generate(pb::token::TokenRequest {}).await)),
        ("TokenValidate without a token", outcome(token.token_validate(pb::token::TokenRequest {}).await)),
        ("TokenValidate, not a JWT", {
            let mut request = Request::new(pb::token::TokenRequest {});
            request.metadata_mut().insert("authorization", "Bearer not-a-jwt".parse().unwrap());
            outcome(token.token_validate(request).await)
        }),
        ("Health", outcome(health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await)),
    ]
}

#[tokio::test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
async fn every_shared_call_answers_like_podinfo() {
    let (_podinfo, podinfo_channel) = start_podinfo().await;
    let app = helpers::spawn_grpc_app(|config| {
        config.jwt_secret = Some("parity-secret".into());
        config.ui_logo = LOGO.into();
    })
    .await;
    let ours = Channel::from_shared(app.grpc_address.clone().unwrap()).unwrap().connect().await.unwrap();
    let (theirs, ours) = (calls(podinfo_channel).await, calls(ours).await);
    let differences: Vec<String> = theirs
        .iter()
        .zip(&ours)
        .filter(|((_, podinfo), (_, demo_app))| podinfo != demo_app)
        .map(|((name, podinfo), (_, demo_app))| format!("{name}: podinfo {podinfo:?}, demo-app {demo_app:?}"))
        .collect();
    assert_eq!(theirs.len(), 14, "calls compared");
    assert!(differences.is_empty(), "{} of 14 calls differ:\n{}", differences.len(), differences.join("\n"));
}

/// README: podinfo answers a token signed with another secret with OK and the
/// error in `message`; demo-app refuses it with Unauthenticated, as its HTTP
/// API answers 401.
#[tokio::test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
async fn a_forged_token_is_refused_where_podinfo_answers_ok() {
    let (_podinfo, podinfo_channel) = start_podinfo().await;
    let app = helpers::spawn_grpc_app(|config| config.jwt_secret = Some("another-secret".into())).await;
    let ours = Channel::from_shared(app.grpc_address.clone().unwrap()).unwrap().connect().await.unwrap();
    let mut podinfo = pb::token::token_service_client::TokenServiceClient::new(podinfo_channel);
    let mut demo_app = pb::token::token_service_client::TokenServiceClient::new(ours);
    // Each server's token is forged for the other (different secrets).
    let from_demo_app = demo_app.token_generate(pb::token::TokenRequest {}).await.unwrap().into_inner().token;
    let validate = |token: &str| {
        let mut request = Request::new(pb::token::TokenRequest {});
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let answered = podinfo.token_validate(validate(&from_demo_app)).await.expect("podinfo answers OK").into_inner();
    assert!(answered.message.contains("signature is invalid"), "podinfo: {answered:?}");
    let from_podinfo = podinfo.token_generate(pb::token::TokenRequest {}).await.unwrap().into_inner().token;
    let refused = demo_app.token_validate(validate(&from_podinfo)).await.expect_err("demo-app refuses");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

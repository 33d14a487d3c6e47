//! podinfo's gRPC API on --grpc-port: its nine services (same package,
//! service and method names, so its grpcurl examples and Helm tests work),
//! the standard health service and server reflection. Served by the same
//! accept loop as HTTP (serve.rs: limits, timeouts, h2c) and observed by
//! the same middleware (server spans, request metrics).

pub mod pb;
mod services;

use axum::middleware::{from_fn, from_fn_with_state};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::state::AppState;

/// The gRPC router, and the health reporter to turn NOT_SERVING on
/// shutdown.
pub async fn router(state: &AppState) -> anyhow::Result<(axum::Router, HealthReporter)> {
    use pb::{delay, echo, env, header, info, panic, status, token, version};
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(state.config.grpc_service_name.as_str(), ServingStatus::Serving).await;
    let reflection =
        tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(pb::DESCRIPTORS);
    let podinfo = services::Podinfo(state.clone());
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection.build_v1()?)
        .add_service(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::DESCRIPTORS)
                .build_v1alpha()?,
        )
        .add_service(delay::delay_service_server::DelayServiceServer::new(podinfo.clone()))
        .add_service(echo::echo_service_server::EchoServiceServer::new(podinfo.clone()))
        .add_service(env::env_service_server::EnvServiceServer::new(podinfo.clone()))
        .add_service(header::header_service_server::HeaderServiceServer::new(podinfo.clone()))
        .add_service(info::info_service_server::InfoServiceServer::new(podinfo.clone()))
        .add_service(panic::panic_service_server::PanicServiceServer::new(podinfo.clone()))
        .add_service(status::status_service_server::StatusServiceServer::new(podinfo.clone()))
        .add_service(token::token_service_server::TokenServiceServer::new(podinfo.clone()))
        .add_service(version::version_service_server::VersionServiceServer::new(podinfo));
    let router = routes
        .into_axum_router()
        // Messages count against the memory budget as HTTP bodies do.
        .layer(crate::routes::BodyBudgetLayer::grpc(state.memory.clone()))
        .layer(from_fn_with_state(state.metrics.clone(), crate::metrics::record_grpc))
        .layer(from_fn(crate::telemetry::grpc::trace_calls));
    Ok((router, health))
}

/// Draining: every service reports NOT_SERVING, so clients that check
/// health move to other pods before the listener closes.
pub async fn not_serving(health: &HealthReporter, service_name: &str) {
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_service_status(service_name, ServingStatus::NotServing).await;
}

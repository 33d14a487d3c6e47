//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at /openapi.json (and /swagger.json, where podinfo serves its own).

use axum::Json;
use axum::extract::State;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::config::Config;
use crate::state::AppState;

use super::{
    cache, checkout, configs, delay, echo, env, headers, info, openapi_paths, orders, status, store_files, token,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "demo-app", description = "podinfo-compatible API plus an orders service"),
    paths(
        info::handler, info::version, configs::handler, status::handler, delay::handler, env::handler, headers::handler,
        echo::handler, token::issue, token::validate, store_files::write, store_files::read,
        cache::read, cache::write, cache::delete, orders::create, orders::get, orders::list, checkout::handler,
        openapi_paths::index, openapi_paths::ui_asset, openapi_paths::post_status, openapi_paths::put_status, openapi_paths::chunked_random, openapi_paths::chunked, openapi_paths::post_env, openapi_paths::post_headers, openapi_paths::get_echo, openapi_paths::post_echo, openapi_paths::get_echo_rest, openapi_paths::post_echo_rest, openapi_paths::get_api_echo, openapi_paths::get_api_echo_rest, openapi_paths::post_api_echo_rest, openapi_paths::put_store, openapi_paths::put_cache, openapi_paths::ws_echo, openapi_paths::post_chunked_random, openapi_paths::post_chunked, openapi_paths::put_echo, openapi_paths::put_echo_rest,
        openapi_paths::put_api_echo, openapi_paths::put_api_echo_rest, openapi_paths::openapi, openapi_paths::swagger, openapi_paths::healthz, openapi_paths::readyz, openapi_paths::metrics, openapi_paths::readyz_enable, openapi_paths::readyz_disable, openapi_paths::faults_enable, openapi_paths::faults_disable, openapi_paths::faults_status, openapi_paths::panic,
    ),
    modifiers(&BearerAuth, &BodyLimits),
    tags((name = "podinfo", description = "podinfo's API, same paths and JSON keys"), (name = "orders", description = "our orders service"),
        (name = "operations", description = "probes, metrics and (with --control-endpoints) readiness and fault switches"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Every operation that takes a body can be refused before it is read: over
/// 10 MiB (413), or past the memory budget for bodies (503).
struct BodyLimits;

impl utoipa::Modify for BodyLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::ResponseBuilder;
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put].into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("413".into())
                    .or_insert_with(|| ResponseBuilder::new().description("body larger than 10 MiB").into());
                responses.entry("503".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("the server's memory budget for request bodies is spent (--max-buffered-bytes): retry after Retry-After")
                        .into()
                });
            }
        }
    }
}

/// The document of what this process serves: its role's routes, and the
/// control routes only when they are on.
pub fn document(config: &Config) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let paths = &mut doc.paths.paths;
    if !config.role.serves_orders() {
        paths.remove("/cache/{key}");
        paths.remove("/api/orders/{id}");
        if let Some(orders) = paths.get_mut("/api/orders") {
            orders.post = None;
        }
    }
    if !config.role.serves_checkout() {
        paths.remove("/api/checkout");
    }
    if !config.control_endpoints {
        for path in ["/readyz/enable", "/readyz/disable", "/fault_injection/enable", "/fault_injection/disable"] {
            paths.remove(path);
        }
        paths.remove("/fault_injection/status");
        paths.remove("/panic");
    }
    doc
}

pub async fn handler(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(document(&state.config))
}

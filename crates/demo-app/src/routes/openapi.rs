//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at /openapi.json (and /swagger.json, where podinfo serves its own).

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{cache, checkout, delay, echo, env, headers, info, openapi_paths, orders, status, store_files, token};

#[derive(OpenApi)]
#[openapi(
    info(title = "demo-app", description = "podinfo-compatible API plus an orders service"),
    paths(
        info::handler, info::version, status::handler, delay::handler, env::handler, headers::handler,
        echo::handler, token::issue, token::validate, store_files::write, store_files::read,
        cache::read, cache::write, cache::delete, orders::create, orders::get, orders::list, checkout::handler,
        openapi_paths::index, openapi_paths::ui_asset, openapi_paths::post_status, openapi_paths::put_status, openapi_paths::chunked_random, openapi_paths::chunked, openapi_paths::post_env, openapi_paths::post_headers, openapi_paths::get_echo, openapi_paths::post_echo, openapi_paths::get_echo_rest, openapi_paths::post_echo_rest, openapi_paths::get_api_echo, openapi_paths::get_api_echo_rest, openapi_paths::post_api_echo_rest, openapi_paths::put_store, openapi_paths::put_cache, openapi_paths::ws_echo, openapi_paths::post_chunked_random, openapi_paths::post_chunked, openapi_paths::put_echo, openapi_paths::put_echo_rest,
        openapi_paths::put_api_echo, openapi_paths::put_api_echo_rest, openapi_paths::openapi, openapi_paths::swagger, openapi_paths::healthz, openapi_paths::readyz, openapi_paths::metrics, openapi_paths::readyz_enable, openapi_paths::readyz_disable, openapi_paths::faults_enable, openapi_paths::faults_disable, openapi_paths::faults_status, openapi_paths::panic,
    ),
    modifiers(&BearerAuth),
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

pub async fn handler() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at /openapi.json (and /swagger.json, where podinfo serves its own).

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{cache, checkout, delay, echo, env, headers, info, orders, status, store_files, token};

#[derive(OpenApi)]
#[openapi(
    info(title = "demo-app", description = "podinfo-compatible API plus an orders service"),
    paths(
        info::handler, info::version, status::handler, delay::handler, env::handler, headers::handler,
        echo::handler, token::issue, token::validate, store_files::write, store_files::read,
        cache::read, cache::write, cache::delete, orders::create, orders::get, orders::list, checkout::handler,
    ),
    modifiers(&BearerAuth),
    tags((name = "podinfo", description = "podinfo's API, same paths and JSON keys"), (name = "orders", description = "our orders service"))
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

//! The HTTP surface: one handler per file, assembled here.
//!
//! Routes fall in two groups. *App* routes are subject to fault injection and
//! the random delay/error middlewares. *Operational* routes (probes, metrics,
//! control switches) never are: a chaos experiment must not make Kubernetes
//! kill the pod or lose its ability to switch the experiment off.

pub(crate) mod body_budget;
mod cache;
mod checkout;
mod chunked;
mod configs;
mod control;
pub(crate) mod delay;
mod echo;
pub(crate) mod env;
mod exact;
mod headers;
mod health;
mod index;
pub(crate) mod info;
mod observe;
mod openapi;
mod openapi_paths;
mod orders;
mod orders_proxy;
mod status;
mod store_files;
pub(crate) mod token;
mod upstream;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceBuilder;

pub use body_budget::BodyBudgetLayer;
pub use exact::App;
pub use openapi::{ApiDoc, document as openapi_document};

use crate::faults;
use crate::metrics;
use crate::state::AppState;

/// Request bodies above this size are refused with 413.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// The HTTP port's service: `GET /api/info` and `GET /healthz` answered
/// first (exact.rs), everything else by the router.
pub fn app(state: AppState) -> App {
    App::new(&state, router(state.clone()))
}

fn router(state: AppState) -> Router {
    let role = state.config.role;
    let mut app = Router::new()
        .route("/", get(index::handler))
        .route("/api/info", get(with(&state, info::handler)))
        .route("/version", get(info::version))
        .route("/status/{code}", get(status::handler).post(status::handler).put(status::handler))
        .route("/delay/{seconds}", get(delay::handler))
        .route("/chunked", get(chunked::random).post(chunked::random))
        .route("/chunked/{seconds}", get(chunked::handler).post(chunked::handler))
        .route("/env", get(env::handler).post(env::handler))
        .route("/configs", get(configs::handler))
        .route("/headers", get(headers::handler).post(headers::handler))
        .route("/echo", get(echo::handler).post(echo::handler).put(echo::handler))
        .route("/echo/{*rest}", get(echo::handler).post(echo::handler).put(echo::handler))
        .route("/api/echo", get(echo::handler).post(echo::handler).put(echo::handler))
        .route("/api/echo/{*rest}", get(echo::handler).post(echo::handler).put(echo::handler))
        .route("/token", post(token::issue))
        .route("/token/validate", get(token::validate))
        .route("/store", post(store_files::write).put(store_files::write))
        .route("/store/{hash}", get(store_files::read))
        .route("/ws/echo", get(ws::handler))
        .route("/openapi.json", get(openapi::handler))
        .route("/swagger.json", get(openapi::handler))
        .route("/ui/{asset}", get(index::asset));
    if role.serves_orders() {
        app = app
            .route("/cache/{key}", get(cache::read).post(cache::write).put(cache::write).delete(cache::delete))
            .route("/api/orders", post(orders::create).get(orders::list))
            .route("/api/orders/{id}", get(orders::get));
    }
    if role.serves_checkout() {
        app = app.route("/api/checkout", post(checkout::handler));
        if !role.serves_orders() {
            // The UI lists orders from the frontend: it asks the backend.
            app = app.route("/api/orders", get(orders_proxy::handler));
        }
    }
    // One `layer` call per route: axum boxes each route again for every
    // call, and clones each box for every request (an inner call for the
    // faults and an outer one for what every route shares cost 0.9k
    // instructions a request more on GET /api/info).
    let app = app.layer(
        ServiceBuilder::new()
            .layer(observe::ObserveLayer::new(state.metrics.clone()))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(faults::FaultsLayer::new(state.clone()))
            .layer(body_budget::BodyBudgetLayer::http(state.memory.clone())),
    );

    // Probes and scrapes: no injected fault, no body.
    let mut operational = Router::new()
        .route("/healthz", get(with(&state, health::healthz)))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handler));
    if state.config.control_endpoints {
        operational = operational
            .route("/readyz/enable", post(health::enable))
            .route("/readyz/disable", post(health::disable))
            .route("/fault_injection/enable", post(control::enable_faults))
            .route("/fault_injection/disable", post(control::disable_faults))
            .route("/fault_injection/status", get(control::fault_status))
            .route("/panic", get(control::panic));
    }
    let operational = operational.layer(
        ServiceBuilder::new()
            .layer(observe::ObserveLayer::new(state.metrics.clone()))
            .layer(DefaultBodyLimit::max(BODY_LIMIT)),
    );

    // Both keep axum's default fallback, and `merge` keeps the one of the
    // router merged in: unmatched paths get operational's layers (observed,
    // no injected fault), as when one layer wrapped them all. Merged the
    // other way round, a 404 would take the faults too.
    app.merge(operational).with_state(state)
}

/// A synchronous handler of the state alone (the exact routes' handlers,
/// for the methods the router takes on their paths).
fn with(
    state: &AppState,
    handler: fn(&AppState) -> Response,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let state = state.clone();
    move || std::future::ready(handler(&state))
}

/// The metrics port: Prometheus scrapes and the liveness probe, which must
/// answer while clients fill the app port's connection slots.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/healthz", get(health::metrics_port_healthz))
        .with_state(state)
}

//! Prometheus metrics with podinfo's names, served on --port-metrics (and on
//! /metrics of the main port, as podinfo does). Labels use route templates
//! only, never raw paths or ids, so cardinality stays bounded.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

use crate::grpc_status;
use crate::route_names;
use crate::version::{REVISION, VERSION};

/// Prometheus' default buckets (podinfo's) plus a 0.3 s edge: the latency
/// SLO (99 % of requests under 300 ms) counts `le="0.3"` exactly instead of
/// approximating the threshold with the 0.25 s bucket.
const DEFAULT_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Borrowed and numeric values: a request allocates no label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub path: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

pub struct Metrics {
    /// Tells the registries of one process apart (tests run several apps)
    /// in the threads' caches of series (`observe`).
    id: u64,
    registry: Registry,
    pub request_duration: HistogramFamily<RequestLabels>,
    pub requests: Family<StatusLabels, Counter>,
    pub orders_created: Counter,
    pub orders_value_cents: Counter,
    pub checkout_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let request_duration = HistogramFamily::<RequestLabels>::new_with_constructor(default_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Duration of HTTP requests by method, route template and status",
            request_duration.clone(),
        );
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by status", requests.clone());
        let orders_created = Counter::default();
        registry.register("orders_created", "Orders committed (replays excluded)", orders_created.clone());
        let orders_value_cents = Counter::default();
        registry.register("orders_value_cents", "Sum of total_cents of committed orders", orders_value_cents.clone());
        let checkout_duration = default_histogram();
        registry.register(
            "checkout_duration_seconds",
            "Duration of checkouts, including the call to the orders backend",
            checkout_duration.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: VERSION.into(), commit: REVISION.into() }).set(1);
        registry.register("demo_app_build_info", "Version and commit of the running binary", build_info);
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        registry.register(
            "telemetry_dropped",
            "Spans, log records and metric streams that could not be exported over OTLP",
            crate::telemetry::dropped::DROPPED.clone(),
        );
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        Self { id, registry, request_duration, requests, orders_created, orders_value_cents, checkout_duration }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// GET /metrics.
pub async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode()).into_response()
}

/// `record` for the gRPC port. A gRPC error travels as HTTP 200 with a
/// `grpc-status` header: counted as that, every failed call looked like a
/// success to the error-rate alerts. The code is counted as the HTTP
/// status Google's API design maps it to (INVALID_ARGUMENT 400, NOT_FOUND
/// 404, INTERNAL 500, UNAVAILABLE 503...).
pub async fn record_grpc(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let path = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, |p| route_names::of(p.as_str()).label);
    let response = next.run(request).await;
    // Counted when the call's code is known: a call that sent messages has
    // it in its trailers; one the client abandons counts as CANCELLED (499).
    grpc_status::when_done(response, move |code| {
        observe(&metrics, method, path, grpc_code_as_http(code), started.elapsed());
    })
}

/// The HTTP status of a gRPC status code (google.rpc.Code's mapping).
pub fn grpc_code_as_http(code: u8) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// The `path` label of a request no route matched (404): an attacker's
/// random URLs cannot grow the label set.
pub const UNMATCHED: &str = "unmatched";

/// A request's series: its registry, the addresses and lengths of its
/// method and route labels (`&'static str`, compared without hashing their
/// text), its status.
type SeriesKey = (u64, (usize, usize), (usize, usize), u16);

/// Series a thread keeps handles of, at most: methods × routes is small,
/// but `/status/{code}` lets a client pick among hundreds of statuses.
const CACHED_SERIES: usize = 2048;

thread_local! {
    /// Each thread's handles of the series it counted: the families'
    /// lookups (SipHash of the labels, a lock) cost 0.7k instructions a
    /// request; a handle shares its series' counts.
    static SERIES: RefCell<FxHashMap<SeriesKey, (Histogram, Counter)>> = RefCell::default();
}

/// Counts a request: its duration by method, route label and status.
pub fn observe(metrics: &Metrics, method: &'static str, path: &'static str, status: u16, lasted: Duration) {
    let seconds = lasted.as_secs_f64();
    let at = |text: &str| (text.as_ptr() as usize, text.len());
    let key = (metrics.id, at(method), at(path), status);
    let counted = SERIES.try_with(|series| {
        let mut series = series.borrow_mut();
        if let Some((duration, count)) = series.get(&key) {
            duration.observe(seconds);
            count.inc();
            return;
        }
        let duration = metrics.request_duration.get_or_create(&RequestLabels { method, path, status }).clone();
        let count = metrics.requests.get_or_create(&StatusLabels { status }).clone();
        duration.observe(seconds);
        count.inc();
        if series.len() < CACHED_SERIES {
            series.insert(key, (duration, count));
        }
    });
    // A thread whose locals are gone (a response dropped as it exits).
    if counted.is_err() {
        metrics.request_duration.get_or_create(&RequestLabels { method, path, status }).observe(seconds);
        metrics.requests.get_or_create(&StatusLabels { status }).inc();
    }
}

/// The method as a label value: the methods HTTP defines, anything else
/// `_OTHER` (as OpenTelemetry's semantic conventions say), so that a client
/// sending random method names cannot grow the series without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for random in ["FOO", "XYZZY1", "get"] {
            assert_eq!(method_label(&Method::from_bytes(random.as_bytes()).unwrap()), "_OTHER", "{random}");
        }
    }

    #[test]
    fn exposition_has_podinfo_and_business_names() {
        let metrics = Metrics::default();
        metrics.requests.get_or_create(&StatusLabels { status: 200 }).inc();
        metrics.orders_created.inc();
        let text = metrics.encode();
        for name in [
            "http_requests_total{status=\"200\"} 1",
            "orders_created_total 1",
            "demo_app_build_info{",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn each_request_counts_in_its_own_registry_cached_or_not() {
        let (first, second) = (Metrics::default(), Metrics::default());
        let lasted = Duration::from_millis(3);
        for _ in 0..3 {
            observe(&first, "GET", "api_info", 200, lasted);
        }
        observe(&second, "GET", "api_info", 200, lasted);
        // Past the threads' cache bound, counted all the same.
        for status in 0..(CACHED_SERIES as u16 + 10) {
            observe(&first, "POST", "status_code", status, lasted);
        }
        let text = first.encode();
        // Three GETs, and the POST of the loop that answered 200.
        assert!(text.contains("http_requests_total{status=\"200\"} 4"), "{text}");
        let count = |text: &str, series: &str| {
            text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).map(str::to_string)
        };
        let series = "http_request_duration_seconds_count{method=\"GET\",path=\"api_info\",status=\"200\"}";
        assert_eq!(count(&text, series).as_deref(), Some("3"));
        assert_eq!(count(&second.encode(), series).as_deref(), Some("1"), "another registry, its own count");
        let last = format!(
            "http_request_duration_seconds_count{{method=\"POST\",path=\"status_code\",status=\"{}\"}}",
            CACHED_SERIES + 9
        );
        assert_eq!(count(&text, &last).as_deref(), Some("1"), "a series past the bound");
    }
}

//! OpenTelemetry metric instruments with their semantic-convention names.
//! Created from the global meter provider, which `telemetry::init` sets
//! before the first request; without telemetry they are no-ops.

use std::sync::LazyLock;

use opentelemetry::global;
use opentelemetry::metrics::Histogram;

/// The HTTP semantic conventions' advised duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

pub struct Instruments {
    pub client_duration: Histogram<f64>,
    pub db_duration: Histogram<f64>,
}

pub static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let meter = global::meter("demo-app");
    let duration = |name: &'static str, description: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(description)
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build()
    };
    Instruments {
        client_duration: duration("http.client.request.duration", "Duration of HTTP client requests"),
        db_duration: duration("db.client.operation.duration", "Duration of database client operations"),
    }
});

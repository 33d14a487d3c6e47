//! OpenTelemetry metric instruments with their semantic-convention names.
//! Created from the global meter provider, which `telemetry::init` sets
//! before the first request; without telemetry they are no-ops.
//!
//! Each records through handles bound to its attribute sets (the SDK's
//! bound instruments): an unbound `record` hashes every attribute, key and
//! value, with SipHash to find its series, 1.4k of the 1.6k instructions a
//! checkout's database operation or outgoing call cost its metric
//! (callgrind). A bound handle goes straight to its series; which handle a
//! measurement takes is told by a few comparisons of what the caller
//! already holds (`Attributes::is`).

use std::sync::{LazyLock, PoisonError, RwLock};

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::metrics::{BoundHistogram, Histogram};

/// The HTTP semantic conventions' advised duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Attribute sets bound per instrument, at most. The sets come from the
/// configuration (the backend's and the database's address) and from small
/// fixed lists (operations, status codes, error types); past this bound a
/// measurement is recorded unbound, and the SDK's cardinality limit applies
/// as it always does.
const MAX_BOUND_SETS: usize = 64;

pub struct Instruments {
    pub client_duration: BoundSets<ClientCall<'static>>,
    pub db_duration: BoundSets<DbOperation>,
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
        client_duration: BoundSets::new(duration("http.client.request.duration", "Duration of HTTP client requests")),
        db_duration: BoundSets::new(duration("db.client.operation.duration", "Duration of database client operations")),
    }
});

/// What a measurement is recorded with: its attribute set, told apart from
/// the sets already bound without building it.
pub trait Attributes {
    /// What a bound set is remembered by.
    type Key: Send + Sync;
    /// Whether this is the set bound under `key`.
    fn is(&self, key: &Self::Key) -> bool;
    fn key(&self) -> Self::Key;
    fn attributes(&self) -> Vec<KeyValue>;
}

/// A histogram and the handles bound to the attribute sets it has seen.
pub struct BoundSets<K> {
    histogram: Histogram<f64>,
    bound: RwLock<Vec<(K, BoundHistogram<f64>)>>,
}

impl<K: Send + Sync> BoundSets<K> {
    pub fn new(histogram: Histogram<f64>) -> Self {
        Self { histogram, bound: RwLock::new(Vec::new()) }
    }

    /// Records `value` with the attributes of `set`, binding them the first
    /// time they are seen.
    pub fn record<A: Attributes<Key = K>>(&self, value: f64, set: &A) {
        let bound = self.bound.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, handle)) = bound.iter().find(|(key, _)| set.is(key)) {
            handle.record(value);
            return;
        }
        drop(bound);
        let mut bound = self.bound.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have bound it in between.
        if let Some((_, handle)) = bound.iter().find(|(key, _)| set.is(key)) {
            handle.record(value);
        } else if bound.len() < MAX_BOUND_SETS {
            let handle = self.histogram.bind(&set.attributes());
            handle.record(value);
            bound.push((set.key(), handle));
        } else {
            drop(bound);
            self.histogram.record(value, &set.attributes());
        }
    }
}

/// An outgoing HTTP call, as `http.client.request.duration` tells them apart.
pub struct ClientCall<'a> {
    /// `http.request.method`, bounded (`metrics::method_label`).
    pub method: &'static str,
    /// `server.address`.
    pub host: &'a str,
    /// `http.response.status_code`, or `error.type` of a call without one.
    pub outcome: Result<u16, &'static str>,
}

impl Attributes for ClientCall<'_> {
    type Key = ClientCall<'static>;

    fn is(&self, key: &Self::Key) -> bool {
        self.outcome == key.outcome && self.method == key.method && self.host == key.host
    }

    fn key(&self) -> Self::Key {
        // Leaked once per bound set, and those are bounded: a handle lives
        // as long as the process anyway.
        ClientCall { method: self.method, host: Box::leak(self.host.into()), outcome: self.outcome }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.method),
            KeyValue::new("server.address", self.host.to_owned()),
        ];
        attributes.push(match self.outcome {
            Ok(status) => KeyValue::new("http.response.status_code", i64::from(status)),
            Err(error) => KeyValue::new("error.type", error),
        });
        attributes
    }
}

/// A database operation, as `db.client.operation.duration` tells them apart.
#[derive(Clone, PartialEq)]
pub struct DbOperation {
    /// `db.system.name`.
    pub system: &'static str,
    /// `db.operation.name`.
    pub operation: &'static str,
    /// `db.collection.name`, when the operation has one.
    pub collection: Option<&'static str>,
    /// Where a networked database is (`db.namespace`, `server.address`, `server.port`).
    pub target: Option<std::sync::Arc<super::span_record::DbTarget>>,
}

impl Attributes for DbOperation {
    type Key = DbOperation;

    fn is(&self, key: &Self::Key) -> bool {
        self == key
    }

    fn key(&self) -> Self::Key {
        self.clone()
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes =
            vec![KeyValue::new("db.system.name", self.system), KeyValue::new("db.operation.name", self.operation)];
        attributes.extend(self.collection.map(|c| KeyValue::new("db.collection.name", c)));
        if let Some(target) = &self.target {
            attributes.extend(target.key_values());
        }
        attributes
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    /// (attributes, count, sum) of every series of the one histogram exported.
    fn series(exporter: &InMemoryMetricExporter) -> Vec<(Vec<KeyValue>, u64, f64)> {
        let exported = exporter.get_finished_metrics().unwrap();
        let metric = exported.last().unwrap().scope_metrics().next().unwrap().metrics().next().unwrap();
        let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
            panic!("not an f64 histogram: {:?}", metric.data());
        };
        let mut series: Vec<_> = histogram
            .data_points()
            .map(|p| {
                let mut attributes: Vec<_> = p.attributes().cloned().collect();
                attributes.sort_by(|a, b| a.key.cmp(&b.key));
                (attributes, p.count(), p.sum())
            })
            .collect();
        series.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
        series
    }

    #[test]
    fn every_measurement_lands_in_its_own_series_bound_or_past_the_bound() {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        let sets = BoundSets::new(provider.meter("test").f64_histogram("d").build());
        let call = |host: &str, outcome| {
            let host = host.to_owned();
            move |sets: &BoundSets<ClientCall<'static>>, value| {
                sets.record(value, &ClientCall { method: "POST", host: &host, outcome })
            }
        };
        call("backend", Ok(201))(&sets, 1.0);
        call("backend", Ok(201))(&sets, 2.0);
        call("backend", Err("timeout"))(&sets, 4.0);
        call("other", Ok(201))(&sets, 8.0);
        // Past the bound, measurements are recorded unbound, each in its series.
        for n in 0..MAX_BOUND_SETS {
            call(&format!("h{n:02}"), Ok(200))(&sets, 0.5);
        }
        call("h99", Ok(200))(&sets, 0.25);
        call("h99", Ok(200))(&sets, 0.25);
        assert_eq!(sets.bound.read().unwrap().len(), MAX_BOUND_SETS);
        provider.force_flush().unwrap();
        let series = series(&exporter);
        let of = |host: &str, outcome: KeyValue| {
            let mut attributes =
                vec![KeyValue::new("http.request.method", "POST"), KeyValue::new("server.address", host.to_owned())];
            attributes.push(outcome);
            attributes.sort_by(|a, b| a.key.cmp(&b.key));
            series.iter().find(|(a, ..)| *a == attributes).map(|(_, count, sum)| (*count, *sum))
        };
        let status = |code: i64| KeyValue::new("http.response.status_code", code);
        assert_eq!(of("backend", status(201)), Some((2, 3.0)));
        assert_eq!(of("backend", KeyValue::new("error.type", "timeout")), Some((1, 4.0)));
        assert_eq!(of("other", status(201)), Some((1, 8.0)));
        assert_eq!(of("h63", status(200)), Some((1, 0.5)));
        assert_eq!(of("h99", status(200)), Some((2, 0.5)));
        assert_eq!(series.len(), 3 + MAX_BOUND_SETS + 1, "one series per attribute set");
    }

    #[test]
    fn database_operations_of_two_targets_are_two_sets() {
        use std::sync::Arc;

        use super::super::span_record::DbTarget;
        let target = |address: &str| {
            Some(Arc::new(DbTarget { namespace: Some("orders".into()), address: address.into(), port: Some(5432) }))
        };
        let insert =
            |target| DbOperation { system: "postgresql", operation: "INSERT", collection: Some("orders"), target };
        assert!(insert(target("db-a")).is(&insert(target("db-a"))), "equal targets, not the same allocation");
        assert!(!insert(target("db-a")).is(&insert(target("db-b"))));
        assert!(!insert(None).is(&insert(target("db-a"))));
        let mut select = insert(None);
        select.operation = "SELECT";
        assert!(!select.is(&insert(None)));
        assert_eq!(
            insert(target("db-a")).attributes().iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
            [
                "db.system.name",
                "db.operation.name",
                "db.collection.name",
                "db.namespace",
                "server.address",
                "server.port"
            ]
        );
    }
}

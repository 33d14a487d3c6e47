//! Durable state: orders (with idempotency keys) and the key/value cache.
//!
//! One interface, two engines with the same behaviour: SQLite (embedded
//! default, a file under --data-path, WAL) and PostgreSQL. A successful
//! `create_order` means the row is committed.

mod migrations;
mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What a client asks to order (already validated by the route).
pub use demo_app_input::NewOrder;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Result of `create_order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new row was committed.
    New(Order),
    /// The idempotency key was seen before with the same order: the original.
    Replayed(Order),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out: callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The idempotency key was used before for a different order: 422.
    #[error("idempotency key reused with a different order")]
    IdempotencyConflict,
    /// quantity * unit_price_cents does not fit in i64: 422.
    #[error("order total overflows")]
    Overflow,
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// `error.type` of a failed database span.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::IdempotencyConflict => "idempotency_conflict",
            StoreError::Overflow => "overflow",
            StoreError::Other(_) => "database_error",
        }
    }
}

/// How long a request may wait for a pooled connection before the store
/// reports `Unavailable`: short, so a dead database gives a fast 503 instead
/// of a hung request.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The configured engine. An enum rather than a trait object: two engines,
/// async methods, no boxing.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Upper bound of any one store operation, whatever the engine is doing: a
/// connection that went silent mid-query must not hold a request forever.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a transaction on its own task and awaits it. A request future is
/// dropped when its client disconnects, and `dispatch!` drops it on timeout;
/// a transaction dropped halfway left its pooled connection inside an open
/// transaction, and every later order on that connection failed ("begin_with
/// at non-zero transaction depth", seen under load in `make bench`). On its
/// own task the transaction always ends in COMMIT or ROLLBACK; a caller that
/// gave up gets no answer, and its retry with the same idempotency key gets
/// the committed order.
pub(crate) async fn run_to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    // The request's context goes along: log lines inside carry its ids.
    use opentelemetry::context::FutureExt as _;
    tokio::spawn(work.with_current_context())
        .await
        .unwrap_or_else(|err| Err(StoreError::Other(format!("the transaction task failed: {err}"))))
}

/// Runs one store call inside a database client span (semantic-convention
/// attributes), records `db.client.operation.duration`, and bounds it by
/// OPERATION_TIMEOUT. The span is named `OPERATION COLLECTION`, or as the
/// caller names it when the operation touches no collection.
macro_rules! dispatch {
    ($self:ident, $operation:literal, $collection:literal, $store:ident => $call:expr) => {
        dispatch!(@span $self, concat!($operation, " ", $collection), $operation, Some($collection), $store => $call)
    };
    ($self:ident, $operation:literal, named $name:expr, $store:ident => $call:expr) => {
        dispatch!(@span $self, $name, $operation, None, $store => $call)
    };
    (@span $self:ident, $name:expr, $operation:literal, $collection:expr, $store:ident => $call:expr) => {{
        let collection: Option<&'static str> = $collection;
        // Child of the request's span, current as the handler runs; ends
        // when dropped here, or as cancelled when the caller gives up first
        // (the readiness probe's shorter timeout).
        let mut span = crate::telemetry::recording::ChildSpan::start($name, || {
            crate::telemetry::span_record::Detail::Database {
                system: $self.system(),
                operation: $operation,
                collection,
                target: $self.target(),
            }
        });
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(OPERATION_TIMEOUT, async {
            match $self {
                Store::Sqlite($store) => $call,
                Store::Postgres($store) => $call,
            }
        })
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("the database did not answer in time".into())));
        match &result {
            Ok(_) => span.succeed(),
            Err(err) => span.fail(err.kind(), || err.to_string()),
        }
        let operation = crate::telemetry::instruments::DbOperation {
            system: $self.system(),
            operation: $operation,
            collection,
            target: $self.target(),
        };
        crate::telemetry::instruments::INSTRUMENTS.db_duration.record(started.elapsed().as_secs_f64(), &operation);
        result
    }};
}

impl Store {
    /// Opens `sqlite://PATH` or `postgres://...`. PostgreSQL connects lazily
    /// and migrates in the background, so the app starts while the database
    /// is down and recovers when it returns.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, ACQUIRE_TIMEOUT).await?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Store::Postgres(PostgresStore::connect(url, ACQUIRE_TIMEOUT).await?))
        } else {
            anyhow::bail!("unsupported --database-url {url:?}: use sqlite://PATH or postgres://USER@HOST/DB")
        }
    }

    /// The engine's name, as OpenTelemetry's `db.system.name` spells it.
    pub fn system(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgresql",
        }
    }

    /// Where a networked database is, for its client spans.
    fn target(&self) -> Option<std::sync::Arc<crate::telemetry::span_record::DbTarget>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.target()),
        }
    }

    /// `SELECT 1`: a span of no collection, named `SELECT host:port` for a
    /// server, `SELECT` for SQLite's file.
    pub async fn ping(&self) -> StoreResult<()> {
        let name = match self {
            Store::Sqlite(_) => "SELECT",
            Store::Postgres(s) => s.ping_name(),
        };
        dispatch!(self, "SELECT", named name, s => s.ping().await)
    }

    /// Why the store can never work again without a restart (its SQLite
    /// file deleted), for the liveness probe; None if it may.
    pub fn broken_for_good(&self) -> Option<String> {
        match self {
            Store::Sqlite(s) => s.file_gone(),
            Store::Postgres(_) => None,
        }
    }

    pub async fn create_order(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        dispatch!(self, "INSERT", "orders", s => s.create_order(order, idempotency_key).await)
    }

    pub async fn get_order(&self, id: i64) -> StoreResult<Option<Order>> {
        dispatch!(self, "SELECT", "orders", s => s.get_order(id).await)
    }

    /// Up to `limit` orders by id, oldest first (ids above `after`) or
    /// newest first (ids below `after`).
    pub async fn list_orders(&self, limit: u32, after: Option<i64>, newest_first: bool) -> StoreResult<Vec<Order>> {
        dispatch!(self, "SELECT", "orders", s => s.list_orders(limit, after, newest_first).await)
    }

    pub async fn cache_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(self, "SELECT", "cache", s => s.cache_get(key).await)
    }

    pub async fn cache_set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        dispatch!(self, "UPSERT", "cache", s => s.cache_set(key, value).await)
    }

    /// True when the key existed.
    pub async fn cache_delete(&self, key: &str) -> StoreResult<bool> {
        dispatch!(self, "DELETE", "cache", s => s.cache_delete(key).await)
    }
}

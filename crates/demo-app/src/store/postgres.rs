//! PostgreSQL engine. The app must start while the database is down and heal
//! when it returns, so the pool connects lazily, migrations run in a
//! background task that retries, and every connection-level failure is
//! reported as `Unavailable` (a fast 503) rather than an error or a hang.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sqlite::{OrderRow, now_utc_micros, order_columns, order_total, request_fingerprint};
use super::{Created, NewOrder, Order, StoreError, StoreResult};
use crate::telemetry::span_record::DbTarget;

/// Pause between migration attempts while the database is unreachable.
const MIGRATE_RETRY: Duration = Duration::from_millis(500);

/// Server-side cap on any statement (lock waits included), so a stuck query
/// cannot hold a request and a pooled connection forever.
const STATEMENT_TIMEOUT: &str = "5s";

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Set once the background task has applied the migrations. Until then
    /// the tables may not exist, so operations answer `Unavailable`.
    migrated: Arc<AtomicBool>,
    /// The server and database the URL names, for client spans.
    target: Arc<DbTarget>,
    /// The readiness check's span: `SELECT host:port`.
    ping_name: &'static str,
}

impl PostgresStore {
    /// Returns at once without touching the network: only a malformed URL
    /// fails here. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("invalid PostgreSQL URL")?
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        // The pool checks an idle connection before handing it out
        // (`test_before_acquire`, on by default), so connections broken by a
        // server restart are replaced instead of failing a request.
        let target = Arc::new(target_of(&options));
        // Made once: span names are `&'static str`, and a store opens once.
        let ping_name: &'static str = Box::leak(format!("SELECT {}", target.server()).into_boxed_str());
        let pool = PgPoolOptions::new().acquire_timeout(acquire_timeout).connect_lazy_with(options);
        let migrated = Arc::new(AtomicBool::new(false));
        tokio::spawn(migrate_until_done(pool.clone(), Arc::clone(&migrated)));
        Ok(Self { pool, migrated, target, ping_name })
    }

    pub fn target(&self) -> Arc<DbTarget> {
        Arc::clone(&self.target)
    }

    pub fn ping_name(&self) -> &'static str {
        self.ping_name
    }

    fn ensure_migrated(&self) -> StoreResult<()> {
        if self.migrated.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("schema migrations not applied yet".into()))
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        self.ensure_migrated()?;
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    pub async fn create_order(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let (store, order, key) = (self.clone(), order.clone(), idempotency_key.map(str::to_owned));
        super::run_to_completion(async move { store.create_order_now(&order, key.as_deref()).await }).await
    }

    /// Inserts the order, or with a key returns the order first stored under
    /// it. `ON CONFLICT DO NOTHING` waits for a concurrent insert of the same
    /// key to commit, and under READ COMMITTED the following SELECT (a new
    /// snapshot) then sees that row.
    async fn create_order_now(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let total = order_total(order)?;
        self.ensure_migrated()?;
        let fingerprint = request_fingerprint(order);
        let mut tx = self.pool.begin().await.map_err(map_err)?;

        // A NULL key never conflicts, so requests without one always insert.
        let inserted: Option<OrderRow> = sqlx::query_as(concat!(
            "INSERT INTO orders (sku, quantity, unit_price_cents, total_cents, created_at, ",
            "idempotency_key, request_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7) ",
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
            order_columns!()
        ))
        .bind(&order.sku)
        .bind(order.quantity)
        .bind(order.unit_price_cents)
        .bind(total)
        .bind(now_utc_micros())
        .bind(idempotency_key)
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;

        let created = match inserted {
            Some(row) => Created::New(row.into()),
            None => {
                let existing: OrderRow =
                    sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE idempotency_key = $1"))
                        .bind(idempotency_key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                existing.replay_of(&fingerprint)?
            }
        };
        tx.commit().await.map_err(map_err)?;
        Ok(created)
    }

    pub async fn get_order(&self, id: i64) -> StoreResult<Option<Order>> {
        self.ensure_migrated()?;
        let row: Option<OrderRow> = sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(Order::from))
    }

    pub async fn list_orders(&self, limit: u32, after: Option<i64>, newest_first: bool) -> StoreResult<Vec<Order>> {
        self.ensure_migrated()?;
        let rows: Vec<OrderRow> = if newest_first {
            sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                .bind(after.unwrap_or(i64::MAX))
        } else {
            sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id > $1 ORDER BY id LIMIT $2"))
                .bind(after.unwrap_or(i64::MIN))
        }
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Order::from).collect())
    }

    pub async fn cache_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.ensure_migrated()?;
        sqlx::query_scalar("SELECT value FROM cache WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    pub async fn cache_set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.ensure_migrated()?;
        sqlx::query(
            "INSERT INTO cache (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_utc_micros())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub async fn cache_delete(&self, key: &str) -> StoreResult<bool> {
        self.ensure_migrated()?;
        let done =
            sqlx::query("DELETE FROM cache WHERE key = $1").bind(key).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}

/// Applies migrations, retrying until the database accepts them. Concurrent
/// app instances are safe: sqlx serialises them with an advisory lock.
async fn migrate_until_done(pool: PgPool, migrated: Arc<AtomicBool>) {
    let migrator = super::migrations::migrator(super::migrations::POSTGRES).await;
    let mut failures = 0u64;
    loop {
        match migrator.run(&pool).await {
            Ok(()) => {
                migrated.store(true, Ordering::Release);
                tracing::info!(after_failures = failures, "PostgreSQL migrations applied");
                return;
            }
            Err(_) if pool.is_closed() => return,
            // Warn once, then quietly: an outage would otherwise log twice a second.
            Err(error) if failures == 0 => {
                tracing::warn!(%error, "PostgreSQL migrations failed; retrying until they succeed");
            }
            Err(error) => tracing::debug!(%error, "PostgreSQL migrations still failing"),
        }
        failures += 1;
        tokio::time::sleep(MIGRATE_RETRY).await;
    }
}

/// Connection failures, pool timeouts, I/O errors and the server refusing or
/// cancelling work mean "try again later" (503); anything else is a bug or
/// bad data.
fn map_err(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // SQLSTATE classes: 08 connection exception; 53 insufficient
        // resources (too many connections, disk full); 57 operator
        // intervention (shutdown, starting up, statement_timeout's 57014).
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| ["08", "53", "57"].iter().any(|class| code.starts_with(class)))
        }
        _ => false,
    };
    if unavailable { StoreError::Unavailable(error.to_string()) } else { StoreError::Other(error.to_string()) }
}

/// The conventions' view of where the URL points: the database, or the
/// user's name when the URL names none (PostgreSQL's default); the host
/// without an IPv6 address's brackets, or the Unix socket's folder and no
/// port.
fn target_of(options: &PgConnectOptions) -> DbTarget {
    let namespace = options.get_database().unwrap_or(options.get_username());
    let namespace = (!namespace.is_empty()).then(|| namespace.to_string());
    match options.get_socket() {
        Some(socket) => DbTarget { namespace, address: socket.display().to_string(), port: None },
        None => DbTarget {
            namespace,
            address: options.get_host().trim_start_matches('[').trim_end_matches(']').to_string(),
            port: Some(options.get_port()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_spans_name_the_server_and_database_of_the_url() {
        let url = "postgres://app:secret@db.internal:6543/orders?sslmode=disable";
        let store = PostgresStore::connect(url, Duration::from_millis(10)).await.unwrap();
        let expected = DbTarget { namespace: Some("orders".into()), address: "db.internal".into(), port: Some(6543) };
        assert_eq!(*store.target(), expected, "the password is not part of it");
        assert_eq!(store.ping_name(), "SELECT db.internal:6543");
    }

    #[test]
    fn an_ipv6_host_a_socket_and_a_url_without_database() {
        let target = |url: &str| target_of(&PgConnectOptions::from_str(url).unwrap());
        let ipv6 = target("postgres://app@[::1]:5433/orders");
        assert_eq!((ipv6.address.as_str(), ipv6.port), ("::1", Some(5433)), "no brackets");
        let socket = target("postgres://app@localhost/orders?host=/run/postgresql");
        assert_eq!((socket.address.as_str(), socket.port), ("/run/postgresql", None));
        assert_eq!(socket.server(), "/run/postgresql");
        let no_database = target("postgres://app@db");
        assert_eq!(no_database.namespace.as_deref(), Some("app"), "PostgreSQL's default database: the user's");
    }
}

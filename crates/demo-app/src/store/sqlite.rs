//! SQLite engine: one file, WAL journal, fsync on every commit.
//!
//! Also holds the few engine-neutral helpers that `postgres.rs` reuses
//! (`OrderRow`, `request_fingerprint`, `now_utc_micros`), so both engines
//! store and compare orders identically.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

use super::{Created, NewOrder, Order, StoreError, StoreResult};

/// How long a writer waits for another writer's lock before giving up with
/// `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns every order query returns, in `OrderRow`'s shape.
macro_rules! order_columns {
    () => {
        "id, sku, quantity, unit_price_cents, total_cents, created_at, request_fingerprint"
    };
}
pub(super) use order_columns;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `sqlite://PATH` and
    /// applies pending migrations before returning.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL may lose the last commits on power loss; a 201
            // promises the order is durable, so every commit is fsynced.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        // SQLite creates the file but not its folder.
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating database folder {}", dir.display()))?;
        }

        let pool = SqlitePoolOptions::new()
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        super::migrations::migrator(super::migrations::SQLITE)
            .await
            .run(&pool)
            .await
            .context("applying SQLite migrations")?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    pub async fn create_order(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let (store, order, key) = (self.clone(), order.clone(), idempotency_key.map(str::to_owned));
        super::run_to_completion(async move { store.create_order_now(&order, key.as_deref()).await }).await
    }

    /// Inserts the order, or with a key returns the order first stored under
    /// it. `BEGIN IMMEDIATE` takes the write lock up front, so concurrent
    /// requests with one key queue on `busy_timeout` and see each other's row.
    async fn create_order_now(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let total = order_total(order)?;
        let fingerprint = request_fingerprint(order);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;

        // A NULL key never conflicts, so requests without one always insert.
        let inserted: Option<OrderRow> = sqlx::query_as(concat!(
            "INSERT INTO orders (sku, quantity, unit_price_cents, total_cents, created_at, ",
            "idempotency_key, request_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?) ",
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
                    sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE idempotency_key = ?"))
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
        let row: Option<OrderRow> = sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(Order::from))
    }

    pub async fn list_orders(&self, limit: u32, after: Option<i64>) -> StoreResult<Vec<Order>> {
        let rows: Vec<OrderRow> =
            sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id > ? ORDER BY id LIMIT ?"))
                .bind(after.unwrap_or(i64::MIN))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(rows.into_iter().map(Order::from).collect())
    }

    pub async fn cache_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM cache WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    pub async fn cache_set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO cache (key, value, updated_at) VALUES (?, ?, ?) \
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
        let done =
            sqlx::query("DELETE FROM cache WHERE key = ?").bind(key).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}

/// Lock waits past `busy_timeout`, a full pool and storage failures mean
/// "try again later" (503); anything else is a bug or bad data.
fn map_err(error: sqlx::Error) -> StoreError {
    // Primary result codes (the low byte of the extended code).
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, BUSY | LOCKED | IOERR | FULL)),
        _ => false,
    };
    if unavailable { StoreError::Unavailable(error.to_string()) } else { StoreError::Other(error.to_string()) }
}

/// An `orders` row as both engines return it (see `order_columns!`).
pub(super) struct OrderRow {
    id: i64,
    sku: String,
    quantity: i64,
    unit_price_cents: i64,
    total_cents: i64,
    created_at: OffsetDateTime,
    request_fingerprint: String,
}

/// By column name, for either engine (what `#[derive(sqlx::FromRow)]` writes;
/// sqlx's macros are left out, see migrations.rs).
impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for OrderRow
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    OffsetDateTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            quantity: row.try_get("quantity")?,
            unit_price_cents: row.try_get("unit_price_cents")?,
            total_cents: row.try_get("total_cents")?,
            created_at: row.try_get("created_at")?,
            request_fingerprint: row.try_get("request_fingerprint")?,
        })
    }
}

impl OrderRow {
    /// The answer to a request that reused this row's idempotency key.
    pub(super) fn replay_of(self, fingerprint: &str) -> StoreResult<Created> {
        if self.request_fingerprint == fingerprint {
            Ok(Created::Replayed(self.into()))
        } else {
            Err(StoreError::IdempotencyConflict)
        }
    }
}

impl From<OrderRow> for Order {
    fn from(row: OrderRow) -> Self {
        Order {
            id: row.id,
            sku: row.sku,
            quantity: row.quantity,
            unit_price_cents: row.unit_price_cents,
            total_cents: row.total_cents,
            created_at: row.created_at,
        }
    }
}

pub(super) fn order_total(order: &NewOrder) -> StoreResult<i64> {
    order.quantity.checked_mul(order.unit_price_cents).ok_or(StoreError::Overflow)
}

/// Identifies what was ordered, so a reused idempotency key can be told
/// apart from a genuine retry. The integers cannot contain '\n' and the sku
/// comes last, so distinct orders never share an input.
pub(super) fn request_fingerprint(order: &NewOrder) -> String {
    let canonical = format!("{}\n{}\n{}", order.quantity, order.unit_price_cents, order.sku);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Now in UTC, cut to microseconds: PostgreSQL keeps no more, and cutting on
/// both engines makes them return identical timestamps.
pub(super) fn now_utc_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - time::Duration::nanoseconds(i64::from(now.nanosecond() % 1_000))
}

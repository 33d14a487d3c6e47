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
    /// The database file and its write-ahead log, with their (device,
    /// inode) when opened.
    files: std::sync::Arc<[(std::path::PathBuf, (u64, u64)); 2]>,
    /// A connection held open for the store's life: SQLite deletes the
    /// write-ahead log when its last connection closes (the pool may close
    /// all of them) and recreates it under another inode, which would look
    /// like a replaced file.
    anchor: std::sync::Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>,
    /// The connection every write goes through, one at a time (SQLite
    /// has one writer anyway: pooled writers waited on `busy_timeout`).
    /// Its page cache stays current; through the pool, whose idle
    /// connections take turns, each write found its connection's cache
    /// stale and read its pages again (14k instructions a checkout).
    /// None before the first write, and after a failure closed it: the
    /// next write opens a fresh one.
    writer: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::SqliteConnection>>>,
    /// How the writer is opened again, and how long a write waits its turn.
    options: std::sync::Arc<SqliteConnectOptions>,
    acquire_timeout: Duration,
    /// Set once the orders of a removed write-ahead log were checkpointed.
    wal_rescued: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When `file_gone` last looked (ms since `opened_at`), for probes
    /// that may be called thousands of times a second.
    last_looked_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    opened_at: std::time::Instant,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `sqlite://PATH` and
    /// applies pending migrations before returning.
    pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<Self> {
        Self::open(url, SqlitePoolOptions::new().acquire_timeout(acquire_timeout), |options| options).await
    }

    /// `connect` with the pool's options, and a change to the connections'
    /// (tests limit the file's size).
    async fn open(
        url: &str,
        pool: SqlitePoolOptions,
        adjust: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
    ) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL may lose the last commits on power loss; a 201
            // promises the order is durable, so every commit is fsynced.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let options = adjust(options);

        // SQLite creates the file but not its folder.
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating database folder {}", dir.display()))?;
            if rustix::fs::statvfs(dir).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)) {
                anyhow::bail!(
                    "the database folder {} is on a read-only volume: orders could not be written; \
                     mount it read-write (or set DEMO_APP_DATABASE_URL to a writable database)",
                    dir.display()
                );
            }
        }

        // The first connection and the migrations are not bound by the
        // pool's acquire timeout, which is for requests (a fast 503): on a
        // busy or throttled node creating and migrating the file can take
        // longer than that, and the app would never start.
        let mut anchor = sqlx::ConnectOptions::connect(&options)
            .await
            .with_context(|| format!("opening SQLite database {}", path.display()))
            .map_err(|e| when_full(e, &path))?;
        super::migrations::migrator(super::migrations::SQLITE)
            .await
            .run(&mut anchor)
            .await
            .context("applying SQLite migrations")
            .map_err(|e| when_full(e, &path))?;
        let acquire_timeout = pool.get_acquire_timeout();
        let pool = pool.connect_lazy_with(options.clone());
        let wal = wal_path(&path);
        let files = [
            (path.clone(), file_identity(&path).with_context(|| format!("reading {}", path.display()))?),
            (wal.clone(), file_identity(&wal).with_context(|| format!("reading {}", wal.display()))?),
        ];
        Ok(Self {
            pool,
            files: std::sync::Arc::new(files),
            anchor: std::sync::Arc::new(tokio::sync::Mutex::new(anchor)),
            // Opened by the first write: a connection is a thread of sqlx's
            // and SQLite's caches, which a process that is never sent an
            // order does without.
            writer: Default::default(),
            options: std::sync::Arc::new(options),
            acquire_timeout,
            wal_rescued: Default::default(),
            last_looked_ms: Default::default(),
            opened_at: std::time::Instant::now(),
        })
    }

    pub async fn ping(&self) -> StoreResult<()> {
        self.files_intact().await?;
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    /// An open SQLite file that was deleted (or replaced) goes on accepting
    /// writes into an inode nobody will open again: every order acknowledged
    /// from then on would be gone at the next start. So writes and
    /// readiness fail instead, naming the cause.
    /// `file_still_open` for the liveness probe: looks at most every 100 ms
    /// (a deleted file stays deleted; /healthz stays a few instructions).
    pub(super) fn file_gone(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = u64::try_from(self.opened_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_looked_ms.load(Relaxed);
        if now.saturating_sub(last) < 100 && last != 0 {
            return None;
        }
        match self.file_still_open() {
            Ok(()) => {
                self.last_looked_ms.store(now.max(1), Relaxed);
                None
            }
            Err(e) => {
                // The restart this verdict leads to must not lose what only
                // the removed log holds.
                let store = self.clone();
                tokio::spawn(async move { store.files_intact().await });
                Some(e.to_string())
            }
        }
    }

    /// `file_still_open`, and when the write-ahead log is the file that went
    /// missing, its committed transactions are first copied into the database
    /// file (a checkpoint through the connections that still have the removed
    /// log open): after the restart every acknowledged order is there.
    async fn files_intact(&self) -> StoreResult<()> {
        let verdict = self.file_still_open();
        if verdict.is_err() && self.wal_missing() && !self.wal_rescued.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.checkpoint_removed_wal().await;
        }
        verdict
    }

    /// Through the anchor connection, which has had the removed log open
    /// from the start (a connection opened since would see a new, empty one
    /// and fail with a short read).
    async fn checkpoint_removed_wal(&self) {
        let mut anchor = self.anchor.lock().await;
        for _ in 0..3 {
            // (busy, frames in the log, frames checkpointed)
            let done: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(FULL)").fetch_one(&mut *anchor).await;
            match done {
                Ok((0, log, copied)) if log == copied => {
                    tracing::warn!(
                        frames = copied,
                        "the write-ahead log was removed: its orders were copied into the database file"
                    );
                    return;
                }
                Ok(partial) => tracing::warn!(?partial, "checkpointing a removed write-ahead log: not done yet"),
                Err(error) => tracing::warn!(%error, "checkpointing a removed write-ahead log failed"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::error!(
            "the removed write-ahead log could not be checkpointed: orders committed since the last checkpoint are lost at restart"
        );
    }

    fn wal_missing(&self) -> bool {
        let (wal, opened) = &self.files[1];
        file_identity(wal).ok() != Some(*opened)
    }

    fn file_still_open(&self) -> StoreResult<()> {
        for (path, opened) in self.files.iter() {
            if file_identity(path).ok() != Some(*opened) {
                return Err(StoreError::Unavailable(format!(
                    "the database file {} was removed or replaced while open; restart the server to open it again",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    pub async fn create_order(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let (store, order, key) = (self.clone(), order.clone(), idempotency_key.map(str::to_owned));
        super::run_to_completion(async move { store.create_order_now(&order, key.as_deref()).await }).await
    }

    /// Inserts the order, or with a key returns the order first stored under
    /// it. Writes take turns on the writer, and `BEGIN IMMEDIATE` takes the
    /// write lock up front (against another process on the file), so
    /// concurrent requests with one key see each other's row.
    async fn create_order_now(&self, order: &NewOrder, idempotency_key: Option<&str>) -> StoreResult<Created> {
        let total = order_total(order)?;
        self.write(async |connection| insert_order(connection, order, total, idempotency_key).await).await
    }

    /// `write` on the writer, after the writes before it: waits at most the
    /// acquire timeout (a fast 503, as for a pooled connection), then checks
    /// the files (one removed during the wait must not take the write).
    async fn write<T>(&self, write: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> StoreResult<T>) -> StoreResult<T> {
        let busy = |what: &str| StoreError::Unavailable(format!("{what} within {:?}", self.acquire_timeout));
        let mut writer = tokio::time::timeout(self.acquire_timeout, self.writer.lock())
            .await
            .map_err(|_| busy("the database is busy: no turn to write"))?;
        self.files_intact().await?;
        if writer.is_none() {
            let opened = tokio::time::timeout(self.acquire_timeout, sqlx::ConnectOptions::connect(&*self.options))
                .await
                .map_err(|_| busy("the database could not be opened for writing"))?;
            *writer = Some(opened.map_err(map_err)?);
        }
        let result = write(writer.as_mut().expect("opened above")).await;
        if matches!(result, Err(StoreError::Unavailable(_) | StoreError::Other(_))) {
            // A COMMIT that failed (a full disk: SQLITE_FULL) may have rolled
            // the transaction back inside SQLite while sqlx still counts it
            // open, and its own ROLLBACK then fails too: kept, the connection
            // refused every later BEGIN ("begin_with at non-zero transaction
            // depth") for good; a crashed worker fails every call. It is
            // closed instead; the next write opens a fresh one.
            *writer = None;
        }
        result
    }

    pub async fn get_order(&self, id: i64) -> StoreResult<Option<Order>> {
        let row: Option<OrderRow> = sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.map(Order::from))
    }

    pub async fn list_orders(&self, limit: u32, after: Option<i64>, newest_first: bool) -> StoreResult<Vec<Order>> {
        let rows: Vec<OrderRow> = if newest_first {
            sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id < ? ORDER BY id DESC LIMIT ?"))
                .bind(after.unwrap_or(i64::MAX))
        } else {
            sqlx::query_as(concat!("SELECT ", order_columns!(), " FROM orders WHERE id > ? ORDER BY id LIMIT ?"))
                .bind(after.unwrap_or(i64::MIN))
        }
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
        self.write(async |connection| {
            sqlx::query(
                "INSERT INTO cache (key, value, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(now_utc_micros())
            .execute(connection)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    pub async fn cache_delete(&self, key: &str) -> StoreResult<bool> {
        self.write(async |connection| {
            let done =
                sqlx::query("DELETE FROM cache WHERE key = ?").bind(key).execute(connection).await.map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }
}

/// Lock waits past `busy_timeout`, a full pool and storage failures mean
/// "try again later" (503); anything else is a bug or bad data.
/// The transaction of `create_order_now` on one connection.
async fn insert_order(
    connection: &mut sqlx::SqliteConnection,
    order: &NewOrder,
    total: i64,
    idempotency_key: Option<&str>,
) -> StoreResult<Created> {
    use sqlx::Connection as _;
    let fingerprint = request_fingerprint(order);
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;

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

/// SQLite says "disk I/O error" when it cannot grow its files: on a full
/// volume the error names the real cause and what to do.
fn when_full(error: anyhow::Error, database: &std::path::Path) -> anyhow::Error {
    let dir = database.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    match rustix::fs::statvfs(dir) {
        Ok(stats) if stats.f_bavail.saturating_mul(stats.f_frsize) < 1024 * 1024 => error.context(format!(
            "the volume of {} is full ({} bytes free): free space on it or grow it",
            dir.display(),
            stats.f_bavail.saturating_mul(stats.f_frsize)
        )),
        _ => error,
    }
}

/// SQLite's write-ahead log: the database's path with `-wal`.
fn wal_path(database: &std::path::Path) -> std::path::PathBuf {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn file_identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

fn map_err(error: sqlx::Error) -> StoreError {
    // Primary result codes (the low byte of the extended code).
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn order(sku: String) -> NewOrder {
        NewOrder { sku, quantity: 1, unit_price_cents: 1 }
    }

    /// Opening and migrating the file is not a request: the acquire timeout
    /// (1 s in the app) must not bound it, or a slow node never starts.
    #[tokio::test]
    async fn opening_the_database_is_not_bound_by_the_acquire_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        let store = SqliteStore::connect(&url, Duration::ZERO).await.expect("opens whatever the acquire timeout");
        assert!(store.files_intact().await.is_ok());
    }

    /// A full disk fails a transaction inside SQLite: once space is free
    /// again, orders must be stored again (the failed writer replaced), not
    /// refused for good.
    #[tokio::test]
    async fn orders_are_stored_again_once_a_full_database_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        // 40 pages of 4 KiB: the schema fits, a few dozen large orders do not.
        let store = SqliteStore::open(&url, SqlitePoolOptions::new().max_connections(1), |options| {
            options.pragma("max_page_count", "40")
        })
        .await
        .unwrap();

        let mut stored = 0;
        let full = loop {
            match store.create_order(&order(format!("{stored}-{}", "x".repeat(3000))), None).await {
                Ok(_) => stored += 1,
                Err(error) => break error,
            }
            assert!(stored < 1000, "the database never filled up");
        };
        assert!(matches!(full, StoreError::Unavailable(_)), "a full database is unavailable (503), got {full:?}");
        assert!(stored > 0, "no order fitted at all");

        sqlx::query("DELETE FROM orders").execute(&store.pool).await.unwrap();
        for i in 0..3 {
            let created = store.create_order(&order(format!("after-{i}")), Some(&format!("key-{i}"))).await;
            assert!(matches!(created, Ok(Created::New(_))), "order {i} after freeing space: {created:?}");
        }
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn a_deleted_database_file_refuses_orders_and_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let store =
            SqliteStore::connect(&format!("sqlite://{}", path.display()), Duration::from_secs(1)).await.unwrap();
        store.create_order(&order("before".into()), None).await.unwrap();
        assert_eq!(store.file_gone(), None);

        std::fs::remove_file(&path).unwrap();
        let refused = store.create_order(&order("after".into()), None).await;
        let Err(StoreError::Unavailable(why)) = refused else {
            panic!("an order was accepted into a deleted file: {refused:?}")
        };
        assert!(why.contains("was removed or replaced while open"), "{why}");
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))), "readiness still passes");
        assert!(matches!(store.cache_set("k", b"v").await, Err(StoreError::Unavailable(_))));
        // file_gone looks at most every 100 ms.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(store.file_gone().is_some(), "liveness still passes: only a restart opens the file again");
    }

    #[tokio::test]
    async fn a_deleted_write_ahead_log_refuses_orders_and_keeps_the_acknowledged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.db");
        let store =
            SqliteStore::connect(&format!("sqlite://{}", path.display()), Duration::from_secs(1)).await.unwrap();
        let Ok(Created::New(acknowledged)) = store.create_order(&order("acknowledged".into()), None).await else {
            panic!("the first order was refused")
        };
        std::fs::remove_file(wal_path(&path)).unwrap();
        let refused = store.create_order(&order("after".into()), None).await;
        let Err(StoreError::Unavailable(why)) = refused else {
            panic!("an order was accepted into a deleted write-ahead log: {refused:?}")
        };
        assert!(why.contains("-wal was removed or replaced while open"), "{why}");
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))), "readiness still passes");

        // What a crash now would leave: the database file alone.
        let copy = dir.path().join("after-crash.db");
        std::fs::copy(&path, &copy).unwrap();
        let reopened =
            SqliteStore::connect(&format!("sqlite://{}", copy.display()), Duration::from_secs(1)).await.unwrap();
        let found = reopened.get_order(acknowledged.id).await.unwrap();
        assert_eq!(found.map(|o| o.sku), Some("acknowledged".to_string()), "an acknowledged order was lost");
    }
}

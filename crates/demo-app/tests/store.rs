//! One behaviour suite for `Store`, run against both engines: SQLite in a
//! temp dir and a real PostgreSQL started by `support::postgres`. The
//! PostgreSQL-only tests at the end cover starting while the database is
//! down and recovering from an outage.

mod support;

use std::time::{Duration, Instant};

use demo_app::store::{Created, NewOrder, Order, Store, StoreError, StoreResult};
use time::format_description::well_known::Rfc3339;

use support::postgres::PgServer;

fn new_order(sku: &str, quantity: i64, unit_price_cents: i64) -> NewOrder {
    NewOrder { sku: sku.into(), quantity, unit_price_cents }
}

async fn create(store: &Store, order: &NewOrder, key: Option<&str>) -> Order {
    match store.create_order(order, key).await.expect("create_order") {
        Created::New(order) => order,
        other => panic!("expected a new order, got {other:?}"),
    }
}

async fn count_orders(store: &Store) -> usize {
    store.list_orders(u32::MAX, None, false).await.unwrap().len()
}

fn assert_unavailable<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "expected Unavailable, got {result:?}");
}

// ---------------------------------------------------------------- the suite

async fn ping(store: Store) {
    store.ping().await.unwrap();
}

async fn create_then_get(store: Store) {
    let before = time::OffsetDateTime::now_utc();
    let order = create(&store, &new_order("sku-1", 3, 250), None).await;
    assert_eq!((order.sku.as_str(), order.quantity, order.unit_price_cents, order.total_cents), ("sku-1", 3, 250, 750));
    // created_at: UTC, microseconds, now-ish, and exact through RFC 3339.
    let created_at = order.created_at;
    assert!(created_at.offset().is_utc());
    assert_eq!(created_at.nanosecond() % 1_000, 0);
    assert!((created_at - before).abs() < time::Duration::minutes(1));
    let text = created_at.format(&Rfc3339).unwrap();
    assert_eq!(time::OffsetDateTime::parse(&text, &Rfc3339).unwrap(), created_at);

    assert_eq!(store.get_order(order.id).await.unwrap(), Some(order.clone()));
    assert_eq!(store.get_order(order.id + 1_000).await.unwrap(), None);
}

async fn large_totals_round_trip(store: Store) {
    // 2^62 needs 64-bit columns end to end.
    let order = create(&store, &new_order("big", 1 << 31, 1 << 31), None).await;
    assert_eq!(order.total_cents, 1 << 62);
    assert_eq!(store.get_order(order.id).await.unwrap(), Some(order));
}

async fn list_paginates_by_id(store: Store) {
    assert!(store.list_orders(10, None, false).await.unwrap().is_empty());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&store, &new_order(&format!("sku-{i}"), 1, 100), None).await.id);
    }
    let page_ids = |page: Vec<Order>| page.into_iter().map(|o| o.id).collect::<Vec<_>>();

    assert_eq!(page_ids(store.list_orders(100, None, false).await.unwrap()), ids);
    assert_eq!(page_ids(store.list_orders(2, None, false).await.unwrap()), ids[..2]);
    assert_eq!(page_ids(store.list_orders(2, Some(ids[1]), false).await.unwrap()), ids[2..4]);
    assert_eq!(page_ids(store.list_orders(2, Some(ids[3]), false).await.unwrap()), ids[4..]);
    assert!(store.list_orders(2, Some(ids[4]), false).await.unwrap().is_empty());
    assert!(store.list_orders(0, None, false).await.unwrap().is_empty());
    let newest: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(page_ids(store.list_orders(2, None, true).await.unwrap()), newest[..2]);
    assert_eq!(page_ids(store.list_orders(2, Some(newest[1]), true).await.unwrap()), newest[2..4]);
    assert_eq!(page_ids(store.list_orders(100, Some(newest[3]), true).await.unwrap()), newest[4..]);
}

async fn orders_without_key_never_replay(store: Store) {
    let order = new_order("sku", 1, 100);
    let first = create(&store, &order, None).await;
    let second = create(&store, &order, None).await;
    assert_ne!(first.id, second.id);
    assert_eq!(count_orders(&store).await, 2);
}

async fn same_key_same_order_replays(store: Store) {
    let order = new_order("sku", 2, 100);
    let original = create(&store, &order, Some("key-1")).await;
    let again = store.create_order(&order, Some("key-1")).await.unwrap();
    assert_eq!(again, Created::Replayed(original.clone()));
    assert_eq!(count_orders(&store).await, 1);

    // Another key is another order.
    let other = create(&store, &order, Some("key-2")).await;
    assert_ne!(other.id, original.id);
    assert_eq!(count_orders(&store).await, 2);
}

async fn same_key_other_order_conflicts(store: Store) {
    create(&store, &new_order("sku", 2, 100), Some("key")).await;
    for changed in [new_order("other-sku", 2, 100), new_order("sku", 3, 100), new_order("sku", 2, 101)] {
        let result = store.create_order(&changed, Some("key")).await;
        assert!(matches!(result, Err(StoreError::IdempotencyConflict)), "{changed:?}: {result:?}");
    }
    assert_eq!(count_orders(&store).await, 1);
}

async fn concurrent_same_key_creates_one_row(store: Store) {
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_order(&new_order("sku", 1, 100), Some("race")).await })
        })
        .collect();
    let mut new = Vec::new();
    let mut replayed = Vec::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Created::New(order) => new.push(order),
            Created::Replayed(order) => replayed.push(order),
        }
    }
    assert_eq!(new.len(), 1, "exactly one request inserts");
    assert!(replayed.iter().all(|order| *order == new[0]));
    assert_eq!(count_orders(&store).await, 1);
}

/// Callers that give up mid-transaction (a client disconnecting, a timeout)
/// must not leave a pooled connection inside an open transaction: every
/// order after them still succeeds.
async fn abandoned_creates_leave_the_store_usable(store: Store) {
    let order = new_order("abandoned", 1, 1);
    // Writers contend for the lock, and each gives up after 0-4 ms: callers
    // are dropped before, inside and after BEGIN, between statements and
    // while committing.
    for _ in 0..10 {
        let writers: Vec<_> = (0..16u64)
            .map(|i| {
                let (store, order) = (store.clone(), order.clone());
                tokio::spawn(async move {
                    let patience = Duration::from_micros(i * 250);
                    let _ = tokio::time::timeout(patience, store.create_order(&order, None)).await;
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    }
    for _ in 0..20 {
        create(&store, &order, None).await;
    }
}

async fn total_overflow_is_rejected(store: Store) {
    let result = store.create_order(&new_order("sku", i64::MAX, 2), Some("k")).await;
    assert!(matches!(result, Err(StoreError::Overflow)), "{result:?}");
    assert_eq!(count_orders(&store).await, 0);
}

async fn cache_set_get_overwrite_delete(store: Store) {
    assert_eq!(store.cache_get("k").await.unwrap(), None);
    store.cache_set("k", b"one").await.unwrap();
    assert_eq!(store.cache_get("k").await.unwrap(), Some(b"one".to_vec()));
    store.cache_set("k", &[0, 255, 10]).await.unwrap();
    assert_eq!(store.cache_get("k").await.unwrap(), Some(vec![0, 255, 10]));
    store.cache_set("empty", b"").await.unwrap();
    assert_eq!(store.cache_get("empty").await.unwrap(), Some(Vec::new()));

    assert!(store.cache_delete("k").await.unwrap());
    assert_eq!(store.cache_get("k").await.unwrap(), None);
    assert!(!store.cache_delete("k").await.unwrap());
    assert!(!store.cache_delete("never-set").await.unwrap());
}

// ------------------------------------------------------ running the suite

/// A store on a fresh database, plus what must outlive it.
struct Fixture {
    store: Store,
    // Dropped after `store`: the temp dir / the server.
    _sqlite_dir: Option<tempfile::TempDir>,
    _server: Option<PgServer>,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A folder that does not exist yet: the store must create it.
        let url = format!("sqlite://{}/data/app.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        Self { store, _sqlite_dir: Some(dir), _server: None }
    }

    async fn postgres() -> Self {
        let server = PgServer::with_database("app").await;
        let store = Store::open(&server.url("app")).await.unwrap();
        wait_until_ready(&store, Duration::from_secs(10)).await;
        Self { store, _sqlite_dir: None, _server: Some(server) }
    }
}

/// Polls `ping` until it succeeds; returns how long that took.
async fn wait_until_ready(store: &Store, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match store.ping().await {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() > limit => panic!("store not ready after {limit:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One `#[tokio::test]` per suite function and engine, so each reports on
/// its own and gets a fresh database.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let fixture = super::Fixture::sqlite().await;
                    super::$name(fixture.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs PostgreSQL (initdb, pg_ctl) as `make tools` installs it; `make test` runs it"]
                async fn $name() {
                    let fixture = super::Fixture::postgres().await;
                    super::$name(fixture.store.clone()).await;
                }
            )*
        }
    };
}

suite!(
    ping,
    create_then_get,
    large_totals_round_trip,
    list_paginates_by_id,
    orders_without_key_never_replay,
    same_key_same_order_replays,
    same_key_other_order_conflicts,
    concurrent_same_key_creates_one_row,
    total_overflow_is_rejected,
    abandoned_creates_leave_the_store_usable,
    cache_set_get_overwrite_delete,
);

// ------------------------------------------------------ engine-specific

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_reopen_keeps_data_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/app.db");
    let url = format!("sqlite://{}", path.display());

    let store = Store::open(&url).await.unwrap();
    let order = create(&store, &new_order("sku", 1, 5), Some("key")).await;
    drop(store);

    // Reopening re-runs the (already applied) migrations and keeps the rows.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.get_order(order.id).await.unwrap(), Some(order));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&sqlx::SqlitePool::connect(&url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Bound for "fails fast" while the database is down.
const FAST: Duration = Duration::from_secs(2);
/// Bound for "recovers" once it is back.
const RECOVERY: Duration = Duration::from_secs(10);

async fn assert_down_fast(store: &Store) {
    let start = Instant::now();
    assert_unavailable(store.ping().await);
    let ping_took = start.elapsed();
    let start = Instant::now();
    assert_unavailable(store.create_order(&new_order("sku", 1, 1), None).await);
    let create_took = start.elapsed();
    eprintln!("down: ping answered in {ping_took:?}, create_order in {create_took:?}");
    assert!(ping_took < FAST, "ping took {ping_took:?}");
    assert!(create_took < FAST, "create_order took {create_took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (initdb, pg_ctl) as `make tools` installs it; `make test` runs it"]
async fn postgres_starts_while_down_and_recovers_from_outages() {
    // Create the database, then take the server down before the app starts.
    let mut server = PgServer::with_database("app").await;
    server.stop();

    let start = Instant::now();
    let store = Store::open(&server.url("app")).await.unwrap();
    assert!(start.elapsed() < FAST, "open took {:?}", start.elapsed());
    assert_down_fast(&store).await;
    // Let the background migration fail a few times before the server returns.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_down_fast(&store).await;

    server.start();
    let took = wait_until_ready(&store, RECOVERY).await;
    eprintln!("first start: ready (migrated) after {took:?}");
    let first = create(&store, &new_order("sku", 1, 100), Some("k")).await;

    // An outage after the pool has live connections.
    server.stop();
    assert_down_fast(&store).await;
    assert_unavailable(store.get_order(first.id).await);
    assert_unavailable(store.cache_get("k").await);

    server.start();
    let took = wait_until_ready(&store, RECOVERY).await;
    eprintln!("restart: ready after {took:?}");
    assert_eq!(store.get_order(first.id).await.unwrap(), Some(first.clone()));
    let replay = store.create_order(&new_order("sku", 1, 100), Some("k")).await.unwrap();
    assert_eq!(replay, Created::Replayed(first));
    create(&store, &new_order("sku", 2, 100), None).await;
    assert_eq!(count_orders(&store).await, 2);
}

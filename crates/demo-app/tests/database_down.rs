//! With PostgreSQL down: the app still starts, /readyz answers 503 within
//! 2 s, orders and cache routes answer 503 quickly with a JSON error, and
//! service returns by itself when the database does.

mod support;

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::postgres::PgServer;

fn order() -> Value {
    json!({"sku": "db-down", "quantity": 1, "unit_price_cents": 100})
}

async fn assert_unavailable(app: &helpers::TestApp) {
    let started = Instant::now();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2), "/readyz took {:?}", started.elapsed());
    for response in
        [app.post_json("/api/orders", &order()).await, app.get("/api/orders").await, app.get("/cache/k").await]
    {
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert!(body.get("error").or(body.get("message")).is_some(), "a JSON error: {body}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "503s took {:?}", started.elapsed());
}

async fn wait_until_ready(app: &helpers::TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "the app did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (initdb, pg_ctl) as `make tools` installs it; `make test` runs it"]
async fn orders_survive_a_database_outage() {
    let mut pg = PgServer::with_database("orders").await;
    pg.stop();
    let url = pg.url("orders");
    let app = helpers::spawn_app_with(|c| c.database_url = Some(url)).await;
    assert_eq!(app.get("/healthz").await.status(), 200, "alive even without a database");
    assert_unavailable(&app).await;

    pg.start();
    wait_until_ready(&app).await;
    assert_eq!(app.post_json("/api/orders", &order()).await.status(), 201);

    pg.stop();
    assert_unavailable(&app).await;

    pg.start();
    wait_until_ready(&app).await;
    let page: Value = app.get("/api/orders").await.json().await.unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 1, "the committed order survived");
}

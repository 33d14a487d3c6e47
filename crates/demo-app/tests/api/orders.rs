//! The orders API and checkout, over HTTP.

use serde_json::{Value, json};

use crate::helpers::{keys, spawn_app, spawn_app_with};

fn order() -> Value {
    json!({"sku": "book-42", "quantity": 3, "unit_price_cents": 1999})
}

#[tokio::test]
async fn create_then_get_an_order() {
    let app = spawn_app().await;
    let response = app.post_json("/api/orders", &order()).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    assert_eq!(keys(&created), ["created_at", "id", "quantity", "sku", "total_cents", "unit_price_cents"]);
    assert_eq!(created["total_cents"], 5997);
    assert_eq!(location, format!("/api/orders/{}", created["id"]));
    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn missing_and_malformed_ids() {
    let app = spawn_app().await;
    let response = app.get("/api/orders/999999").await;
    assert_eq!(response.status(), 404);
    assert_eq!(keys(&response.json::<Value>().await.unwrap()), ["detail", "error"]);
    assert_eq!(app.get("/api/orders/abc").await.status(), 400);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"sku": "", "quantity": 1, "unit_price_cents": 1}), 422, "sku"),
        (json!({"sku": "a b", "quantity": 1, "unit_price_cents": 1}), 422, "sku"),
        (json!({"sku": "a", "quantity": 0, "unit_price_cents": 1}), 422, "quantity"),
        (json!({"sku": "a", "quantity": 1, "unit_price_cents": -1}), 422, "unit_price_cents"),
        (json!({"sku": "a", "quantity": "two", "unit_price_cents": 1}), 422, "quantity"),
        (json!({"sku": "a", "quantity": 1}), 422, "unit_price_cents"),
        (json!({"sku": "a", "quantity": 1, "unit_price_cents": 1, "discount": 5}), 422, "discount"),
        // serde's derived structs read arrays positionally; an order is an object.
        (json!(["a", 1, 1]), 422, "an order object"),
    ];
    for (body, status, field) in cases {
        let response = app.post_json("/api/orders", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["detail"].as_str().unwrap().contains(field), "{body} → {error}");
    }
    let syntax = app
        .client
        .post(app.url("/api/orders"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(syntax.status(), 400);
    assert_eq!(app.post("/api/orders", "{}").await.status(), 415, "no JSON content type");
}

#[tokio::test]
async fn an_idempotency_key_makes_retries_safe() {
    let app = spawn_app().await;
    let send = || app.client.post(app.url("/api/orders")).header("Idempotency-Key", "retry-1").json(&order()).send();
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let page: Value = app.get("/api/orders").await.json().await.unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 1, "no duplicate order");

    let conflict = app
        .client
        .post(app.url("/api/orders"))
        .header("Idempotency-Key", "retry-1")
        .json(&json!({"sku": "other", "quantity": 1, "unit_price_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 422);
}

#[tokio::test]
async fn two_idempotency_keys_are_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/orders"))
        .header("Idempotency-Key", "first")
        .header("Idempotency-Key", "second")
        .json(&order())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["detail"], "Idempotency-Key: send it once");
}

#[tokio::test]
async fn list_pages_with_limit_and_after() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.post_json("/api/orders", &order()).await.status(), 201);
    }
    let first: Value = app.get("/api/orders?limit=2").await.json().await.unwrap();
    assert_eq!(first["orders"].as_array().unwrap().len(), 2);
    let after = first["next_after"].as_i64().unwrap();
    let second: Value = app.get(&format!("/api/orders?limit=2&after={after}")).await.json().await.unwrap();
    assert!(second["orders"][0]["id"].as_i64().unwrap() > after);
    let last: Value = app.get(&format!("/api/orders?limit=10&after={after}")).await.json().await.unwrap();
    assert_eq!(last["orders"].as_array().unwrap().len(), 3);
    assert_eq!(last["next_after"], Value::Null);
    for bad in ["limit=0", "limit=101", "limit=x", "after=-1", "limit=1&limit=2", "order=up"] {
        let response = app.get(&format!("/api/orders?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "validation_failed", "{bad}");
    }
}

/// The deployed layout: a backend, and a frontend calling it.
async fn backend_and_frontend() -> (crate::helpers::TestApp, crate::helpers::TestApp) {
    let backend = spawn_app_with(|c| c.role = demo_app::config::Role::Backend).await;
    let frontend = spawn_app_with(|c| {
        c.role = demo_app::config::Role::Frontend;
        c.backend_urls = vec![backend.url("/echo")];
    })
    .await;
    (backend, frontend)
}

#[tokio::test]
async fn checkout_goes_through_the_backend_over_http() {
    let (backend, frontend) = backend_and_frontend().await;
    assert_eq!(backend.post_json("/api/checkout", &order()).await.status(), 404, "the backend has no checkout");
    let response = frontend.post_json("/api/checkout", &order()).await;
    assert_eq!(response.status(), 201);
    let placed: Value = response.json().await.unwrap();
    let stored: Value = backend.get(&format!("/api/orders/{}", placed["id"])).await.json().await.unwrap();
    assert_eq!(stored, placed);
    assert_eq!(frontend.post_json("/api/checkout", &json!({"sku": ""})).await.status(), 422);
}

#[tokio::test]
async fn the_frontend_lists_the_newest_orders_from_the_backend() {
    let (_backend, frontend) = backend_and_frontend().await;
    for _ in 0..105 {
        assert_eq!(frontend.post_json("/api/checkout", &order()).await.status(), 201);
    }
    let page: Value = frontend.get("/api/orders?limit=3&order=desc").await.json().await.unwrap();
    let ids: Vec<i64> = page["orders"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [105, 104, 103], "the newest first, past the first hundred");
    let next: Value = frontend
        .get(&format!("/api/orders?limit=2&order=desc&after={}", page["next_after"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["orders"][0]["id"], 102);
    let refused = frontend.get("/api/orders?order=sideways").await;
    assert_eq!(refused.status(), 400, "the backend's own error, passed on");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "validation_failed");
}

#[tokio::test]
async fn checkout_reports_an_unreachable_backend() {
    let frontend = spawn_app_with(|c| {
        c.role = demo_app::config::Role::Frontend;
        c.backend_urls = vec!["http://127.0.0.1:1".into()];
    })
    .await;
    let response = frontend.post_json("/api/checkout", &order()).await;
    assert_eq!(response.status(), 502);
}

/// A backend that reads a request and answers `reply` (raw HTTP), or never
/// answers when `reply` is None.
async fn fake_backend(reply: Option<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                match reply {
                    Some(reply) => {
                        let _ = socket.write_all(&reply).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    address
}

async fn frontend_of(backend: String) -> crate::helpers::TestApp {
    spawn_app_with(|c| {
        c.role = demo_app::config::Role::Frontend;
        c.backend_urls = vec![backend];
        c.checkout_timeout = std::time::Duration::from_millis(500);
    })
    .await
}

#[tokio::test]
async fn checkout_gives_up_on_a_hung_backend() {
    let frontend = frontend_of(fake_backend(None).await).await;
    let started = std::time::Instant::now();
    let response = frontend.post_json("/api/checkout", &order()).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "waited {:?}", started.elapsed());
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "backend_timeout");
}

#[tokio::test]
async fn checkout_passes_on_no_answer_that_is_not_an_order_or_an_error() {
    let odd = b"HTTP/1.1 299 Odd\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\": true}".to_vec();
    let crash = b"HTTP/1.1 500 Internal\r\ncontent-length: 4\r\n\r\noops".to_vec();
    let not_an_order = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}".to_vec();
    let redirect =
        b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/api/orders\r\ncontent-length: 0\r\n\r\n".to_vec();
    for reply in [odd, crash, not_an_order, redirect] {
        let frontend = frontend_of(fake_backend(Some(reply)).await).await;
        let response = frontend.post_json("/api/checkout", &order()).await;
        assert_eq!(response.status(), 502);
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "backend_invalid_response");
    }
}

#[tokio::test]
async fn checkout_refuses_a_huge_backend_answer_without_buffering_it() {
    let body = vec![b' '; 8 << 20];
    let mut reply = format!(
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    reply.extend_from_slice(b"\r\n0\r\n\r\n");
    let frontend = frontend_of(fake_backend(Some(reply)).await).await;
    let response = frontend.post_json("/api/checkout", &order()).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert!(error["detail"].as_str().unwrap().contains("answer larger than 65536 bytes"), "{error}");
}

#[tokio::test]
async fn metrics_count_orders_and_their_value() {
    let app = spawn_app().await;
    app.post_json("/api/orders", &order()).await;
    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("orders_created_total 1"), "{metrics}");
    assert!(metrics.contains("orders_value_cents_total 5997"), "{metrics}");
}

//! Readiness switches, fault injection, random errors, and graceful shutdown.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn readiness_can_be_switched_off_and_on() {
    let app = spawn_app().await;
    assert_eq!(app.post("/readyz/disable", "").await.status(), 202);
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.post("/readyz/enable", "").await.status(), 202);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn fault_injection_fails_app_routes_but_not_probes_or_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.post("/fault_injection/enable", "").await.status(), 202);
    assert_eq!(app.get("/fault_injection/status").await.json::<Value>().await.unwrap()["enabled"], true);
    assert_eq!(app.get("/api/info").await.status(), 500);
    assert_eq!(app.get("/api/orders").await.status(), 500);
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200);
    assert_eq!(app.post("/fault_injection/disable", "").await.status(), 202);
    assert_eq!(app.get("/api/info").await.status(), 200);
}

#[tokio::test]
async fn control_endpoints_can_be_switched_off() {
    let app = spawn_app_with(|c| c.control_endpoints = false).await;
    for path in ["/readyz/disable", "/fault_injection/enable"] {
        assert_eq!(app.post(path, "").await.status(), 404, "{path}");
    }
    assert_eq!(app.get("/panic").await.status(), 404);
}

#[tokio::test]
async fn random_errors_fail_some_app_requests_with_podinfo_codes() {
    let app = spawn_app_with(|c| c.random_error = true).await;
    let mut failed = 0;
    for _ in 0..60 {
        let status = app.get("/api/info").await.status().as_u16();
        if status != 200 {
            assert!([500, 400, 409].contains(&status), "{status}");
            failed += 1;
        }
        assert_eq!(app.get("/healthz").await.status(), 200, "probes are exempt");
    }
    assert!((5..55).contains(&failed), "{failed} of 60 failed");
}

#[tokio::test]
async fn shutdown_turns_readiness_off_then_finishes_in_flight_requests() {
    let app = spawn_app_with(|c| c.drain_delay = Duration::from_millis(500)).await;
    // /chunked sends its status line at once and its body a second later:
    // once the status is here, the request is in flight (no sleep guesses it).
    let slow = app.client.get(app.url("/chunked/1")).send().await.unwrap();
    assert_eq!(slow.status(), 200);
    let client = app.client.clone();
    let ready_url = app.url("/readyz");
    let shutdown = tokio::spawn(app.shutdown());
    // Readiness turns off during the drain delay, while the listener still answers.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    loop {
        let status = client.get(&ready_url).send().await.map(|r| r.status().as_u16());
        if status.as_ref().ok() == Some(&503) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readiness did not turn 503 while draining: {status:?}");
        tokio::task::yield_now().await;
    }
    assert_eq!(slow.text().await.unwrap(), r#"{"delay":1}"#, "the in-flight request completes");
    shutdown.await.unwrap().unwrap();
    assert!(client.get(&ready_url).send().await.is_err(), "the listener is closed");
}

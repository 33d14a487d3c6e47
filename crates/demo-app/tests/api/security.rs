//! Body limits, traversal, redaction, headers.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn bodies_over_10_mib_are_refused_with_413() {
    let app = spawn_app().await;
    let big = vec![b'x'; 10 * 1024 * 1024 + 1];
    assert_eq!(app.post("/store", big.clone()).await.status(), 413);
    assert_eq!(app.post("/api/echo", big).await.status(), 413);
    assert_eq!(app.post("/store", vec![b'x'; 1024 * 1024]).await.status(), 202);
}

#[tokio::test]
async fn store_reads_never_leave_the_data_path() {
    let app = spawn_app().await;
    std::fs::write(app.data.path().join("secret.txt"), "top secret").unwrap();
    for path in [
        "/store/..%2Fsecret.txt",
        "/store/%2e%2e%2fsecret.txt",
        "/store/secret.txt",
        "/store/..%2F..%2F..%2Fetc%2Fpasswd",
        "/store/%2Fetc%2Fpasswd",
    ] {
        let response = app.get(path).await;
        let status = response.status().as_u16();
        assert!([400, 404].contains(&status), "{path} → {status}");
        assert!(!response.text().await.unwrap().contains("top secret"), "{path}");
    }
}

#[tokio::test]
async fn env_redacts_the_configured_names() {
    let app = spawn_app_with(|c| c.env_redact = vec!["path".into()]).await;
    let env: Vec<String> = app.get("/env").await.json().await.unwrap();
    assert!(env.contains(&"PATH=[redacted]".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("HOME=") && e != "HOME=[redacted]"));
}

#[tokio::test]
async fn every_response_says_nosniff() {
    let app = spawn_app().await;
    for path in ["/api/info", "/healthz", "/nope"] {
        assert_eq!(app.get(path).await.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

#[test]
fn the_built_in_jwt_secret_is_never_used_outside_development() {
    use clap::Parser;
    // No secret (podinfo's chart gives none): a random key per process.
    let config = demo_app::config::Config::parse_from(["demo-app"]);
    let (first, second) = (config.jwt_secret().unwrap(), config.jwt_secret().unwrap());
    assert_ne!(first, demo_app::config::INSECURE_JWT_SECRET);
    assert_ne!(first, second, "the key is random");
    assert_eq!(first.len(), 64, "256 bits");
    let debug = demo_app::config::Config::parse_from(["demo-app", "--level", "debug"]);
    assert_eq!(debug.jwt_secret().unwrap(), demo_app::config::INSECURE_JWT_SECRET);
    let explicit = demo_app::config::Config::parse_from(["demo-app", "--jwt-secret", "x"]);
    assert_eq!(explicit.jwt_secret().unwrap(), "x");
}

#[tokio::test]
async fn the_openapi_document_is_json() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "demo-app");
}

#[tokio::test]
async fn random_methods_do_not_grow_the_metric_labels() {
    let app = spawn_app().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("RANDOM{i}").as_bytes()).unwrap();
        let _ = app.client.request(method, app.url("/api/info")).send().await.unwrap();
    }
    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("RANDOM"), "a raw method became a label");
    assert!(metrics.contains("method=\"_OTHER\""), "{metrics}");
}

//! podinfo's routes: status codes, JSON keys, headers.

use serde_json::{Value, json};

use crate::helpers::{keys, spawn_app, spawn_app_with};

#[tokio::test]
async fn info_has_podinfos_keys_and_root_serves_it_to_non_browsers() {
    let app = spawn_app().await;
    for path in ["/api/info", "/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let info: Value = response.json().await.unwrap();
        assert_eq!(
            keys(&info),
            [
                "color",
                "goarch",
                "goos",
                "hostname",
                "logo",
                "message",
                "num_cpu",
                "num_goroutine",
                "revision",
                "runtime",
                "version"
            ]
        );
        assert!(info.as_object().unwrap().values().all(Value::is_string), "podinfo sends strings only");
        let tasks = info["num_goroutine"].as_str().unwrap();
        assert!(tasks.parse::<u64>().is_ok_and(|n| n > 0), "num_goroutine {tasks:?} counts the live tasks");
        assert_eq!(response_type(&app, path).await, "application/json", "{path}");
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    }
}

#[tokio::test]
async fn browsers_get_the_ui_with_a_strict_csp() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).header("User-Agent", "Mozilla/5.0").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.text().await.unwrap().contains("/ui/app.js"));
    assert_eq!(app.get("/ui/app.js").await.status(), 200);
    assert_eq!(app.get("/ui/other.js").await.status(), 404);
}

#[tokio::test]
async fn version_probes_and_metrics_port() {
    let app = spawn_app().await;
    let version: Value = app.get("/version").await.json().await.unwrap();
    assert_eq!(keys(&version), ["commit", "version"]);
    assert_eq!(app.get("/healthz").await.json::<Value>().await.unwrap(), json!({"status": "OK"}));
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get("/api/info").await.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_request_duration_seconds_bucket{"), "{metrics}");
    assert!(metrics.contains("path=\"api_info\""), "route templates label requests:\n{metrics}");
    assert_eq!(reqwest::get(format!("{}/healthz", app.metrics_address)).await.unwrap().text().await.unwrap(), "OK");
}

/// GET /api/info and GET /healthz are answered before the router
/// (routes/exact.rs), HEAD and the other methods on those paths by it: both
/// ways give the same answer, headers and metric labels.
#[tokio::test]
async fn the_exact_routes_answer_as_the_router_does() {
    let app = spawn_app().await;
    for (path, label) in [("/api/info", "api_info"), ("/healthz", "healthz")] {
        let get = app.get(path).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!((get.status().as_u16(), head.status().as_u16()), (200, 200), "{path}");
        for name in ["content-type", "x-content-type-options"] {
            assert_eq!(get.headers().get(name), head.headers().get(name), "{path}: {name}");
        }
        assert!(head.text().await.unwrap().is_empty(), "{path}: HEAD has no body");
        let post = app.post(path, "").await;
        assert_eq!(post.status(), 405, "{path}");
        assert_eq!(post.headers()["allow"], "GET,HEAD", "{path}");
        assert_eq!(post.headers()["x-content-type-options"], "nosniff", "{path}");
        let metrics = reqwest::get(format!("{}/metrics", app.metrics_address)).await.unwrap().text().await.unwrap();
        for (method, status) in [("GET", 200), ("HEAD", 200), ("POST", 405)] {
            let series = format!(
                "http_request_duration_seconds_count{{method=\"{method}\",path=\"{label}\",status=\"{status}\"}} 1"
            );
            assert!(metrics.contains(&series), "{series} not in:\n{metrics}");
        }
    }
}

#[tokio::test]
async fn unhealthy_and_unready_flags_fail_the_probes() {
    let app = spawn_app_with(|c| {
        c.unhealthy = true;
        c.unready = true;
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
}

#[tokio::test]
async fn status_answers_the_code_it_is_asked_for() {
    let app = spawn_app().await;
    for code in [200u16, 201, 404, 418, 500, 503] {
        let response = app.get(&format!("/status/{code}")).await;
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": code }));
    }
    let response = app.client.put(app.url("/status/202")).send().await.unwrap();
    assert_eq!(response.status(), 202);
    // No content for 204, 205 and 304 (RFC 9110), on GET and HEAD alike; no
    // Content-Length at all for 204 and 304, 0 for 205.
    for (code, length) in [(204u16, None), (304, None), (205, Some("0"))] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let response =
                app.client.request(method.clone(), app.url(&format!("/status/{code}"))).send().await.unwrap();
            assert_eq!(response.status().as_u16(), code);
            let sent = response.headers().get("content-length").map(|l| l.to_str().unwrap().to_string());
            assert_eq!(sent.as_deref(), length, "{method} {code}: {:?}", response.headers());
            assert!(response.bytes().await.unwrap().is_empty());
        }
    }
    for bad in ["/status/42", "/status/1000", "/status/abc"] {
        let response = app.get(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(keys(&response.json::<Value>().await.unwrap()), ["code", "message"]);
    }
}

#[tokio::test]
async fn delay_and_chunked_wait_then_answer() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    assert_eq!(app.get("/delay/1").await.json::<Value>().await.unwrap(), json!({"delay": 1}));
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let response = app.get("/chunked/1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"delay": 1}));
    assert_eq!(app.get("/delay/x").await.status(), 400);
    assert_eq!(app.get("/delay/100000").await.status(), 400);
}

#[tokio::test]
async fn headers_reflects_the_request_and_env_lists_variables() {
    let app = spawn_app().await;
    let headers: Value =
        app.client.get(app.url("/headers")).header("X-Request-Id", "abc").send().await.unwrap().json().await.unwrap();
    assert_eq!(headers["X-Request-Id"], json!(["abc"]));
    assert!(headers.get("X-Api-Version").is_some());
    let env: Vec<String> = app.get("/env").await.json().await.unwrap();
    assert!(env.iter().any(|e| e.starts_with("PATH=")));
}

#[tokio::test]
async fn echo_without_backends_returns_the_body_with_202() {
    let app = spawn_app().await;
    for path in ["/echo", "/api/echo", "/api/echo/any/sub/path"] {
        let response = app.post(path, "<b>hello</b>").await;
        assert_eq!(response.status(), 202, "{path}");
        assert_eq!(response.headers()["x-color"], "#34577c");
        assert_eq!(response.headers()["content-type"], "application/octet-stream");
        assert_eq!(response.text().await.unwrap(), "<b>hello</b>");
    }
}

#[tokio::test]
async fn echo_fans_out_to_every_backend_in_order() {
    let backend_a = spawn_app_with(|c| c.ui_color = "a".into()).await;
    let backend_b = spawn_app().await;
    let frontend = spawn_app_with(|c| {
        c.backend_urls = vec![backend_a.url("/echo"), backend_b.url("/status/500"), "http://127.0.0.1:1/echo".into()];
    })
    .await;
    let response = frontend.post("/api/echo", "ping").await;
    assert_eq!(response.status(), 200);
    let answers: Vec<String> = response.json().await.unwrap();
    assert_eq!(answers[0], "ping");
    assert!(answers[1].contains("response status code 500"), "{}", answers[1]);
    assert!(answers[2].contains("call failed"), "{}", answers[2]);
}

#[tokio::test]
async fn tokens_are_issued_and_validated() {
    let app = spawn_app().await;
    let issued: Value = app.post("/token", "alice").await.json().await.unwrap();
    assert_eq!(keys(&issued), ["expires_at", "token"]);
    let token = issued["token"].as_str().unwrap();
    let ok = app.client.get(app.url("/token/validate")).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(keys(&ok), ["expires_at", "token_name"]);
    assert_eq!(ok["token_name"], "alice");
    let anonymous: Value = app.post("/token", "").await.json().await.unwrap();
    let anonymous = anonymous["token"].as_str().unwrap();
    let who: Value =
        app.client.get(app.url("/token/validate")).bearer_auth(anonymous).send().await.unwrap().json().await.unwrap();
    assert_eq!(who["token_name"], "anonymous");

    let missing = app.get("/token/validate").await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().await.unwrap()["message"], "authorization bearer header required");
    let forged = app.client.get(app.url("/token/validate")).bearer_auth(format!("{token}x")).send().await.unwrap();
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let secret = "test-secret";
    let app = spawn_app_with(|config| config.jwt_secret = Some(secret.into())).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sign = |nbf: Value| {
        let claims = serde_json::json!({"name": "mallory", "iss": "demo-app", "exp": now + 600, "nbf": nbf});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let validate = |token: String| app.client.get(app.url("/token/validate")).bearer_auth(token).send();
    assert_eq!(validate(sign(json!(now - 10))).await.unwrap().status(), 200, "a token valid since 10 s ago");
    let early = validate(sign(json!(now + 300))).await.unwrap();
    assert_eq!(early.status(), 401);
    assert_eq!(early.json::<Value>().await.unwrap()["message"], "ImmatureSignature");
    // A "not before" that is not a date is no promise kept: refused, not ignored.
    for nbf in [json!((now + 300).to_string()), Value::Null, json!({"at": now + 300})] {
        let odd = validate(sign(nbf.clone())).await.unwrap();
        assert_eq!(odd.status(), 401, "nbf {nbf}");
        let message = odd.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_string();
        assert!(message.contains("nbf"), "nbf {nbf}: {message}");
    }
}

#[tokio::test]
async fn cache_keeps_values_in_the_store() {
    let app = spawn_app().await;
    assert_eq!(app.get("/cache/greeting").await.status(), 404);
    assert_eq!(app.post("/cache/greeting", "hello").await.status(), 202);
    let response = app.get("/cache/greeting").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello");
    assert_eq!(app.client.put(app.url("/cache/greeting")).body("bye").send().await.unwrap().status(), 202);
    assert_eq!(app.get("/cache/greeting").await.text().await.unwrap(), "bye");
    assert_eq!(app.client.delete(app.url("/cache/greeting")).send().await.unwrap().status(), 202);
    assert_eq!(app.get("/cache/greeting").await.status(), 404);
}

#[tokio::test]
async fn a_cache_key_with_nul_is_refused_before_any_engine_sees_it() {
    let app = spawn_app().await;
    for response in [app.get("/cache/a%00b").await, app.post("/cache/a%00b", "v").await] {
        assert_eq!(response.status(), 400);
        assert_eq!(response.json::<Value>().await.unwrap()["message"], "key must not contain a NUL character");
    }
}

#[tokio::test]
async fn store_keeps_content_by_its_digest() {
    let app = spawn_app().await;
    let response = app.post("/store", "some bytes").await;
    assert_eq!(response.status(), 202);
    let hash = response.json::<Value>().await.unwrap()["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    let stored = app.get(&format!("/store/{hash}")).await;
    assert_eq!(stored.status(), 202, "podinfo answers 202 here");
    assert_eq!(stored.headers()["content-type"], "application/octet-stream");
    assert_eq!(stored.text().await.unwrap(), "some bytes");
    assert_eq!(app.get(&format!("/store/{}", "0".repeat(64))).await.status(), 404);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let app = spawn_app().await;
    assert_eq!(app.get("/nope").await.status(), 404);
    assert_eq!(app.get("/token").await.status(), 405);
    assert_eq!(app.get("/readyz/enable").await.status(), 405);
}

#[tokio::test]
async fn openapi_document_is_served_at_both_paths() {
    let app = spawn_app().await;
    for path in ["/openapi.json", "/swagger.json"] {
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{path}");
        assert!(doc["paths"]["/api/orders"].is_object());
    }
}

async fn response_type(app: &crate::helpers::TestApp, path: &str) -> String {
    let response = app.get(path).await;
    response.headers()["content-type"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn configs_lists_the_config_folder_as_it_is_now() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("app.yaml"), "color: blue\n").unwrap();
    let path = folder.path().to_path_buf();
    let app = spawn_app_with(move |config| config.config_path = Some(path)).await;
    let listed: Value = app.get("/configs").await.json().await.unwrap();
    assert_eq!(listed, json!({ "app.yaml": "color: blue\n" }));
    // An update (a ConfigMap edit) shows without a restart.
    std::fs::write(folder.path().join("app.yaml"), "color: green\n").unwrap();
    std::fs::write(folder.path().join("extra.json"), "{}").unwrap();
    let listed: Value = app.get("/configs").await.json().await.unwrap();
    assert_eq!(listed, json!({ "app.yaml": "color: green\n", "extra.json": "{}" }));
    // Without --config-path: an empty object, as podinfo.
    let bare = spawn_app().await;
    assert_eq!(bare.get("/configs").await.json::<Value>().await.unwrap(), json!({}));
}

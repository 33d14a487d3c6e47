//! Differential test: the same requests to real podinfo (built by
//! `make tools`) and to demo-app; status codes and JSON key sets must match
//! on every shared endpoint. Deliberate differences are listed in the README
//! ("Differences from podinfo") and asserted here as such.

#[allow(dead_code)]
mod support;

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};
use support::podinfo::{self, Podinfo};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use helpers::spawn_app;

async fn start_podinfo() -> Podinfo {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let podinfo = podinfo::spawn(port, &["--port", &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/readyz", podinfo.base)).await.map(|r| r.status().is_success()).ok() != Some(true) {
        assert!(Instant::now() < deadline, "podinfo did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    podinfo
}

/// Status, and the JSON shape: sorted object keys, "array", "scalar" or "text".
#[derive(Debug, PartialEq)]
struct Observed {
    status: StatusCode,
    shape: String,
}

async fn observe(client: &Client, method: Method, url: &str, body: &'static str) -> (Observed, Option<Value>) {
    let response = client.request(method, url).body(body).send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap();
    let json: Option<Value> = serde_json::from_str(&text).ok();
    let shape = match &json {
        Some(Value::Object(map)) => {
            let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys.join(",")
        }
        Some(Value::Array(_)) => "array".into(),
        Some(_) => "scalar".into(),
        None if text.is_empty() => "empty".into(),
        None => "text".into(),
    };
    (Observed { status, shape }, json)
}

#[tokio::test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
async fn shared_endpoints_answer_like_podinfo() {
    let podinfo = start_podinfo().await;
    let ours = spawn_app().await;
    let client = Client::new();
    let cases: &[(Method, &str, &str)] = &[
        (Method::GET, "/", ""),
        (Method::GET, "/api/info", ""),
        (Method::GET, "/version", ""),
        (Method::GET, "/healthz", ""),
        (Method::GET, "/readyz", ""),
        (Method::GET, "/status/200", ""),
        (Method::GET, "/status/404", ""),
        (Method::POST, "/status/201", ""),
        (Method::PUT, "/status/503", ""),
        (Method::GET, "/delay/0", ""),
        (Method::GET, "/chunked/0", ""),
        (Method::GET, "/env", ""),
        (Method::POST, "/env", ""),
        (Method::GET, "/configs", ""),
        (Method::POST, "/echo", "hello"),
        (Method::PUT, "/api/echo", "hello"),
        (Method::POST, "/api/echo/sub/path", "hello"),
        (Method::POST, "/token", "alice"),
        (Method::POST, "/store", "stored bytes"),
        (Method::GET, "/metrics", ""),
        (Method::GET, "/token", ""),
        (Method::POST, "/readyz", ""),
        (Method::GET, "/no/such/route", ""),
        (Method::GET, "/version/", ""),
    ];
    let mut mismatches = Vec::new();
    for (method, path, body) in cases {
        let (theirs, _) = observe(&client, method.clone(), &format!("{}{path}", podinfo.base), body).await;
        let (mine, _) = observe(&client, method.clone(), &ours.url(path), body).await;
        let same_shape = theirs.shape == mine.shape
            // podinfo's 404/405 bodies are text; ours are empty. Content, not contract.
            || (theirs.status.is_client_error() && mine.status == theirs.status)
            // /metrics and /echo bodies are text in both; /chunked is JSON in both
            // but podinfo sends no content type. Compare as text.
            || (theirs.shape == "text" && mine.shape == "text");
        if theirs.status != mine.status || !same_shape {
            mismatches.push(format!("{method} {path}: podinfo {theirs:?}, demo-app {mine:?}"));
        }
    }
    assert!(mismatches.is_empty(), "differences from podinfo:\n{}", mismatches.join("\n"));
}

#[tokio::test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
async fn headers_echo_tokens_and_readiness_behave_like_podinfo() {
    let podinfo = start_podinfo().await;
    let ours = spawn_app().await;
    let client = Client::new();
    for base in [podinfo.base.clone(), ours.address.clone()] {
        // /headers reflects request headers under Go's canonical names.
        let headers: Value =
            client.get(format!("{base}/headers")).header("x-test", "1").send().await.unwrap().json().await.unwrap();
        assert_eq!(headers["X-Test"], serde_json::json!(["1"]), "{base}");
        assert!(headers.get("X-Api-Version").is_some(), "{base}");
        // /echo without backends returns the body, 202, X-Color.
        let echo = client.post(format!("{base}/echo")).body("ping").send().await.unwrap();
        assert_eq!(echo.status(), 202, "{base}");
        assert!(echo.headers().contains_key("x-color"), "{base}");
        assert_eq!(echo.text().await.unwrap(), "ping", "{base}");
        // A token issued by the server validates there, with podinfo's keys.
        let token: Value =
            client.post(format!("{base}/token")).body("alice").send().await.unwrap().json().await.unwrap();
        let valid = client
            .get(format!("{base}/token/validate"))
            .bearer_auth(token["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(valid.status(), 200, "{base}");
        let valid: Value = valid.json().await.unwrap();
        assert_eq!(valid["token_name"], "alice", "{base}");
        // Readiness switches: 202, then 503, then back.
        assert_eq!(client.post(format!("{base}/readyz/disable")).send().await.unwrap().status(), 202);
        assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 503);
        assert_eq!(client.post(format!("{base}/readyz/enable")).send().await.unwrap().status(), 202);
        assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
        // Content-addressed store round trip (202 on read, as podinfo).
        let stored: Value =
            client.post(format!("{base}/store")).body("abc").send().await.unwrap().json().await.unwrap();
        let read = client.get(format!("{base}/store/{}", stored["hash"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(read.status(), 202, "{base}");
        assert_eq!(read.text().await.unwrap(), "abc", "{base}");
    }
}

/// Where we differ on purpose, the difference is pinned so it cannot drift.
#[tokio::test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
async fn deliberate_differences_are_what_the_readme_says() {
    let podinfo = start_podinfo().await;
    let ours = spawn_app().await;
    let client = Client::new();
    // Errors: podinfo sends {"code": 401, ...} with HTTP 200; we send the real status.
    let (theirs, body) = observe(&client, Method::GET, &format!("{}/token/validate", podinfo.base), "").await;
    assert_eq!((theirs.status, body.unwrap()["code"].as_u64()), (StatusCode::OK, Some(401)));
    let (mine, body) = observe(&client, Method::GET, &ours.url("/token/validate"), "").await;
    assert_eq!((mine.status, body.unwrap()["code"].as_u64()), (StatusCode::UNAUTHORIZED, Some(401)));
    assert_eq!(theirs.shape, mine.shape, "same keys: code, message");
    // /store hashes: SHA-1 (40 hex) there, SHA-256 (64 hex) here.
    let (_, theirs) = observe(&client, Method::POST, &format!("{}/store", podinfo.base), "x").await;
    let (_, mine) = observe(&client, Method::POST, &ours.url("/store"), "x").await;
    assert_eq!(theirs.unwrap()["hash"].as_str().unwrap().len(), 40);
    assert_eq!(mine.unwrap()["hash"].as_str().unwrap().len(), 64);
    // /cache: podinfo needs Redis ("cache server is offline"); ours keeps values in the database.
    let (theirs, body) = observe(&client, Method::POST, &format!("{}/cache/k", podinfo.base), "v").await;
    assert_eq!((theirs.status, body.unwrap()["code"].as_u64()), (StatusCode::OK, Some(400)));
    let (mine, _) = observe(&client, Method::POST, &ours.url("/cache/k"), "v").await;
    assert_eq!(mine.status, StatusCode::ACCEPTED);
}

/// Every flag podinfo's own `--help` lists starts demo-app, with a value of
/// the type podinfo gives it, and each boolean in both `--flag` and
/// `--flag=false` forms (podinfo's manifests use both).
#[test]
#[ignore = "needs podinfo from `make tools`; `make test` runs it"]
fn every_flag_podinfo_lists_is_accepted() {
    use clap::Parser as _;
    let help = std::process::Command::new(podinfo::binary()).arg("--help").output().expect("podinfo runs");
    let usage = String::from_utf8_lossy(&help.stderr).into_owned() + &String::from_utf8_lossy(&help.stdout);
    // pflag's usage: `  -v, --version` or `      --port int   HTTP port (default 9898)`.
    let flag = regex::Regex::new(r"^\s+(?:-\w, )?--([a-z0-9-]+)(?: (\w+))?").unwrap();
    let mut checked = Vec::new();
    for line in usage.lines() {
        let Some(found) = flag.captures(line) else { continue };
        let name = &found[1];
        if name == "help" || name == "version" {
            continue; // both exit; `-v` is covered by the config's unit tests
        }
        let value = match (name, found.get(2).map(|t| t.as_str())) {
            (_, None) => None,
            ("level", _) => Some("info"),
            ("random-delay-unit", _) => Some("ms"),
            ("backend-url", _) => Some("http://127.0.0.1:1"),
            ("cache-server", _) => Some("tcp://127.0.0.1:6379"),
            ("host", _) => Some("127.0.0.1"),
            (_, Some("int" | "float64" | "uint")) => Some("1"),
            (_, Some("duration")) => Some("1s"),
            (_, Some(_)) => Some("/tmp"),
        };
        let forms = match value {
            Some(value) => vec![format!("--{name}={value}")],
            None => vec![format!("--{name}"), format!("--{name}=false")],
        };
        for form in forms {
            if let Err(err) = demo_app::config::Config::try_parse_from(["demo-app", &form]) {
                panic!("podinfo's `{form}` is refused: {err}");
            }
        }
        checked.push(name.to_string());
    }
    // podinfo 6.9 lists some forty flags: far fewer means the usage was not read.
    assert!(checked.len() >= 30, "only {} flags read from podinfo's usage:\n{usage}", checked.len());
    for known in ["port", "port-metrics", "grpc-port", "random-delay", "h2c", "secure-port", "stress-cpu"] {
        assert!(checked.iter().any(|c| c == known), "{known} missing from podinfo's usage:\n{usage}");
    }
}

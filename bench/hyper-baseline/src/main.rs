//! The practical upper bound of the benchmark: hyper and tokio with nothing
//! else (no router, no middleware, no telemetry), answering the three
//! requests that every server of the benchmark answers, over HTTP/1.1 and
//! h2c as demo-app does. `/api/info` does what demo-app's handler does: the
//! document serialized once, the live task count put in on every request.
//!
//! Usage: `hyper-baseline [PORT]` (default 9898), on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use tokio::net::TcpListener;

/// What does not change while the process runs: the info document's JSON
/// around the value of `num_goroutine`.
struct Facts {
    info_head: String,
    info_tail: String,
}

/// Same keys and kinds of values as demo-app's (and podinfo's) info document.
#[derive(Serialize)]
struct Info {
    hostname: String,
    version: &'static str,
    revision: &'static str,
    color: &'static str,
    logo: &'static str,
    message: &'static str,
    goos: &'static str,
    goarch: &'static str,
    runtime: &'static str,
    num_goroutine: String,
    num_cpu: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        None => 9898,
        Some(raw) => raw.parse().map_err(|_| std::io::Error::other(format!("not a port number: {raw}")))?,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    // Read once: the std call reads the affinity mask and cgroup files each time.
    let num_cpu = std::thread::available_parallelism().map_or(1, usize::from).to_string();
    let facts: &'static Facts = Box::leak(Box::new(facts(hostname, num_cpu)));
    eprintln!("hyper-baseline listening on 127.0.0.1:{port}");
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, facts));
            // A client that goes away mid-request is not the server's error.
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>, facts: &Facts) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/api/info") => {
            let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            json(StatusCode::OK, format!("{}{tasks}{}", facts.info_head, facts.info_tail).into_bytes())
        }
        (&Method::GET, "/healthz") => json(StatusCode::OK, br#"{"status":"OK"}"#.to_vec()),
        (&Method::POST, "/api/echo") => match request.into_body().collect().await {
            Ok(body) => {
                let mut response = Response::new(Full::new(body.to_bytes()));
                *response.status_mut() = StatusCode::ACCEPTED;
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                response
            }
            Err(_) => status(StatusCode::BAD_REQUEST),
        },
        _ => status(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

fn facts(hostname: String, num_cpu: String) -> Facts {
    const MARK: &str = "\u{1}tasks\u{1}";
    let info = Info {
        hostname,
        version: env!("CARGO_PKG_VERSION"),
        revision: "bench",
        color: "#34577c",
        logo: "",
        message: "greetings from hyper-baseline",
        goos: std::env::consts::OS,
        goarch: std::env::consts::ARCH,
        runtime: "rust (hyper, tokio)",
        num_goroutine: MARK.to_string(),
        num_cpu,
    };
    let json = serde_json::to_string(&info).unwrap_or_default();
    let quoted = serde_json::to_string(MARK).unwrap_or_default();
    let at = json.find(&quoted).unwrap_or_default();
    Facts { info_head: json[..=at].to_string(), info_tail: json[at + quoted.len() - 1..].to_string() }
}

fn json(code: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

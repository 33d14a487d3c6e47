//! The practical upper bound of the benchmark: hyper and tokio with nothing
//! else (no router, no middleware, no telemetry), answering the three
//! requests that every server of the benchmark answers. `/api/info` builds
//! and serializes the same document as demo-app on every request, so the
//! bound includes the work any real handler of that route has to do.
//!
//! Usage: `hyper-baseline [PORT]` (default 9898), on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

/// What does not change while the process runs.
struct Facts {
    hostname: String,
    num_cpu: String,
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
    let facts: &'static Facts = Box::leak(Box::new(Facts { hostname, num_cpu }));
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
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>, facts: &Facts) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/api/info") => json(StatusCode::OK, serde_json::to_vec(&info(facts)).unwrap_or_default()),
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

fn info(facts: &Facts) -> Info {
    Info {
        hostname: facts.hostname.clone(),
        version: env!("CARGO_PKG_VERSION"),
        revision: "bench",
        color: "#34577c",
        logo: "",
        message: "greetings from hyper-baseline",
        goos: std::env::consts::OS,
        goarch: std::env::consts::ARCH,
        runtime: "rust (hyper, tokio)",
        num_goroutine: "1".to_string(),
        num_cpu: facts.num_cpu.clone(),
    }
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

//! SIGTERM under load against the real binary: readiness goes 503 at once,
//! requests keep being served through the drain delay, in-flight requests
//! finish, the process exits 0, and no request sent before the load balancer
//! stopped routing fails.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The release binary on loopback ports with its own data folder, killed
/// when dropped (a failed assertion must not leave it running and holding
/// the test's pipe).
struct Server {
    child: std::process::Child,
    base: String,
    metrics_port: u16,
    _data: tempfile::TempDir,
}

impl Server {
    /// Starts it with `args` (level, drain and shutdown timings) and waits
    /// until it is ready.
    async fn start(args: &[&str], stdout: Stdio) -> Server {
        let data = tempfile::tempdir().unwrap();
        let (port, metrics_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .args(["--host", "127.0.0.1", "--insecure-dev"])
            .args(["--port", &port.to_string(), "--port-metrics", &metrics_port.to_string()])
            .args(args)
            .arg("--data-path")
            .arg(data.path())
            .stdout(stdout)
            .spawn()
            .expect("demo-app starts");
        let server = Server { child, base: format!("http://127.0.0.1:{port}"), metrics_port, _data: data };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{}/readyz", server.base)).send().await.map(|r| r.status() == 200).ok() != Some(true) {
            assert!(Instant::now() < deadline, "demo-app did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn terminate(&self) {
        let term = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(term.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_request() {
    let mut server =
        Server::start(&["--level", "warn", "--drain-delay", "2s", "--server-shutdown-timeout", "5s"], Stdio::null())
            .await;
    let base = server.base.clone();
    let client = reqwest::Client::new();

    // The "load balancer": routes traffic until it sees the pod unready.
    let routing = Arc::new(AtomicBool::new(true));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, base, routing, sent, failed) =
            (client.clone(), base.clone(), routing.clone(), sent.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while routing.load(Ordering::Relaxed) {
                n += 1;
                let request = match (worker, n % 3) {
                    (0, _) => client.get(format!("{base}/delay/1")),
                    (_, 0) => client
                        .post(format!("{base}/api/orders"))
                        .json(&serde_json::json!({"sku": "load", "quantity": 1, "unit_price_cents": 1})),
                    _ => client.get(format!("{base}/api/info")),
                };
                sent.fetch_add(1, Ordering::Relaxed);
                match request.send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        eprintln!("worker {worker}: status {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("worker {worker}: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Under load before the signal: every worker has requests going.
    while sent.load(Ordering::Relaxed) < 64 {
        tokio::task::yield_now().await;
    }
    server.terminate();
    let signalled = Instant::now();
    // Readiness must flip at once (well before the drain delay ends).
    loop {
        let status = client.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16());
        if status.as_ref().ok() == Some(&503) {
            break;
        }
        assert!(signalled.elapsed() < Duration::from_millis(1500), "readiness did not turn 503: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    routing.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let exit = tokio::task::block_in_place(|| server.child.wait()).unwrap();
    assert!(exit.success(), "demo-app exited with {exit}");
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
}

/// stdout a pipe nobody reads (a stuck log collector): debug logs fill the
/// pipe within a few hundred lines, and the server must go on answering and
/// still stop on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_never_stops_the_server() {
    // Piped and never read.
    let mut server =
        Server::start(&["--level", "debug", "--drain-delay", "0s", "--server-shutdown-timeout", "2s"], Stdio::piped())
            .await;
    let (base, metrics_port) = (server.base.clone(), server.metrics_port);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    // Far more log output than a pipe holds (64 KiB): each 5xx logs a line.
    for i in 0..2000 {
        let response = client.get(format!("{base}/status/500")).send().await;
        assert!(response.is_ok_and(|r| r.status() == 500), "request {i} got no answer with stdout full");
    }
    let health = client.get(format!("http://127.0.0.1:{metrics_port}/healthz")).send().await;
    assert!(health.is_ok_and(|r| r.status() == 200), "/healthz on the metrics port failed with stdout full");

    server.terminate();
    let stopped = Instant::now() + Duration::from_secs(8);
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < stopped, "SIGTERM did not stop the process within 8 s with stdout full");
        std::thread::sleep(Duration::from_millis(50));
    }
}

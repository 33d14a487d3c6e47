//! Checkout against a backend that misbehaves, as the frontend sees it in a
//! cluster: one that accepts and never answers, one that answers a byte at
//! a time, one that sends 200 MB of garbage, one that answers a status no
//! order has. Every checkout must end within --checkout-timeout with 504 or
//! 502, and the frontend must stay within its chart memory limit (a 200 MB
//! answer once took it to 419 MB).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::{App, Launch, Programs};
use crate::stack::http;

/// Checkouts sent at once to each backend.
const CALLS: usize = 20;
/// `--checkout-timeout` of this run.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
enum Backend {
    Hung,
    Dripping,
    Garbage,
    OddStatus,
}

impl Backend {
    /// What it does with one connection, once the request has arrived.
    fn answer(self, socket: &mut TcpStream, stop: &AtomicBool) {
        let stopped = || stop.load(Ordering::Relaxed);
        match self {
            // Holds the connection open, answering nothing (reads time out
            // every 200 ms to look at `stop`).
            Backend::Hung => {
                while !stopped() {
                    match socket.read(&mut [0u8; 1024]) {
                        Ok(0) => break,
                        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                        _ => {}
                    }
                }
            }
            Backend::Dripping => {
                let _ = socket.write_all(
                    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n",
                );
                while !stopped() && socket.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            // No declared length (the answer ends when the connection
            // closes): refused only by reading it, not from its head.
            Backend::Garbage => {
                let head = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                let piece = vec![b'#'; 64 * 1024];
                let _ = socket.write_all(head);
                for _ in 0..3200 {
                    if stopped() || socket.write_all(&piece).is_err() {
                        break;
                    }
                }
            }
            Backend::OddStatus => {
                let _ = socket.write_all(
                    b"HTTP/1.1 299 Odd\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\": true}",
                );
            }
        }
    }

    fn expected(self) -> u16 {
        match self {
            Backend::Hung | Backend::Dripping => 504,
            Backend::Garbage | Backend::OddStatus => 502,
        }
    }
}

/// A backend of `kind` on a free loopback port, until `stop`.
fn serve(kind: Backend, stop: Arc<AtomicBool>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut socket, _)) => {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let _ = socket.set_nonblocking(false);
                        let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
                        // The request's head (the checkout sends a small body).
                        let _ = socket.read(&mut [0u8; 4096]);
                        kind.answer(&mut socket, &stop);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Ok(port)
}

pub(super) fn broken_backends(programs: &Programs) -> Result<String> {
    let mut measured = Vec::new();
    for kind in [Backend::Hung, Backend::Dripping, Backend::Garbage, Backend::OddStatus] {
        let stop = Arc::new(AtomicBool::new(false));
        let backend = format!("http://127.0.0.1:{}", serve(kind, stop.clone())?);
        let dir = tempfile::tempdir()?;
        let launch = Launch {
            env: &[],
            args: &["--role", "frontend", "--backend-url", &backend, "--checkout-timeout", "2s"],
            open_files: None,
            memory_limit_mib: programs.frontend_limit_mib,
        };
        let app = App::launch(&programs.demo_app, &dir.path().join("data"), launch)?;
        let started = Instant::now();
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let port = app.port;
                std::thread::spawn(move || {
                    let order = json!({"sku": format!("checkout-{i}"), "quantity": 1, "unit_price_cents": 100});
                    let answer = http::post_json(port, "/api/checkout", &[], &order);
                    let (status, body) = answer.map_or_else(|e| (0, format!("{e:#}")), |r| (r.status, r.text()));
                    (status, body, Instant::now())
                })
            })
            .collect();
        let mut seen = std::collections::BTreeMap::<u16, usize>::new();
        let (mut slowest, mut unexpected) = (Duration::ZERO, None);
        for call in calls {
            let (status, body, ended) = call.join().unwrap_or((0, "panicked".into(), Instant::now()));
            *seen.entry(status).or_default() += 1;
            slowest = slowest.max(ended - started);
            if status != kind.expected() {
                unexpected.get_or_insert(body);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let peak = app.stop()?;
        if seen.get(&kind.expected()) != Some(&CALLS) {
            let example = unexpected.unwrap_or_default();
            bail!(
                "{kind:?} backend: {CALLS} checkouts answered {seen:?}, all {} expected; one said: {example}",
                kind.expected()
            );
        }
        if slowest > TIMEOUT + Duration::from_secs(2) {
            bail!("{kind:?} backend: the slowest checkout took {slowest:?} with --checkout-timeout {TIMEOUT:?}");
        }
        measured.push(format!("{kind:?}: {seen:?}, slowest {:.1} s, peak RSS {peak} MiB", slowest.as_secs_f64()));
    }
    Ok(format!("{CALLS} checkouts at once against each backend: {}", measured.join("; ")))
}

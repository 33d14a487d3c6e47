//! The accept loop: hyper's connections with the limits `axum::serve` leaves
//! unset. Without them a few hundred silent or slow sockets held the process
//! open files until the kubelet's probes timed out (slowloris), and idle
//! keep-alive connections were never closed.
//!
//! - at most `max_connections` at once: past that, new connections wait in
//!   the kernel's accept queue (no file descriptor), so the process never
//!   runs out of them, and the metrics port, with its own small budget,
//!   keeps answering probes;
//! - `header_timeout` for a request's headers, and for a connection with no
//!   request in flight (before its first one too, whatever the protocol:
//!   connection_watch.rs);
//! - `body_timeout` for a request's whole body (slow uploads, even one
//!   that trickles a byte a second, are cut off);
//! - `write_timeout` for a response write that makes no progress (a client
//!   that never reads), and for an HTTP/2 response whose stream the client
//!   keeps shut (connection_watch.rs);
//! - at most `MAX_STREAMS` concurrent HTTP/2 streams a connection, each
//!   buffering at most `STREAM_SEND_BUFFER` of its answer;
//! - HTTP/1.1 and HTTP/2 (h2c, with prior knowledge) on the same port; with
//!   `tls`, HTTPS (ALPN h2 and http/1.1), as podinfo's --secure-port.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use tokio_rustls::TlsAcceptor;

use crate::body_deadline::DeadlineBody;
use crate::connection_watch::{Activity, Tracked};
use crate::write_deadline::WriteDeadline;

/// HTTP/2 streams one connection may have open at once (hyper's default is
/// 200): each can hold a request body and an answer.
const MAX_STREAMS: u32 = 100;
/// What one HTTP/2 stream may queue of its answer (hyper's default is
/// 400 KiB): the rest waits in the response body, counted by the memory
/// budget, until the client's window lets it go.
const STREAM_SEND_BUFFER: usize = 64 * 1024;
/// The kernel's send buffer of a connection (it doubles what is asked; left
/// to itself it grows to 4 MiB). The writer is woken only when a third of
/// it has drained: with 4 MiB a client reading a steady 300 KiB/s made no
/// visible progress for 4 s and was cut by the write timeout. Behind a mesh
/// the peer is the sidecar on loopback, where a small buffer costs nothing.
const SOCKET_SEND_BUFFER: usize = 256 * 1024;

/// A connection's place in `max_connections`, held by its requests: a
/// WebSocket session keeps it after the HTTP connection has handed over
/// its socket, so sessions count as the connections they are.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Whether `request` may become a WebSocket session: an HTTP/1.1 upgrade,
/// or an HTTP/2 extended CONNECT (RFC 8441).
fn may_upgrade<B>(request: &axum::http::Request<B>) -> bool {
    request.method() == axum::http::Method::CONNECT || request.headers().contains_key(axum::http::header::UPGRADE)
}

/// The answer to plain HTTP on the HTTPS port (Go's, so podinfo's).
const PLAIN_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
}

/// Serves `app` (a router, or routes::App) until `stop` turns true, then
/// stops accepting and waits for the open connections to finish their
/// requests (the caller bounds that wait).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header timer of hyper's: it armed a timer for every request
    // (about 1k instructions); the connection's watch closes a connection
    // whose request headers do not arrive (connection_watch.rs, within two
    // header timeouts), whatever the protocol.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .max_concurrent_streams(MAX_STREAMS)
        .max_send_buf_size(STREAM_SEND_BUFFER);
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and the like: wait rather than spin; the
                    // connection in the queue is taken on a later turn.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&stream, SOCKET_SEND_BUFFER);
        let slot = ConnectionSlot(Arc::new(permit));
        let service = app.clone().map_request(move |request: axum::http::Request<_>| {
            // Most requests have no body: an empty one costs no allocation,
            // where a deadline around hyper's empty body was boxed.
            let mut request = request.map(|body| {
                if http_body::Body::is_end_stream(&body) {
                    axum::body::Body::empty()
                } else {
                    axum::body::Body::new(DeadlineBody::new(body, limits.body_timeout))
                }
            });
            // Only a request that can take the socket over needs the slot;
            // the first extension of a request allocates its map.
            if may_upgrade(&request) {
                request.extensions_mut().insert(slot.clone());
            }
            request
        });
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let activity = Arc::new(Activity::default());
            let service = TowerToHyperService::new(Tracked::new(service, activity.clone()));
            // Errors here are the client's (reset, timeout): nothing to do.
            let connection = async {
                match tls {
                    None => {
                        let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
                        let _ = watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned()).await;
                    }
                    Some(tls) => {
                        // A TLS session starts with a handshake record (0x16):
                        // anything else is plain HTTP, answered as Go does.
                        let mut first = [0u8; 1];
                        if matches!(stream.peek(&mut first).await, Ok(1) if first[0] != 0x16) {
                            return refuse_plain_http(stream).await;
                        }
                        if let Ok(stream) = tls.accept(stream).await {
                            let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
                            let _ =
                                watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned()).await;
                        }
                    }
                }
            };
            // The watch runs as a task of its own: inside this select! its two
            // timers were polled at every wake of the connection, about 500
            // instructions a request.
            let (close, closing) = tokio::sync::oneshot::channel();
            let watch = tokio::spawn(async move {
                let _ = close.send(activity.watch(limits.header_timeout, limits.write_timeout).await);
            });
            tokio::select! {
                () = connection => {}
                Ok(verdict) = closing => tracing::debug!(%peer, ?verdict, "closing a connection"),
            }
            watch.abort();
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers plain HTTP on the HTTPS port, then reads what the client sent
/// until it closes (closing on unread bytes would reset the connection
/// before the answer is read).
async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt as _;
    if stream.write_all(PLAIN_ON_TLS).await.is_ok() && stream.shutdown().await.is_ok() {
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// The TLS acceptor of --secure-port from `dir`/tls.crt and tls.key (the
/// layout of a mounted kubernetes.io/tls Secret, as podinfo reads it).
pub fn tls_acceptor(dir: &std::path::Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context as _;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading the certificate {} (--cert-path)", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("reading the private key {} (--cert-path)", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("the certificate and key in {} do not make a TLS identity", dir.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Resolves once `stop` is true (the watch guard is not held across awaits:
/// it is not Send).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Connections allowed on the app port: `wanted`, lowered so that with the
/// metrics port's budget and `reserve` for the store, telemetry and files,
/// the process stays under its open-file limit.
pub fn connection_budget(wanted: usize, metrics_budget: usize, reserve: usize) -> usize {
    match open_file_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(metrics_budget + reserve)).max(1),
        None => wanted,
    }
}

/// The soft RLIMIT_NOFILE, from /proc (Linux); None elsewhere.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_budget_stays_under_the_open_file_limit() {
        let limit = super::open_file_limit().expect("Linux has /proc/self/limits");
        assert!(super::connection_budget(usize::MAX, 64, 64) <= limit - 128);
        assert_eq!(super::connection_budget(10, 64, 64), 10.min(limit - 128).max(1));
    }
}

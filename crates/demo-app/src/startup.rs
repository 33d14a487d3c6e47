//! Building the application and running it until a shutdown signal, with
//! the drain sequence Kubernetes needs.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::memory_budget::{self, MemoryBudget};
use crate::metrics::Metrics;
use crate::routes;
use crate::serve;
use crate::state::{AppState, Flags, Shared};
use crate::store::Store;

/// Connections the metrics port takes at once (probes and scrapes), out of
/// the process's open files; and files kept for the store, telemetry
/// exporters and /store.
const METRICS_CONNECTIONS: usize = 64;
const RESERVED_FILES: usize = 64;
/// Connections the gRPC port and the HTTPS port each take at once.
const GRPC_CONNECTIONS: usize = 256;
const METRICS_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    /// podinfo's gRPC API, when --grpc-port is set.
    grpc_listener: Option<TcpListener>,
    /// The API over HTTPS, when --secure-port is set.
    secure: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    state: AppState,
}

impl Application {
    /// Binds both ports and opens the store; nothing is served yet.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let jwt_secret = config.jwt_secret()?;
        let store = if config.role.serves_orders() {
            let url = config.database_url();
            if url.starts_with("sqlite:") {
                std::fs::create_dir_all(&config.data_path)
                    .with_context(|| format!("cannot create --data-path {}", config.data_path.display()))?;
            }
            Some(Store::open(&url).await.with_context(|| format!("cannot open the database {}", redact_url(&url)))?)
        } else {
            None
        };
        // Redirects are not followed: a backend's 3xx is its answer to judge
        // (checkout and the order list refuse it), never a hop elsewhere
        // carrying the Idempotency-Key. No retry policy: reqwest's default
        // retries only HTTP/2 refusals, and this client speaks HTTP/1.1 (no
        // `http2` feature), yet it copied every call's headers and body.
        let http = reqwest::Client::builder()
            .timeout(config.http_client_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .build()
            .context("cannot build the HTTP client")?;
        let listener = bind(&config.host, config.port).await?;
        let metrics_listener = bind(&config.host, config.port_metrics).await?;
        let secure = match config.secure_port {
            0 => None,
            // The certificate first: a missing one is the error to report.
            port => {
                let tls = serve::tls_acceptor(&config.cert_path)?;
                Some((bind(&config.host, port).await?, tls))
            }
        };
        let grpc_listener = match config.grpc_port {
            0 => None,
            port => Some(bind(&config.host, port).await?),
        };
        let state = AppState::new(Shared {
            hostname: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into())
                .into(),
            flags: Arc::new(Flags::new(!config.unhealthy, !config.unready)),
            store,
            http,
            jwt_secret: jwt_secret.into(),
            metrics: Arc::new(Metrics::default()),
            memory: MemoryBudget::new(
                config
                    .max_buffered_bytes
                    .map_or_else(memory_budget::default_bytes, |b| b.try_into().unwrap_or(usize::MAX)),
            ),
            config: Arc::new(config),
            info_document: Default::default(),
        });
        Ok(Self { listener, metrics_listener, grpc_listener, secure, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves the gRPC API on `listener` whatever --grpc-port says (tests
    /// bind port 0: --grpc-port 0 means off, as in podinfo).
    pub fn with_grpc_listener(mut self, listener: TcpListener) -> Self {
        self.grpc_listener = Some(listener);
        self
    }

    /// The gRPC port, when the gRPC API is served.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Serves HTTPS on `listener` with the certificate of --cert-path,
    /// whatever --secure-port says (tests bind port 0: 0 means off).
    pub fn with_secure_listener(mut self, listener: TcpListener) -> anyhow::Result<Self> {
        self.secure = Some((listener, serve::tls_acceptor(&self.state.config.cert_path)?));
        Ok(self)
    }

    /// The HTTPS port, when --secure-port is set.
    pub fn secure_port(&self) -> Option<u16> {
        self.secure.as_ref().and_then(|(l, _)| l.local_addr().ok()).map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then: readiness 503 at once, wait
    /// --drain-delay while still serving (load balancers notice), stop
    /// accepting, give in-flight requests --server-shutdown-timeout. The
    /// caller flushes telemetry afterwards (see main.rs).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, metrics_listener, grpc_listener, secure, state } = self;
        let config = state.config.clone();
        let app = routes::app(state.clone());
        let metrics_app = routes::metrics_router(state.clone());
        let wanted = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
        let limits = serve::Limits {
            max_connections: serve::connection_budget(
                wanted,
                METRICS_CONNECTIONS
                    + if grpc_listener.is_some() { GRPC_CONNECTIONS } else { 0 }
                    + if secure.is_some() { GRPC_CONNECTIONS } else { 0 },
                RESERVED_FILES,
            ),
            header_timeout: config.http_header_timeout,
            // podinfo's one server timeout, when given, bounds both.
            body_timeout: config.http_server_timeout.unwrap_or(config.http_body_timeout),
            write_timeout: config.http_server_timeout.unwrap_or(config.http_write_timeout),
        };
        if limits.max_connections < wanted {
            tracing::warn!(
                max_connections = limits.max_connections,
                wanted,
                "--max-connections lowered to fit the open-file limit (ulimit -n)"
            );
        }
        // Probes and scrapes send their request at once: an idle socket on
        // this small budget is closed sooner than on the app port.
        let metrics_limits = serve::Limits {
            max_connections: METRICS_CONNECTIONS,
            header_timeout: limits.header_timeout.min(METRICS_IDLE),
            ..limits
        };

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let secure_server = secure.map(|(listener, tls)| {
            let limits = serve::Limits { max_connections: GRPC_CONNECTIONS, ..limits };
            tokio::spawn(serve::serve(listener, app.clone(), limits, Some(tls), stop_rx.clone()))
        });
        let mut server = tokio::spawn(serve::serve(listener, app, limits, None, stop_rx.clone()));
        let mut metrics_server =
            tokio::spawn(serve::serve(metrics_listener, metrics_app, metrics_limits, None, stop_rx.clone()));
        let grpc = match grpc_listener {
            Some(listener) => {
                let (router, health) = crate::grpc::router(&state).await?;
                let limits = serve::Limits { max_connections: GRPC_CONNECTIONS, ..limits };
                Some((tokio::spawn(serve::serve(listener, router, limits, None, stop_rx)), health))
            }
            None => None,
        };

        tokio::select! {
            result = &mut server => return result.context("HTTP server failed"),
            result = &mut metrics_server => return result.context("metrics server failed"),
            () = shutdown => {}
        }
        tracing::info!(drain_delay = ?config.drain_delay, "shutdown requested: readiness off, draining");
        state.flags.begin_shutdown();
        if let Some((_, health)) = &grpc {
            crate::grpc::not_serving(health, &config.grpc_service_name).await;
        }
        tokio::time::sleep(config.drain_delay).await;
        tracing::info!(timeout = ?config.server_shutdown_timeout, "closing listeners, finishing in-flight requests");
        let _ = stop_tx.send(true);
        match tokio::time::timeout(config.server_shutdown_timeout, async {
            let served = server.await;
            let _ = metrics_server.await;
            if let Some((grpc_server, _)) = grpc {
                let _ = grpc_server.await;
            }
            if let Some(secure_server) = secure_server {
                let _ = secure_server.await;
            }
            served
        })
        .await
        {
            Ok(result) => result.context("HTTP server failed while draining")?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within --server-shutdown-timeout")
            }
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port)).await.with_context(|| format!("cannot listen on {host}:{port}"))
}

/// Hides the password of a database URL in messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_hidden() {
        assert_eq!(super::redact_url("postgres://app:s3cret@db:5432/orders"), "postgres://app:***@db:5432/orders");
        assert_eq!(super::redact_url("sqlite:///data/demo.db"), "sqlite:///data/demo.db");
    }
}

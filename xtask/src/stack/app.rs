//! demo-app in the stack: built with the workspace's cargo, started as
//! `backend` (SQLite in the run folder) and `frontend` (checkout through the
//! backend), exporting OTLP to the Collector through the standard variables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http;
use super::ports::Ports;
use super::process::poll_until;
use crate::project::Project;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Backend,
    Frontend,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Backend => "backend",
            Role::Frontend => "frontend",
        }
    }

    /// `OTEL_SERVICE_NAME`, also the child's name in the supervisor.
    pub fn service_name(self) -> &'static str {
        match self {
            Role::Backend => super::BACKEND,
            Role::Frontend => super::FRONTEND,
        }
    }

    pub fn port(self, ports: &Ports) -> u16 {
        match self {
            Role::Backend => ports.backend,
            Role::Frontend => ports.frontend,
        }
    }

    pub fn metrics_port(self, ports: &Ports) -> u16 {
        match self {
            Role::Backend => ports.backend_metrics,
            Role::Frontend => ports.frontend_metrics,
        }
    }
}

/// demo-app as `make test` builds it (debug, linted, see cargo.rs): a no-op
/// after its compile step; a release build with LTO would add minutes for
/// tests that compare latencies only with each other.
pub fn build(project: &Project) -> Result<PathBuf> {
    crate::cargo::binary(project, "demo-app")
}

pub fn command(binary: &Path, role: Role, ports: &Ports, dir: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary);
    super::clean_env(&mut cmd);
    let data = dir.join(role.as_str());
    // No load balancer routes to it: nothing to drain from (the binary's
    // default is the cluster's 5 s).
    cmd.args(["--role", role.as_str(), "--host", "127.0.0.1", "--insecure-dev", "--drain-delay", "0s"])
        .args(["--port", &role.port(ports).to_string(), "--port-metrics", &role.metrics_port(ports).to_string()])
        .arg("--data-path")
        .arg(&data);
    if role == Role::Frontend {
        cmd.args(["--backend-url", &format!("http://127.0.0.1:{}", ports.backend)]);
    }
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", ports.otlp_grpc))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", role.service_name())
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=local");
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    // The data folder must exist for SQLite; create it now rather than fail
    // on a missing parent in the child.
    let _ = std::fs::create_dir_all(&data);
    cmd
}

/// Ready when `/readyz` answers 200 (the backend's includes a database ping).
pub fn ready(ports: &Ports, role: Role) -> Result<Option<()>> {
    let response = http::get(role.port(ports), "/readyz")?;
    if response.status == 200 { Ok(Some(())) } else { bail!("/readyz answered {}", response.status) }
}

/// A W3C trace id (32 hex) and parent span id (16 hex), unique per call.
pub fn new_trace_context() -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let seed = format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (hex[..32].to_string(), hex[32..48].to_string())
}

pub struct Checkout {
    pub status: u16,
    pub took: Duration,
    pub body: String,
}

/// `POST /api/checkout` on the frontend, continuing the trace `trace_id` (so
/// the test knows which trace to look for in Jaeger and in the logs).
pub fn checkout(ports: &Ports, trace_id: &str, parent_span: &str, sku: &str) -> Result<Checkout> {
    let traceparent = format!("00-{trace_id}-{parent_span}-01");
    let body = json!({ "sku": sku, "quantity": 2, "unit_price_cents": 1250 });
    let started = Instant::now();
    let response = http::post_json(ports.frontend, "/api/checkout", &[("traceparent", &traceparent)], &body)?;
    Ok(Checkout { status: response.status, took: started.elapsed(), body: response.text() })
}

/// The (HTTP, metrics) ports a demo-app started on port 0 bound, from its
/// `demo-app listening` log line.
pub fn bound_ports(log: &Path) -> Result<(u16, u16)> {
    poll_until("the `demo-app listening` log line", Duration::from_secs(30), Duration::from_millis(50), |last| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        *last = format!("{} holds no such line yet", log.display());
        Ok(text.lines().find_map(listening_ports))
    })
}

fn listening_ports(line: &str) -> Option<(u16, u16)> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &record["fields"];
    if fields["message"] != "demo-app listening" {
        return None;
    }
    Some((fields["port"].as_u64()?.try_into().ok()?, fields["metrics_port"].as_u64()?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_both_ports() {
        let line = r#"{"level":"INFO","fields":{"message":"demo-app listening","port":40097,"metrics_port":33025}}"#;
        assert_eq!(listening_ports(line), Some((40097, 33025)));
        assert_eq!(listening_ports(r#"{"fields":{"message":"other","port":1,"metrics_port":2}}"#), None);
        assert_eq!(listening_ports("not json"), None);
    }

    #[test]
    fn trace_contexts_are_w3c_shaped_and_unique() {
        let (a, span) = new_trace_context();
        let (b, _) = new_trace_context();
        assert_eq!((a.len(), span.len()), (32, 16));
        assert!(a.bytes().chain(span.bytes()).all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}

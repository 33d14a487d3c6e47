//! The servers under test and how each one is started: alone, pinned to the
//! server core, on free loopback ports, with the same data folder layout.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::SERVER_CORE;
use super::scenarios::Scenario;
use crate::stack::http;
use crate::stack::ports::free_port;
use crate::stack::process::{Supervisor, poll_until};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    DemoApp,
    Podinfo,
    Python,
    Hyper,
}

/// Where the server's OpenTelemetry SDK sends spans, metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Telemetry {
    /// No OTLP endpoint configured (the servers' default).
    Off,
    /// The project's Collector over OTLP/gRPC, sampling every trace (1.0).
    Collector,
    /// The same over OTLP/HTTP (protobuf, the specification's default
    /// protocol): one write a batch where gRPC takes one per 16 KiB frame.
    CollectorHttp,
    /// An endpoint where nothing listens: export fails, requests must not.
    CollectorDown,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Server {
    pub id: &'static str,
    pub kind: Kind,
    pub telemetry: Telemetry,
}

pub const SERVERS: &[Server] = &[
    Server { id: "demo-app", kind: Kind::DemoApp, telemetry: Telemetry::Off },
    Server { id: "demo-app-otel", kind: Kind::DemoApp, telemetry: Telemetry::Collector },
    Server { id: "demo-app-otel-http", kind: Kind::DemoApp, telemetry: Telemetry::CollectorHttp },
    Server { id: "demo-app-otel-down", kind: Kind::DemoApp, telemetry: Telemetry::CollectorDown },
    Server { id: "podinfo", kind: Kind::Podinfo, telemetry: Telemetry::Off },
    Server { id: "python", kind: Kind::Python, telemetry: Telemetry::Off },
    Server { id: "python-otel", kind: Kind::Python, telemetry: Telemetry::Collector },
    Server { id: "hyper", kind: Kind::Hyper, telemetry: Telemetry::Off },
];

/// The two servers of `--smoke`: demo-app and the bare hyper bound.
pub const SMOKE: &[&str] = &["demo-app", "hyper"];

impl Server {
    pub fn by_id(id: &str) -> Option<&'static Server> {
        SERVERS.iter().find(|s| s.id == id)
    }

    /// Which scenarios the server implements.
    pub fn supports(&self, scenario: Scenario) -> bool {
        match scenario {
            Scenario::Info | Scenario::Healthz | Scenario::Echo => true,
            // uvicorn speaks no HTTP/2.
            Scenario::InfoH2 => self.kind != Kind::Python,
            Scenario::Orders => matches!(self.kind, Kind::DemoApp | Kind::Python),
            Scenario::Checkout => self.kind == Kind::DemoApp,
            Scenario::GrpcInfo => matches!(self.kind, Kind::DemoApp | Kind::Podinfo),
        }
    }

    /// How the table and chart name it.
    pub fn title(&self) -> &'static str {
        match self.id {
            "demo-app" => "demo-app (telemetry off)",
            "demo-app-otel" => "demo-app (OTLP/gRPC, sampling 1.0)",
            "demo-app-otel-http" => "demo-app (OTLP/HTTP, sampling 1.0)",
            "demo-app-otel-down" => "demo-app (OTLP, Collector down)",
            "podinfo" => "podinfo 6.9.2 (Go)",
            "python" => "FastAPI + uvicorn (no export)",
            "python-otel" => "FastAPI + uvicorn (OTLP, sampling 1.0)",
            "hyper" => "bare hyper",
            other => other,
        }
    }
}

/// Every program the servers need, found or built before the first run.
pub struct Binaries {
    pub demo_app: Option<PathBuf>,
    pub hyper: Option<PathBuf>,
    pub podinfo: Option<PathBuf>,
    /// The baseline venv's interpreter and the folder of `app.py`.
    pub python: Option<(PathBuf, PathBuf)>,
}

/// OTLP endpoints the servers export to.
pub struct Endpoints {
    /// The Collector's OTLP/gRPC and OTLP/HTTP ports.
    pub collector: Option<(u16, u16)>,
    /// The Collector's process, whose CPU the closed-loop runs report: it
    /// shares the load generator's core.
    pub collector_pids: Vec<u32>,
    pub down: u16,
}

impl Telemetry {
    /// Whether the Collector runs for it.
    pub fn needs_collector(self) -> bool {
        matches!(self, Telemetry::Collector | Telemetry::CollectorHttp)
    }
}

/// A server started for one case; dropping it stops it.
pub struct Running {
    pub supervisor: Supervisor,
    /// The port the load goes to.
    pub port: u16,
    /// Every process whose CPU and memory count (frontend and backend for checkout).
    pub pids: Vec<u32>,
}

/// Starts `server` for `scenario` with its files under `dir`, and waits until
/// it answers `/healthz`.
pub fn start(
    server: &Server,
    scenario: Scenario,
    bins: &Binaries,
    endpoints: &Endpoints,
    dir: &Path,
) -> Result<Running> {
    start_wrapped(server, scenario, bins, endpoints, dir, &|command| command)
}

/// `start`, each server command passed through `wrap` first (callgrind.rs
/// runs the server under valgrind).
pub fn start_wrapped(
    server: &Server,
    scenario: Scenario,
    bins: &Binaries,
    endpoints: &Endpoints,
    dir: &Path,
    wrap: &dyn Fn(Command) -> Command,
) -> Result<Running> {
    let mut supervisor = Supervisor::default();
    let mut pids = Vec::new();
    let grace = Duration::from_secs(10);
    let port = match (server.kind, scenario) {
        (Kind::DemoApp, Scenario::Checkout) => {
            let backend_port = free_port()?;
            let backend = demo_app(server, bins, endpoints, dir, "backend", backend_port, None)?;
            let pid = spawn(&mut supervisor, "backend", wrap(backend), dir, grace)?;
            wait_healthy(&mut supervisor, "backend", backend_port)?;
            pids.push(pid);
            let frontend_port = free_port()?;
            let backend_url = format!("http://127.0.0.1:{backend_port}");
            let frontend = demo_app(server, bins, endpoints, dir, "frontend", frontend_port, Some(&backend_url))?;
            pids.push(spawn(&mut supervisor, "frontend", wrap(frontend), dir, grace)?);
            wait_healthy(&mut supervisor, "frontend", frontend_port)?;
            frontend_port
        }
        _ => {
            let port = free_port()?;
            let grpc_port = if scenario.grpc() { Some(free_port()?) } else { None };
            let mut command = match server.kind {
                Kind::DemoApp => demo_app(server, bins, endpoints, dir, "all", port, None)?,
                Kind::Podinfo => podinfo(bins, dir, port, scenario.http2())?,
                Kind::Python => python(server, bins, endpoints, dir, port)?,
                Kind::Hyper => {
                    pinned(bins.hyper.as_deref().context("hyper-baseline was not built")?, [port.to_string()])
                }
            };
            // demo-app and podinfo take the same flag.
            if let Some(grpc_port) = grpc_port {
                command.args(["--grpc-port", &grpc_port.to_string()]);
            }
            pids.push(spawn(&mut supervisor, server.id, wrap(command), dir, grace)?);
            wait_healthy(&mut supervisor, server.id, port)?;
            grpc_port.unwrap_or(port)
        }
    };
    Ok(Running { supervisor, port, pids })
}

/// How often the servers with OTLP export send their spans (the SDKs'
/// default, set so that the callgrind pass can wait for a batch).
pub const SPAN_BATCH_DELAY: Duration = Duration::from_secs(5);

/// `taskset -c SERVER_CORE program args...`: taskset execs the program, so
/// the child's pid is the server's.
pub fn pinned<I, S>(program: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("taskset");
    command.args(["-c", SERVER_CORE]).arg(program).args(args);
    clean_env(&mut command);
    command
}

/// No setting of the caller's shell may change what a server does.
fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if ["OTEL_", "DEMO_APP_", "PYTHON", "GOMAXPROCS", "GOGC"].iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
}

fn demo_app(
    server: &Server,
    bins: &Binaries,
    endpoints: &Endpoints,
    dir: &Path,
    role: &str,
    port: u16,
    backend_url: Option<&str>,
) -> Result<Command> {
    let binary = bins.demo_app.as_deref().context("demo-app was not built")?;
    let data = dir.join(format!("data-{role}"));
    // A secret file, as in production (the built-in one needs --insecure-dev).
    let secret = dir.join("jwt-secret");
    std::fs::write(&secret, format!("bench-{}-{port}", std::process::id()))
        .with_context(|| format!("cannot write {}", secret.display()))?;
    let mut command = pinned(binary, ["--role", role, "--host", "127.0.0.1", "--port", &port.to_string()]);
    command.args(["--port-metrics", &free_port()?.to_string()]).arg("--data-path").arg(&data);
    command.arg("--jwt-secret-file").arg(&secret);
    if let Some(url) = backend_url {
        command.args(["--backend-url", url]);
    }
    otel_env(&mut command, server, endpoints, &format!("demo-app-{role}"))?;
    Ok(command)
}

fn podinfo(bins: &Binaries, dir: &Path, port: u16, h2c: bool) -> Result<Command> {
    let binary = bins.podinfo.as_deref().context("podinfo is not installed")?;
    let mut command = pinned(binary, ["--host", "127.0.0.1", "--port", &port.to_string(), "--level", "info"]);
    if h2c {
        // podinfo serves HTTP/2 without TLS only when asked.
        command.arg("--h2c");
    }
    command.arg("--data-path").arg(dir.join("data"));
    Ok(command)
}

fn python(server: &Server, bins: &Binaries, endpoints: &Endpoints, dir: &Path, port: u16) -> Result<Command> {
    let (interpreter, app_dir) = bins.python.as_ref().context("the Python baseline venv was not built")?;
    // uvicorn's fastest stock setup: uvloop and httptools, one process (one
    // core), no access log (demo-app and podinfo keep none either).
    let mut command = pinned(interpreter, ["-m", "uvicorn", "app:app", "--app-dir"]);
    command
        .arg(app_dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"])
        .env("BENCH_DATA_PATH", dir.join("data"))
        // No __pycache__ in the checkout.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    otel_env(&mut command, server, endpoints, "python-baseline")?;
    Ok(command)
}

/// The standard OpenTelemetry variables for the server's telemetry mode.
fn otel_env(command: &mut Command, server: &Server, endpoints: &Endpoints, service: &str) -> Result<()> {
    let collector = || endpoints.collector.context("the Collector was not started");
    let (port, protocol) = match server.telemetry {
        Telemetry::Off => return Ok(()),
        Telemetry::Collector => (collector()?.0, "grpc"),
        Telemetry::CollectorHttp => (collector()?.1, "http/protobuf"),
        Telemetry::CollectorDown => (endpoints.down, "grpc"),
    };
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "1.0")
        .env("OTEL_BSP_SCHEDULE_DELAY", SPAN_BATCH_DELAY.as_millis().to_string());
    Ok(())
}

fn spawn(supervisor: &mut Supervisor, name: &str, command: Command, dir: &Path, grace: Duration) -> Result<u32> {
    let log = dir.join(format!("{name}.log"));
    Ok(supervisor.spawn(name, command, &log, grace)?.pid())
}

fn wait_healthy(supervisor: &mut Supervisor, name: &str, port: u16) -> Result<()> {
    let result =
        poll_until(&format!("{name} answering /healthz"), Duration::from_secs(30), Duration::from_millis(50), |last| {
            if let Some(child) = supervisor.get_mut(name)
                && let Some(status) = child.exited()
            {
                bail!(
                    "{name} exited during start-up ({status}); last lines of {}:\n{}",
                    child.log.display(),
                    child.log_tail(20)
                );
            }
            match http::get(port, "/healthz") {
                Ok(response) if response.status == 200 => Ok(Some(())),
                Ok(response) => {
                    *last = format!("/healthz answered {}", response.status);
                    Ok(None)
                }
                Err(err) => {
                    *last = format!("{err:#}");
                    Ok(None)
                }
            }
        });
    result.with_context(|| match supervisor.get_mut(name) {
        Some(child) => format!("starting {name} (log {}):\n{}", child.log.display(), child.log_tail(20)),
        None => format!("starting {name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_unique_and_smoke_servers_exist() {
        let mut ids: Vec<_> = SERVERS.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SERVERS.len());
        assert!(SMOKE.iter().all(|id| Server::by_id(id).is_some()));
    }

    #[test]
    fn only_demo_app_checks_out_and_only_apps_with_a_store_take_orders() {
        let takes = |scenario| SERVERS.iter().filter(|s| s.supports(scenario)).map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            takes(Scenario::Checkout),
            ["demo-app", "demo-app-otel", "demo-app-otel-http", "demo-app-otel-down"]
        );
        assert_eq!(
            takes(Scenario::Orders),
            ["demo-app", "demo-app-otel", "demo-app-otel-http", "demo-app-otel-down", "python", "python-otel"]
        );
        assert_eq!(takes(Scenario::Info).len(), SERVERS.len());
        assert!(!takes(Scenario::InfoH2).contains(&"python"));
    }
}

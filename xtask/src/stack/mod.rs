//! The local observability stack, cluster-free, from the real components:
//! the project's Collector, Jaeger v2 (in memory), Prometheus, and demo-app
//! as `backend` (SQLite) and `frontend`, all on loopback.
//!
//! `cargo xtask stack` (`make stack`) runs it until Ctrl-C; `cargo xtask e2e`
//! starts it on free ports and checks that a checkout is traced, measured and
//! logged across both services (see `e2e.rs` and docs/observability.md).

pub mod api_test;
pub(crate) mod app;
pub mod canary;
pub(crate) mod collector;
pub mod e2e;
pub mod faults;
pub(crate) mod http;
mod jaeger;
pub mod podinfo_chart;
pub(crate) mod ports;
pub(crate) mod process;
mod prometheus;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::tools;
use ports::{Choice, Ports};
use process::Supervisor;

/// How long each component gets to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Child names, in start order (they stop in reverse).
pub const JAEGER: &str = "jaeger";
pub const COLLECTOR: &str = "otelcol";
pub const PROMETHEUS: &str = "prometheus";
pub const BACKEND: &str = "demo-app-backend";
pub const FRONTEND: &str = "demo-app-frontend";

/// `cargo xtask stack`: start everything, print the URLs, run until Ctrl-C.
pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let mut stack = Stack::start(project, &Options::interactive())?;
    print_urls(&stack);
    println!("Ctrl-C stops everything.");
    let failure = loop {
        if process::interrupted() {
            break None;
        }
        if let Some((child, status)) = stack.supervisor.first_exited() {
            break Some(format!(
                "{} exited on its own ({status}); last lines of {}:\n{}",
                child.name,
                child.log.display(),
                child.log_tail(30)
            ));
        }
        thread::sleep(Duration::from_millis(200));
    };
    println!("\nstopping...");
    let mut unclean = Vec::new();
    for (name, status) in stack.supervisor.stop_all() {
        println!("  {name}: {status}");
        if !status.success() {
            unclean.push(name);
        }
    }
    match failure {
        None if !unclean.is_empty() => {
            println!(
                "stopped; no process left. {} did not exit cleanly: see {}",
                unclean.join(", "),
                stack.dir.join("logs").display()
            );
            Ok(())
        }
        None => {
            stack.remove_dir = true;
            println!("stopped; no process left.");
            Ok(())
        }
        Some(message) => bail!("{message}\n(logs kept in {})", stack.dir.display()),
    }
}

/// What differs between `make stack` and the e2e test.
pub struct Options {
    pub ports: Choice,
    /// Overrides prometheus.yml's `global.scrape_interval`.
    pub scrape_interval: Option<&'static str>,
    /// Extra environment for both demo-app processes.
    pub app_env: Vec<(&'static str, &'static str)>,
}

impl Options {
    fn interactive() -> Self {
        Options { ports: Choice::PreferDefaults, scrape_interval: None, app_env: Vec::new() }
    }
}

/// A running stack. Dropping it stops every child (last started first) and,
/// when `remove_dir` is set, deletes its folder.
pub struct Stack {
    pub ports: Ports,
    /// Run folder: logs/, prometheus/, otelcol/, backend/, frontend/.
    pub dir: PathBuf,
    pub supervisor: Supervisor,
    pub remove_dir: bool,
}

impl Stack {
    pub fn start(project: &Project, options: &Options) -> Result<Stack> {
        let otelcol = tools::locate(project, "otelcol")?;
        let jaeger_bin = tools::locate(project, "jaeger")?;
        let prometheus_bin = tools::locate(project, "prometheus")?;
        let promtool = tools::locate(project, "promtool")?;
        let demo_app = app::build(project)?;

        let dir = run_dir()?;
        let picked = ports::pick(options.ports)?;
        for line in &picked.replaced {
            println!("note: {line}");
        }
        let ports = picked.ports;
        let mut stack = Stack { ports, dir: dir.clone(), supervisor: Supervisor::default(), remove_dir: false };
        println!("stack folder: {}", dir.display());

        let prometheus_config = prometheus::write_config(project, &dir, &ports, options.scrape_interval)?;
        prometheus::check_config(&promtool, &prometheus_config)?;

        stack.start_child(JAEGER, jaeger::command(project, &jaeger_bin, &ports), Duration::from_secs(10), |p| {
            jaeger::ready(p)
        })?;
        let collector = collector::command(project, &otelcol, &ports, &stack.telemetry_dir())?;
        stack.start_child(COLLECTOR, collector, Duration::from_secs(10), collector::ready)?;
        stack.start_child(
            PROMETHEUS,
            prometheus::command(&prometheus_bin, &prometheus_config, &dir.join("prometheus/data"), &ports),
            Duration::from_secs(10),
            prometheus::ready,
        )?;
        for role in [app::Role::Backend, app::Role::Frontend] {
            let cmd = app::command(&demo_app, role, &ports, &dir, &options.app_env);
            // demo-app drains for up to --server-shutdown-timeout (5 s) and
            // then flushes its telemetry.
            stack.start_child(role.service_name(), cmd, Duration::from_secs(15), move |p| app::ready(p, role))?;
        }
        Ok(stack)
    }

    /// Where the Collector's file exporter(s) write.
    pub fn telemetry_dir(&self) -> PathBuf {
        self.dir.join("otelcol")
    }

    fn start_child(
        &mut self,
        name: &str,
        cmd: Command,
        grace: Duration,
        ready: impl Fn(&Ports) -> Result<Option<()>>,
    ) -> Result<()> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let child = self.supervisor.spawn(name, cmd, &log, grace)?;
        let ports = self.ports;
        let result =
            process::poll_until(&format!("{name} healthy"), START_TIMEOUT, Duration::from_millis(100), |last| {
                if let Some(status) = child.exited() {
                    bail!(
                        "{name} exited during start-up ({status}); last lines of {}:\n{}",
                        log.display(),
                        child.log_tail(30)
                    );
                }
                match ready(&ports) {
                    Ok(Some(())) => Ok(Some(())),
                    Ok(None) => Ok(None),
                    Err(err) => {
                        *last = format!("{err:#}");
                        Ok(None)
                    }
                }
            });
        if let Err(err) = result {
            let tail = child.log_tail(30);
            return Err(err).with_context(|| format!("starting {name} (log: {}):\n{tail}", log.display()));
        }
        println!("  {name} is up (pid {}, log {})", child.pid(), log.display());
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.supervisor.stop_all();
        if self.remove_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh folder under the system's temp dir.
fn run_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("demo-platform-stack-{}-{nanos}", std::process::id()));
    fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Removes every variable the children's configurations read, so a setting
/// in the caller's shell cannot change what the stack does.
fn clean_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        let ours = ["OTEL_", "OTELCOL_", "JAEGER_", "DEMO_APP_"].iter().any(|p| name_text.starts_with(p))
            || ["LOGS_OTLP_ENDPOINT", "DEPLOYMENT_ENVIRONMENT"].contains(&name_text.as_ref());
        if ours {
            cmd.env_remove(&name);
        }
    }
}

fn print_urls(stack: &Stack) {
    let p = &stack.ports;
    println!("\nThe stack is up:");
    println!("  demo-app UI       http://127.0.0.1:{}/", p.frontend);
    println!(
        "  checkout          curl -X POST -H 'content-type: application/json' \
         -d '{{\"sku\":\"sku-1\",\"quantity\":1,\"unit_price_cents\":250}}' http://127.0.0.1:{}/api/checkout",
        p.frontend
    );
    println!("  orders API        http://127.0.0.1:{}/api/orders (backend)", p.backend);
    println!(
        "  Jaeger API        http://127.0.0.1:{}/api/v3/services, /api/v3/traces/<trace id>  (this build has no UI \
         assets: / is Jaeger's placeholder page)",
        p.jaeger_query_http
    );
    println!("  Prometheus        http://127.0.0.1:{}/graph  (try orders_created_total)", p.prometheus);
    println!("  Collector OTLP    grpc 127.0.0.1:{}  http 127.0.0.1:{}", p.otlp_grpc, p.otlp_http);
    println!(
        "  Collector metrics http://127.0.0.1:{}/metrics (exporter), :{}/metrics (self)",
        p.collector_prometheus, p.collector_self_metrics
    );
    println!("  telemetry files   {} (the Collector's file exporter)", stack.telemetry_dir().display());
    println!("  logs              {}", stack.dir.join("logs").display());
    println!("\nPorts:\n{p}");
}

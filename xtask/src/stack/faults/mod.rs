//! `cargo xtask faults` (part of `make test`): demo-app (role all, SQLite)
//! on loopback under the faults a pod meets, each scenario bounded in time
//! and printing what it did and what it measured:
//! - the data volume fills up (a 8 MiB tmpfs): /store answers 507, orders
//!   503, readiness turns 503; freeing space recovers without a restart, and
//!   every acknowledged order is still there after one;
//! - the data volume turns read-only (remounted) under the database: orders
//!   and /store 503, readiness 503; remounted read-write, orders succeed
//!   again without a restart and nothing acknowledged is lost;
//! - the database file is deleted while running: writes, readiness and
//!   liveness fail (a restart is the only mend), nothing is acknowledged;
//! - SIGKILL in the middle of concurrent writes: after a restart every
//!   acknowledged order is there, whole, and no row is half-written;
//! - a Collector that accepts connections and never answers: orders stay
//!   fast, the lost telemetry is counted, SIGTERM still ends the process;
//! - PostgreSQL killed (SIGKILL, every process of it) under concurrent
//!   writes, then restarted: no 500, service returns by itself, every
//!   acknowledged order is there once (`postgres.rs`);
//! - silent, slowloris and slow-body sockets far beyond the connection
//!   budget, oversized WebSocket frames and messages, answers and
//!   downloads nobody reads (`clients.rs`);
//! - checkout against a backend that hangs, drips, sends 200 MB of garbage
//!   or an odd status: 504 or 502 within the timeout, memory within the
//!   frontend's limit (`checkout.rs`).
//!
//! The tmpfs needs root (mount(2)); CI and `make test` run as root here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::process::{self, Supervisor, poll_until};
use super::{app, http};
use crate::cmd;
use crate::project::Project;

mod checkout;
mod clients;
mod postgres;

/// What the scenarios run: located before the first one starts, so a
/// missing program fails the suite up front with the command that installs it.
struct Programs {
    demo_app: PathBuf,
    /// The folder of PostgreSQL's server programs (`initdb`, `pg_ctl`).
    postgres_bin: PathBuf,
    /// The chart's memory limits (values.yaml) of the backend and the
    /// frontend: a process that peaks above its role's fails the scenario.
    backend_limit_mib: u64,
    frontend_limit_mib: u64,
}

/// One scenario: the programs in, what it measured out.
type Scenario = fn(&Programs) -> Result<String>;

pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let programs = Programs {
        demo_app: app::build(project)?,
        postgres_bin: crate::tools::locate(project, "pg_ctl")?.parent().context("pg_ctl has a folder")?.to_path_buf(),
        backend_limit_mib: chart_memory_limit_mib(project, "backend")?,
        frontend_limit_mib: chart_memory_limit_mib(project, "frontend")?,
    };
    let scenarios: [(&str, Scenario); 8] = [
        ("data volume full", disk_full),
        ("data volume read-only", read_only_volume),
        ("database file deleted", database_deleted),
        ("SIGKILL under concurrent writes", killed_mid_write),
        ("Collector that never answers", collector_black_hole),
        ("PostgreSQL killed under concurrent writes", postgres::killed_under_load),
        ("clients beyond the limits", clients::beyond_the_limits),
        ("checkout against broken backends", checkout::broken_backends),
    ];
    let mut failed = 0;
    for (name, scenario) in scenarios {
        let started = Instant::now();
        match scenario(&programs) {
            Ok(measured) => println!("PASS  {name} ({:.1} s): {measured}", started.elapsed().as_secs_f64()),
            Err(err) => {
                failed += 1;
                println!("FAIL  {name} ({:.1} s): {err:#}", started.elapsed().as_secs_f64());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} fault scenarios failed", scenarios.len());
    }
    Ok(())
}

/// `<role>.resources.limits.memory` of the chart's values.yaml, in MiB.
fn chart_memory_limit_mib(project: &Project, role: &str) -> Result<u64> {
    let path = project.root.join("charts/demo-app/values.yaml");
    let values: Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
    let limit = values[role]["resources"]["limits"]["memory"].as_str().unwrap_or_default();
    limit
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{}: {role}.resources.limits.memory is {limit:?}, not <n>Mi", path.display()))
}

/// One demo-app process on `data`, port 0.
struct App {
    supervisor: Supervisor,
    port: u16,
    metrics_port: u16,
    pid: u32,
    /// Its role's memory limit in the chart: a peak above it fails `stop`.
    memory_limit_mib: u64,
}

/// How an `App` is started beyond the defaults (role all, SQLite in `data`).
struct Launch<'a> {
    env: &'a [(&'a str, &'a str)],
    args: &'a [&'a str],
    /// The soft and hard RLIMIT_NOFILE (`prlimit`), as a container runtime sets it.
    open_files: Option<u32>,
    /// The chart's memory limit of the role started.
    memory_limit_mib: u64,
}

impl App {
    /// The backend role's limits, SQLite in `data` unless `env` says otherwise.
    fn start(programs: &Programs, data: &Path) -> Result<App> {
        Self::start_with(programs, data, &[])
    }

    pub(super) fn start_with(programs: &Programs, data: &Path, env: &[(&str, &str)]) -> Result<App> {
        let launch = Launch { env, args: &[], open_files: None, memory_limit_mib: programs.backend_limit_mib };
        Self::launch(&programs.demo_app, data, launch)
    }

    /// Its log is `<data>.<n>.log` for the n-th start, so the ports read
    /// back are this start's.
    fn launch(binary: &Path, data: &Path, launch: Launch) -> Result<App> {
        let log = (1..).map(|n| data.with_extension(format!("{n}.log"))).find(|l| !l.exists()).expect("a free name");
        let log = log.as_path();
        let mut command = match launch.open_files {
            // prlimit sets the limit on itself, then execs: the pid is demo-app's.
            Some(n) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={n}:{n}")).arg("--").arg(binary);
                command
            }
            None => Command::new(binary),
        };
        super::clean_env(&mut command);
        command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-metrics",
                "0",
                "--insecure-dev",
                "--drain-delay",
                "0s",
            ])
            .arg("--data-path")
            .arg(data)
            .args(launch.args)
            .envs(launch.env.iter().copied());
        let mut supervisor = Supervisor::default();
        let pid = supervisor.spawn("demo-app", command, log, Duration::from_secs(5))?.pid();
        let (port, metrics_port) = app::bound_ports(log)?;
        Ok(App { supervisor, port, metrics_port, pid, memory_limit_mib: launch.memory_limit_mib })
    }

    fn order(&self, sku: &str, key: Option<&str>) -> Result<http::Response> {
        let body = json!({"sku": sku, "quantity": 3, "unit_price_cents": 250});
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        http::post_json(self.port, "/api/orders", &headers, &body)
    }

    pub(super) fn status(&self, path: &str) -> u16 {
        http::get(self.port, path).map_or(0, |r| r.status)
    }

    /// VmHWM: the most memory the process has held.
    fn peak_rss_mib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib / 1024)
    }

    pub(super) fn stop(mut self) -> Result<u64> {
        let peak = self.peak_rss_mib()?;
        let status = self.supervisor.stop("demo-app")?;
        if !status.success() {
            let log = self.supervisor.log_tails(15).into_iter().map(|(_, tail)| tail).collect::<String>();
            bail!("demo-app exited with {status} on SIGTERM; its log ends:\n{log}");
        }
        if peak > self.memory_limit_mib {
            bail!("peak RSS {peak} MiB is over the chart's {} Mi limit", self.memory_limit_mib);
        }
        Ok(peak)
    }
}

/// A tmpfs of `size` at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        cmd::run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir))
            .context(
                "the disk-full scenario mounts a small tmpfs: run `make test` as root (mount needs CAP_SYS_ADMIN)",
            )?;
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Read-only or read-write again, files kept: what a failing disk or a
    /// remount by the node looks like to the process.
    fn remount(&self, read_only: bool) -> Result<()> {
        let mode = if read_only { "remount,ro" } else { "remount,rw" };
        cmd::run(Command::new("mount").args(["-o", mode]).arg(&self.0)).map(drop)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn disk_full(programs: &Programs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let _volume = Tmpfs::mount(&data, "8m")?;
    let app = App::start(programs, &data)?;
    let mut acknowledged = vec![created_id(&app.order("before", None)?)?];

    // Fill the volume through the API, as anyone could: big blobs, then
    // small ones into what is left.
    let mut stored = 0;
    for size in [256 * 1024, 4096] {
        let full_status = loop {
            let blob: Vec<u8> =
                (0..size).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ stored as u8).collect();
            let response = http::request("POST", app.port, "/store", &[], Some(&blob))?;
            if response.status != 202 {
                break response.status;
            }
            stored += 1;
            if stored > 4096 {
                bail!("8 MiB never filled up after {stored} blobs");
            }
        };
        if full_status != 507 {
            bail!("/store on a full volume answered {full_status}, not 507");
        }
    }
    let mut while_full = BTreeMap::<u16, usize>::new();
    for i in 0..20 {
        let response = app.order(&format!("full-{i}"), None)?;
        *while_full.entry(response.status).or_default() += 1;
        match response.status {
            201 => acknowledged.push(created_id(&response)?),
            503 => {}
            other => bail!("an order on a full volume answered {other}: {}", response.text()),
        }
    }
    if !while_full.contains_key(&503) {
        bail!("orders on a full volume: {while_full:?}, never 503");
    }
    let unready = app.status("/readyz");
    if unready != 503 {
        bail!("readiness answered {unready} with the data volume full");
    }

    std::fs::remove_dir_all(data.join("store")).context("freeing the volume")?;
    let freed = Instant::now();
    let recovered = poll_until(
        "an order to succeed after space was freed",
        Duration::from_secs(15),
        Duration::from_millis(100),
        |last| {
            let response = app.order("after", None)?;
            *last = format!("{} {}", response.status, response.text());
            Ok((response.status == 201 && app.status("/readyz") == 200).then_some(response))
        },
    )?;
    let recovery = freed.elapsed();
    acknowledged.push(created_id(&recovered)?);
    let peak = app.stop()?;

    let app = App::start(programs, &data)?;
    let present = acknowledged.iter().filter(|id| app.status(&format!("/api/orders/{id}")) == 200).count();
    app.stop()?;
    if present != acknowledged.len() {
        bail!("after a restart {present} of {} acknowledged orders are there", acknowledged.len());
    }

    // Started on a volume that is already full: the cause, not SQLite's
    // "disk I/O error".
    let full = dir.path().join("full");
    let _full = Tmpfs::mount(&full, "1m")?;
    let filler = full.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 2 << 20]);
    let refused = refused_start(&programs.demo_app, &full, "full", "is full")?;
    Ok(format!(
        "{stored} blobs stored (256 KiB, then 4 KiB), then /store 507; orders while full {while_full:?}; readiness 503; \
         recovered {:.0} ms after space was freed, no restart; {present}/{} acknowledged orders after a restart; \
         started on a full volume: {refused}; peak RSS {peak} MiB",
        recovery.as_secs_f64() * 1000.0,
        acknowledged.len()
    ))
}

/// A volume with an open database cannot be remounted read-only (EBUSY), so
/// the two ways a pod meets one are played apart: started on it, and the
/// volume under /store going read-only while running.
fn read_only_volume(programs: &Programs) -> Result<String> {
    let binary = &programs.demo_app;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let volume = Tmpfs::mount(&data, "8m")?;
    let app = App::start(programs, &data)?;
    let kept = created_id(&app.order("before", None)?)?;
    app.stop()?;

    volume.remount(true)?;
    let refused = refused_start(binary, &data, "read-only", "read-only volume")?;
    volume.remount(false)?;
    let app = App::start(programs, &data)?;
    let (kept_status, after) = (app.status(&format!("/api/orders/{kept}")), app.order("after", None)?.status);
    app.stop()?;
    if kept_status != 200 || after != 201 {
        bail!("remounted read-write: the earlier order answered {kept_status}, a new one {after}");
    }

    // The database elsewhere: only /store's files are on the volume.
    let database = format!("sqlite://{}", dir.path().join("db/demo-app.db").display());
    let app = App::start_with(programs, &data, &[("DEMO_APP_DATABASE_URL", &database)])?;
    let store = |body: &[u8]| http::request("POST", app.port, "/store", &[], Some(body)).map(|r| r.status);
    let before = store(b"before")?;
    volume.remount(true)?;
    let (stored, ready, order) = (store(b"read-only")?, app.status("/readyz"), app.order("elsewhere", None)?.status);
    volume.remount(false)?;
    let (stored_again, ready_again) = (store(b"after")?, app.status("/readyz"));
    let peak = app.stop()?;
    if (before, stored, ready, order, stored_again, ready_again) != (202, 503, 503, 201, 202, 200) {
        bail!(
            "/store {before}, then read-only: /store {stored} (want 503), readiness {ready} (want 503), an order on \
             the other volume {order} (want 201); read-write again: /store {stored_again}, readiness {ready_again}"
        );
    }
    Ok(format!(
        "started on a read-only volume: {refused}; remounted read-write: the earlier order there, new ones 201; \
         /store's volume read-only while running: /store 503, readiness 503, orders elsewhere 201; read-write \
         again: /store 202, readiness 200, no restart; peak RSS {peak} MiB"
    ))
}

/// demo-app started on a data volume it cannot write (`volume`: read-only,
/// full) must exit at once, its log containing `says`.
fn refused_start(binary: &Path, data: &Path, volume: &str, says: &str) -> Result<String> {
    let log = data.with_extension("refused.log");
    let mut command = Command::new(binary);
    super::clean_env(&mut command);
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--port-metrics", "0", "--insecure-dev"])
        .arg("--data-path")
        .arg(data);
    let mut supervisor = Supervisor::default();
    let started = Instant::now();
    let child = supervisor.spawn("demo-app", command, &log, Duration::from_secs(5))?;
    let status = poll_until(
        &format!("demo-app to refuse a {volume} volume"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        |_| Ok(child.exited()),
    )?;
    let said = std::fs::read_to_string(&log)?;
    if status.success() || !said.contains(says) {
        bail!(
            "on a {volume} volume demo-app exited with {status}, its log (without {says:?}):\n{}",
            cmd::tail(&[], said.as_bytes(), 10)
        );
    }
    Ok(format!("{status} in {:.0} ms, naming the {volume} volume", started.elapsed().as_secs_f64() * 1000.0))
}

fn database_deleted(programs: &Programs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let app = App::start(programs, &data)?;
    created_id(&app.order("kept", None)?)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(&data)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("demo-app.db")) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    let write = app.order("lost", None)?;
    let (ready, live) = (app.status("/readyz"), app.status("/healthz"));
    // The chart's liveness probe asks the metrics port.
    let probed = http::get(app.metrics_port, "/healthz").map_or(0, |r| r.status);
    let peak = app.stop()?;
    if write.status != 503 || ready != 503 || live != 503 || probed != 503 {
        bail!(
            "after the database files were deleted: order {} (want 503), readiness {ready}, liveness {live}, \
             on the metrics port {probed} (want 503 all)",
            write.status
        );
    }
    let wal_only = write_ahead_log_deleted(programs)?;
    Ok(format!(
        "{removed} database files deleted; order 503, readiness 503, liveness 503 on both ports (restart needed); \
         {wal_only}; peak RSS {peak} MiB"
    ))
}

/// Only the write-ahead log deleted, then a crash: the orders acknowledged
/// before (still only in the deleted log) must be there after the restart.
fn write_ahead_log_deleted(programs: &Programs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let app = App::start(programs, &data)?;
    let acknowledged: Vec<i64> =
        (0..5).map(|i| created_id(&app.order(&format!("kept-{i}"), None)?)).collect::<Result<_>>()?;
    std::fs::remove_file(data.join("demo-app.db-wal")).context("deleting the write-ahead log")?;
    let (write, ready) = (app.order("after", None)?.status, app.status("/readyz"));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(app.pid as i32).context("a child has a pid")?,
        rustix::process::Signal::KILL,
    )?;
    drop(app);
    let app = App::start(programs, &data)?;
    let present = acknowledged.iter().filter(|id| app.status(&format!("/api/orders/{id}")) == 200).count();
    app.stop()?;
    if write != 503 || ready != 503 || present != acknowledged.len() {
        bail!(
            "write-ahead log deleted: order {write} (want 503), readiness {ready} (want 503); after SIGKILL and a \
             restart {present} of {} acknowledged orders there",
            acknowledged.len()
        );
    }
    Ok(format!(
        "the write-ahead log alone deleted: order 503, readiness 503; SIGKILL, restart: {present}/{} acknowledged \
         orders there",
        acknowledged.len()
    ))
}

fn killed_mid_write(programs: &Programs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let app = App::start(programs, &data)?;
    let port = app.port;
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, Value)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}-{n}");
                    let body = json!({"sku": format!("sku-{w}"), "quantity": n % 9 + 1, "unit_price_cents": 1999});
                    match http::post_json(port, "/api/orders", &[("idempotency-key", &key)], &body) {
                        Ok(r) if r.status == 201 => {
                            if let Ok(order) = r.json() {
                                acknowledged.lock().expect("not poisoned").push((key, order));
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(app.pid as i32).context("a child has a pid")?,
        rustix::process::Signal::KILL,
    )?;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.join();
    }
    drop(app);
    let acknowledged = acknowledged.lock().expect("not poisoned").clone();
    if acknowledged.is_empty() {
        bail!("no order was acknowledged before the kill");
    }

    let app = App::start(programs, &data)?;
    let mut missing = Vec::new();
    for (key, order) in &acknowledged {
        let stored = http::get(app.port, &format!("/api/orders/{}", order["id"]))?;
        if stored.status != 200 || stored.json()? != *order {
            missing.push(key.clone());
        }
    }
    let (rows, torn) = all_orders(app.port)?;
    app.stop()?;
    if !missing.is_empty() || torn > 0 {
        bail!(
            "after SIGKILL and a restart: {} acknowledged orders missing or changed {missing:?}, {torn} rows with a wrong total",
            missing.len()
        );
    }
    Ok(format!(
        "{} orders acknowledged by 4 writers before SIGKILL; after a restart all {} there and whole, {rows} rows in all, none torn",
        acknowledged.len(),
        acknowledged.len()
    ))
}

fn collector_black_hole(programs: &Programs) -> Result<String> {
    // Accepts every connection and never reads or answers: the worst a
    // Collector can do (a dead one at least refuses).
    let hole = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", hole.local_addr()?);
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    std::thread::spawn(move || {
        for socket in hole.incoming().flatten() {
            holder.lock().expect("not poisoned").push(socket);
        }
    });
    let dir = tempfile::tempdir()?;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
    ];
    let app = App::start_with(programs, &dir.path().join("data"), &env)?;
    let mut took = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        created_id(&app.order(&format!("hole-{i}"), None)?)?;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    let (median, slowest) = (took[took.len() / 2], took[took.len() - 1]);
    // A request never waits for the exporter: one that did would take the
    // export timeout (1 s).
    if slowest >= Duration::from_millis(900) {
        bail!("an order took {slowest:?} with the Collector black-holed (median {median:?})");
    }
    let dropped = poll_until(
        "telemetry_dropped_total to count the lost telemetry",
        Duration::from_secs(20),
        Duration::from_millis(250),
        |last| {
            let metrics = http::get(app.metrics_port, "/metrics")?.text();
            let total: f64 =
                super::prometheus::exposition_samples(&metrics, "telemetry_dropped_total").iter().map(|(_, v)| v).sum();
            *last = format!("telemetry_dropped_total = {total}");
            Ok((total > 0.0).then_some(total))
        },
    )?;
    let connections = held.lock().expect("not poisoned").len();
    let stopping = Instant::now();
    let peak = app.stop()?;
    Ok(format!(
        "300 orders all 201, median {:.1} ms, slowest {:.1} ms; {connections} connection(s) held by the hole; \
         telemetry_dropped_total {dropped}; clean exit in {:.1} s; peak RSS {peak} MiB",
        median.as_secs_f64() * 1000.0,
        slowest.as_secs_f64() * 1000.0,
        stopping.elapsed().as_secs_f64()
    ))
}

/// (rows, rows whose total is not quantity × unit price), over every page.
pub(super) fn all_orders(port: u16) -> Result<(usize, usize)> {
    let (mut rows, mut torn, mut after) = (0, 0, String::new());
    loop {
        let page = http::get(port, &format!("/api/orders?limit=100{after}"))?.json()?;
        for order in page["orders"].as_array().into_iter().flatten() {
            rows += 1;
            let total = order["quantity"].as_i64().unwrap_or(-1) * order["unit_price_cents"].as_i64().unwrap_or(-1);
            torn += usize::from(order["total_cents"].as_i64() != Some(total));
        }
        match page["next_after"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => return Ok((rows, torn)),
        }
    }
}

pub(super) fn created_id(response: &http::Response) -> Result<i64> {
    if response.status != 201 {
        bail!("an order answered {}: {}", response.status, response.text());
    }
    response.json()?["id"].as_i64().context("a created order has an id")
}

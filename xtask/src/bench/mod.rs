//! `cargo xtask bench` (`make bench`): demo-app against podinfo, a FastAPI
//! baseline and a bare hyper server, side by side on this machine.
//!
//! The servers are pinned to one core (`taskset -c 0`), started afresh for
//! every scenario so their peak RSS belongs to that scenario; the load
//! generator runs on the other core. Per scenario, every server runs at
//! once and the runs take turns, the order rotating each round: a warm-up
//! each, then N rounds of throughput runs with wrk (closed loop) and N of
//! fixed-rate runs with oha (open loop, latency measured from each
//! request's scheduled send time, so a stalled server cannot hide its
//! queue: no coordinated omission). Figures are medians with min and max.
//! Outputs go to `target/bench/<UTC timestamp>/`: results.json, results.md
//! and throughput.svg.
//!
//! Then, for the Rust servers, a pass under callgrind counts instructions
//! per request (callgrind.rs): the figure a noisy shared machine cannot move.
//!
//! `--smoke` (part of `make test`): two servers, 1 s per case, debug builds,
//! no oha, callgrind on 50 requests of `GET /api/info`; it fails if a case
//! gets no answers or any error, so the harness cannot rot. Its numbers mean
//! nothing.

mod build;
mod callgrind;
mod chart;
mod equal_load;
mod ghz;
mod hot_code;
mod machine;
mod oha;
pub(crate) mod procfs;
mod python;
mod report;
mod scenarios;
mod servers;
mod stats;
mod wrk;

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::project::Project;
use crate::stack::{collector, ports, process};
use crate::tools;
use report::{Case, FixedRate, Results, Settings};
use scenarios::Scenario;
use servers::{Binaries, Endpoints, SERVERS, Server, Telemetry};
use stats::Spread;

/// The server's core and the load generator's (and the Collector's).
pub const SERVER_CORE: &str = "0";
pub const LOAD_CORE: &str = "1";

pub struct Options {
    pub smoke: bool,
    pub runs: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub load: Load,
    /// Only these servers (ids), when not empty.
    pub servers: Vec<String>,
    /// Only these scenarios (ids), when not empty.
    pub scenarios: Vec<String>,
    /// Also copy the chart and table to docs/benchmarks/ for the README.
    pub publish: bool,
    /// Requests counted under callgrind per case (0: no callgrind pass).
    pub callgrind_requests: u32,
    /// Instead of measuring: list the functions demo-app runs (hot_code.rs).
    pub hot_code: bool,
}

impl Options {
    /// What `make test` runs: `cargo xtask bench --smoke` with the defaults.
    pub fn smoke() -> Options {
        Options {
            smoke: true,
            runs: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            load: Load { connections: 32, rate: 2000, write_rate: 500, equal_rate: 25_000 },
            servers: Vec::new(),
            scenarios: Vec::new(),
            publish: false,
            callgrind_requests: SMOKE_CALLGRIND_REQUESTS,
            hot_code: false,
        }
    }
}

/// Enough for the smoke to prove the callgrind pass works, not to measure.
const SMOKE_CALLGRIND_REQUESTS: u32 = 50;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Load {
    /// Open connections of both load generators.
    pub connections: u32,
    /// Requests per second of the fixed-rate (latency) runs of the read
    /// scenarios, the same for every server.
    pub rate: u32,
    /// The same for the scenarios that write to SQLite with an fsync per
    /// commit (orders, checkout): above what the disk allows, every server
    /// would only show the length of its queue.
    pub write_rate: u32,
    /// The open-loop rate at which the read scenarios compare demo-app's
    /// CPU per request with and without telemetry: the Collector shares the
    /// load generator's core, so closed-loop throughput also counts the CPU
    /// it takes from wrk, and a server that is not saturated spends more
    /// per request (fewer requests per wake-up); at one offered load both
    /// runs see the same arrivals. Every demo-app variant sustains it.
    pub equal_rate: u32,
}

impl Load {
    /// The common fixed rate of a scenario.
    pub fn rate_for(&self, scenario: Scenario) -> u32 {
        if scenario.writes() { self.write_rate } else { self.rate }
    }

    /// The offered load of the CPU comparison: the write scenarios' own
    /// fixed rate (their latency runs serve), `equal_rate` for the reads.
    pub fn equal_rate_for(&self, scenario: Scenario) -> u32 {
        if scenario.writes() { self.write_rate } else { self.equal_rate }
    }
}

pub fn run(project: &Project, mut options: Options) -> Result<()> {
    process::install_signal_flag()?;
    if options.smoke {
        options.runs = 1;
        options.duration = Duration::from_secs(1);
        options.warmup = Duration::ZERO;
        options.callgrind_requests = options.callgrind_requests.min(SMOKE_CALLGRIND_REQUESTS);
        if options.servers.is_empty() {
            options.servers = servers::SMOKE.iter().map(|s| s.to_string()).collect();
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if options.hot_code {
        if options.smoke {
            bail!("--hot-code needs the release build, not --smoke's");
        }
        if options.servers.is_empty() {
            options.servers =
                SERVERS.iter().filter(|s| s.kind == servers::Kind::DemoApp).map(|s| s.id.into()).collect();
        }
    }
    let selected = select(&options)?;
    check_cores()?;

    let wrk = tools::locate(project, "wrk")?;
    let bins = find_binaries(project, &options, &selected)?;
    // The memory figures depend on demo-app's code layout (hot_code.rs).
    if let Some(demo_app) = bins.demo_app.as_deref().filter(|_| !options.smoke && !options.hot_code) {
        hot_code::check(project, demo_app)?;
    }
    // The open-loop generator is a ~10 min build: only the full run needs it.
    let oha = if options.smoke { None } else { Some(oha::ensure(project)?) };
    let ghz = if selected.iter().any(|(_, s)| s.grpc()) { Some(tools::locate(project, "ghz")?) } else { None };

    let (stamp, date) = machine::utc_now();
    let out = project.root.join("target/bench").join(&stamp);
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut programs: Vec<(&str, &Path)> = vec![("wrk", &wrk)];
    if let Some(podinfo) = &bins.podinfo {
        programs.push(("podinfo", podinfo));
    }
    if let Some((python, _)) = &bins.python {
        programs.push(("python", python));
    }
    if let Some(oha) = &oha {
        programs.push(("oha", oha));
    }
    if let Some(ghz) = &ghz {
        programs.push(("ghz", ghz));
    }
    let otelcol = if selected.iter().any(|(s, _)| s.telemetry.needs_collector()) {
        Some(tools::locate(project, "otelcol")?)
    } else {
        None
    };
    if let Some(otelcol) = &otelcol {
        programs.push(("otelcol", otelcol));
    }
    let versions = machine::versions(project, &programs);

    let mut collector = match &otelcol {
        Some(binary) => Some(start_collector(project, binary, &out)?),
        None => None,
    };
    let endpoints = Endpoints {
        collector: collector.as_ref().map(|(_, ports)| (ports.otlp_grpc, ports.otlp_http)),
        collector_pids: collector.as_ref().map(|(supervisor, _)| supervisor.pids()).unwrap_or_default(),
        down: ports::free_port()?,
    };

    let settings = Settings {
        mode: if options.smoke { "smoke" } else { "full" }.into(),
        runs: options.runs,
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        load: options.load,
        server_core: SERVER_CORE.into(),
        load_core: LOAD_CORE.into(),
        profile: profile(&options).into(),
    };
    println!(
        "\n{} cases, {} run(s) of {:.0} s each (throughput{}), results in {}",
        selected.len(),
        options.runs,
        options.duration.as_secs_f64(),
        if oha.is_some() {
            format!(" and fixed rate {}/{} req/s (reads/writes)", options.load.rate, options.load.write_rate)
        } else {
            " only".into()
        },
        project.rel(&out).display()
    );
    let mut cases = Vec::new();
    let loaders = Loaders { wrk: &wrk, oha: oha.as_deref(), ghz: ghz.as_deref() };
    if options.hot_code {
        return hot_code::write(project, &selected, &bins, &endpoints, &loaders, &options, &out.join("hot-code"));
    }
    for scenario in Scenario::ALL {
        let servers: Vec<&Server> =
            selected.iter().filter(|(_, s)| *s == scenario).map(|(server, _)| *server).collect();
        if servers.is_empty() {
            continue;
        }
        process::check_interrupted()?;
        if let Some((supervisor, _)) = collector.as_mut()
            && let Some((child, status)) = supervisor.first_exited()
        {
            bail!("the Collector exited during the benchmark ({status}):\n{}", child.log_tail(20));
        }
        let measured = measure(&servers, scenario, &bins, &endpoints, &loaders, &options, &out.join("cases"))
            .with_context(|| format!("scenario {}", scenario.title()))?;
        for case in measured {
            println!("  {}", report::one_line(&case));
            cases.push(case);
        }
    }
    let equal_load = match oha.as_deref() {
        Some(oha) => equal_load::compare(&selected, &bins, &endpoints, oha, &options, &out.join("equal-load"))?,
        None => Vec::new(),
    };
    // Proof that "telemetry on" exported: the spans the Collector accepted.
    // Per protocol: a variant that exported nothing would look cheap.
    let mut collector_spans = None;
    if let Some((mut supervisor, ports)) = collector.take() {
        let metrics = crate::stack::http::get(ports.collector_self_metrics, "/metrics")
            .context("reading the Collector's self-metrics")?
            .text();
        supervisor.stop_all();
        let mut spans = 0;
        for (telemetry, transport) in [(Telemetry::Collector, "grpc"), (Telemetry::CollectorHttp, "http")] {
            let accepted = accepted_spans(&metrics, transport);
            if selected.iter().any(|(s, _)| s.telemetry == telemetry) && accepted == 0 {
                bail!(
                    "the Collector accepted no span over OTLP/{transport}: those cases exported nothing (see the servers' logs in {})",
                    out.display()
                );
            }
            spans += accepted;
        }
        println!("the Collector accepted {spans} spans");
        collector_spans = Some(spans);
    }

    let results =
        Results { date, machine: machine::Machine::read(), versions, settings, collector_spans, cases, equal_load };
    let written = report::write(&results, &out)?;
    chart::write(&results, &out.join("throughput.svg"))?;
    // The Collector's files and the servers' databases are scratch; the logs stay.
    let _ = fs::remove_dir_all(out.join("otelcol"));
    let runs = fs::read_dir(out.join("cases"))?.chain(fs::read_dir(out.join("equal-load")).into_iter().flatten());
    for case in runs.flatten() {
        for entry in fs::read_dir(case.path())?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("data") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    println!("\n{}", written.markdown);
    println!("results: {}", project.rel(&out).display());
    if options.publish {
        report::publish(project, &results, &out)?;
    }
    if options.smoke {
        smoke_verdict(&results.cases)?;
    }
    Ok(())
}

fn profile(options: &Options) -> &'static str {
    // Smoke numbers mean nothing, and `cargo test` has built the debug
    // binaries already: the smoke adds no release build (minutes) to make test.
    if options.smoke { "dev" } else { "release" }
}

/// (server, scenario) pairs in run order: scenario by scenario, so the
/// servers of one scenario are measured close together in time.
fn select(options: &Options) -> Result<Vec<(&'static Server, Scenario)>> {
    for id in &options.servers {
        if Server::by_id(id).is_none() {
            let known: Vec<_> = SERVERS.iter().map(|s| s.id).collect();
            bail!("unknown server {id:?}; known: {}", known.join(", "));
        }
    }
    for id in &options.scenarios {
        if !Scenario::ALL.iter().any(|s| s.id() == id) {
            let known: Vec<_> = Scenario::ALL.iter().map(|s| s.id()).collect();
            bail!("unknown scenario {id:?}; known: {}", known.join(", "));
        }
    }
    let wanted = |list: &[String], id: &str| list.is_empty() || list.iter().any(|x| x == id);
    let mut pairs = Vec::new();
    for scenario in Scenario::ALL {
        // The smoke runs without oha, the only HTTP/2 load generator here.
        if !wanted(&options.scenarios, scenario.id()) || (options.smoke && (scenario.http2() || scenario.grpc())) {
            continue;
        }
        for server in SERVERS {
            if wanted(&options.servers, server.id) && server.supports(scenario) {
                pairs.push((server, scenario));
            }
        }
    }
    if pairs.is_empty() {
        bail!("no server implements the selected scenarios");
    }
    Ok(pairs)
}

/// Two cores at least: one for the server, one for the load.
fn check_cores() -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        bail!(
            "the benchmark pins the server and the load generator to different cores and needs 2; this process may use {cores}"
        );
    }
    let taskset = crate::cmd::capture(std::process::Command::new("taskset").arg("--version"));
    if !taskset.is_ok_and(|o| o.status.success()) {
        bail!("taskset is missing: install util-linux (`apt-get install -y util-linux`)");
    }
    Ok(())
}

fn find_binaries(project: &Project, options: &Options, selected: &[(&Server, Scenario)]) -> Result<Binaries> {
    use servers::Kind;
    let needs = |kind: Kind| selected.iter().any(|(s, _)| s.kind == kind);
    let mut packages = Vec::new();
    if needs(Kind::DemoApp) {
        packages.push("demo-app");
    }
    if needs(Kind::Hyper) {
        packages.push("hyper-baseline");
    }
    let mut built =
        if packages.is_empty() { Default::default() } else { build::binaries(project, profile(options), &packages)? };
    Ok(Binaries {
        demo_app: built.remove("demo-app"),
        hyper: built.remove("hyper-baseline"),
        podinfo: if needs(Kind::Podinfo) { Some(tools::locate(project, "podinfo")?) } else { None },
        python: if needs(Kind::Python) { Some(python::ensure(project)?) } else { None },
    })
}

/// The project's Collector with its own configuration, on the load core,
/// minus the trace exporters that need a backend the benchmark does not run
/// (Jaeger): spans still go through the receiver, processors, span metrics
/// and the file exporter. Returns it and its ports.
fn start_collector(project: &Project, binary: &Path, out: &Path) -> Result<(process::Supervisor, ports::Ports)> {
    let picked = ports::pick(ports::Choice::AllFree)?.ports;
    let config_path = collector::config_path(project);
    let config = fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let mut command = collector::command(project, binary, &picked, &out.join("otelcol"))?;
    command.arg(traces_without_backends(&config)?);
    let command = on_load_core(command);
    let mut supervisor = process::Supervisor::default();
    let log = out.join("otelcol.log");
    supervisor.spawn("otelcol", command, &log, Duration::from_secs(10))?;
    process::poll_until("the Collector healthy", Duration::from_secs(30), Duration::from_millis(100), |last| {
        if let Some((child, status)) = supervisor.first_exited() {
            bail!("the Collector exited during start-up ({status}):\n{}", child.log_tail(20));
        }
        match collector::ready(&picked) {
            Ok(ready) => Ok(ready),
            Err(err) => {
                *last = format!("{err:#}");
                Ok(None)
            }
        }
    })?;
    println!("Collector up on OTLP/gRPC {} (log {})", picked.otlp_grpc, log.display());
    Ok((supervisor, picked))
}

/// `otelcol_receiver_accepted_spans` summed over receivers and transports,
/// from the Collector's self-metrics.
/// Spans the Collector's receivers accepted over one transport (grpc, http),
/// from its Prometheus self-metrics.
fn accepted_spans(metrics: &str, transport: &str) -> u64 {
    let label = format!("transport=\"{transport}\"");
    metrics
        .lines()
        .filter(|l| l.strip_prefix("otelcol_receiver_accepted_spans").is_some_and(|rest| rest.starts_with('{')))
        .filter(|l| l.split_once('}').is_some_and(|(labels, _)| labels.contains(&label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `--set` for the traces pipeline without its `otlp*` exporters.
fn traces_without_backends(config: &str) -> Result<String> {
    let config: serde_norway::Value = serde_norway::from_str(config).context("the Collector config is not YAML")?;
    let exporters = config["service"]["pipelines"]["traces"]["exporters"]
        .as_sequence()
        .context("the Collector config has no service.pipelines.traces.exporters")?;
    let kept: Vec<&str> =
        exporters.iter().filter_map(serde_norway::Value::as_str).filter(|id| !id.starts_with("otlp")).collect();
    if kept.is_empty() {
        bail!("every trace exporter of the Collector needs a backend; the benchmark would measure a retry loop");
    }
    Ok(format!("--set=service.pipelines.traces.exporters=[{}]", kept.join(",")))
}

/// The same command under `taskset -c LOAD_CORE`.
fn on_load_core(command: std::process::Command) -> std::process::Command {
    let mut pinned = std::process::Command::new("taskset");
    pinned.args(["-c", LOAD_CORE]).arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => pinned.env(name, value),
            None => pinned.env_remove(name),
        };
    }
    pinned
}

/// The load generators: wrk (HTTP/1.1), oha (HTTP/2 and the fixed-rate
/// runs; not in --smoke), ghz (gRPC).
struct Loaders<'a> {
    wrk: &'a Path,
    oha: Option<&'a Path>,
    ghz: Option<&'a Path>,
}

/// Every server of `scenario` at once, idle but for its own turn: the
/// runs take turns, the order rotating each round, so a shared machine's
/// drift (other tenants, frequency) falls on every server alike. Run one
/// case after another, bare hyper's CPU a request moved from 7.2 to 4.9 µs
/// between two runs of the same binaries, and every ratio with it.
fn measure(
    servers: &[&Server],
    scenario: Scenario,
    bins: &Binaries,
    endpoints: &Endpoints,
    loaders: &Loaders,
    options: &Options,
    cases_dir: &Path,
) -> Result<Vec<Case>> {
    let mut running = Vec::new();
    for server in servers {
        let dir = cases_dir.join(format!("{}-{}", server.id, scenario.id()));
        fs::create_dir_all(&dir)?;
        let started = servers::start(server, scenario, bins, endpoints, &dir)?;
        let url = format!("http://127.0.0.1:{}{}", started.port, scenario.path());
        let script = wrk::write_script(&dir, scenario)?;
        running.push(Turn { server, dir, running: started, url, script });
    }
    if !options.warmup.is_zero() {
        for turn in &running {
            closed_loop(turn, scenario, loaders, options, options.warmup)
                .with_context(|| format!("{}: warm-up", turn.server.id))?;
        }
    }
    let n = running.len();
    let mut throughput: Vec<Vec<ClosedLoopRun>> = vec![Vec::new(); n];
    let mut fixed: Vec<Vec<oha::OhaSummary>> = vec![Vec::new(); n];
    for round in 0..options.runs {
        for i in in_turns(round, n) {
            let turn = &running[i];
            process::check_interrupted()?;
            let before = procfs::cpu_seconds(&turn.running.pids)?;
            let collector_before = collector_cpu(&endpoints.collector_pids)?;
            let cores_before = (procfs::core_ticks(SERVER_CORE)?, procfs::core_ticks(LOAD_CORE)?);
            let summary = closed_loop(turn, scenario, loaders, options, options.duration)
                .with_context(|| format!("{}: throughput run", turn.server.id))?;
            let cores_after = (procfs::core_ticks(SERVER_CORE)?, procfs::core_ticks(LOAD_CORE)?);
            throughput[i].push(ClosedLoopRun {
                cpu: procfs::cpu_seconds(&turn.running.pids)? - before,
                server_core_busy: procfs::busy_share(cores_before.0, cores_after.0),
                load_core_busy: procfs::busy_share(cores_before.1, cores_after.1),
                collector_cpu: collector_cpu(&endpoints.collector_pids)?.zip(collector_before).map(|(a, b)| a - b),
                summary,
            });
            settle(turn.server);
        }
    }
    // oha speaks no gRPC: the gRPC case has no fixed-rate runs.
    if let Some(oha_bin) = loaders.oha.filter(|_| !scenario.grpc()) {
        for round in 0..options.runs {
            for i in in_turns(round, n) {
                let turn = &running[i];
                process::check_interrupted()?;
                fixed[i].push(oha::run(oha_bin, scenario, &turn.url, &options.load, options.duration)?);
                settle(turn.server);
            }
        }
    }
    let mut cases = Vec::new();
    for (i, turn) in running.iter_mut().enumerate() {
        let peak_rss_kib = procfs::peak_rss_kib(&turn.running.pids)?;
        if let Some((child, status)) = turn.running.supervisor.first_exited() {
            bail!("{} ({}) exited under load ({status}):\n{}", turn.server.id, child.name, child.log_tail(20));
        }
        turn.running.supervisor.stop_all();
        cases.push(case(turn.server, scenario, &throughput[i], &fixed[i], options, peak_rss_kib));
        trim_logs(&turn.dir)?;
    }
    // Alone, after the others stopped: callgrind's own cost is large.
    for (case, turn) in cases.iter_mut().zip(&running) {
        let server = turn.server;
        // The smoke only proves the pass works: one scenario is enough.
        let counted = callgrind::supports(server, scenario) && (!options.smoke || scenario == Scenario::Info);
        if options.callgrind_requests > 0 && counted {
            let dir = turn.dir.join("callgrind");
            fs::create_dir_all(&dir)?;
            case.instructions =
                Some(callgrind::measure(server, scenario, bins, endpoints, &dir, options.callgrind_requests)?);
        }
    }
    Ok(cases)
}

/// The order of round `round` over `n` servers: each once, starting one
/// further each round, so no server always follows the same one.
fn in_turns(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (k + round) % n)
}

/// One closed-loop run and what it cost: the server's CPU seconds, how busy
/// its core and the load core were (shares from /proc/stat, the server's
/// network work in softirq included), and the Collector's CPU seconds.
#[derive(Clone)]
struct ClosedLoopRun {
    summary: wrk::WrkSummary,
    cpu: f64,
    server_core_busy: f64,
    load_core_busy: f64,
    collector_cpu: Option<f64>,
}

impl ClosedLoopRun {
    /// The share of a core the Collector took during the run.
    fn collector_share(&self) -> Option<f64> {
        Some(self.collector_cpu? / (self.summary.duration_us as f64 / 1e6).max(f64::EPSILON))
    }
}

/// The Collector's CPU seconds so far; None when none runs.
fn collector_cpu(pids: &[u32]) -> Result<Option<f64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    procfs::cpu_seconds(pids).context("the Collector (did it exit?)").map(Some)
}

/// One server of a scenario, started, waiting for its turns.
struct Turn<'a> {
    server: &'a Server,
    dir: std::path::PathBuf,
    running: servers::Running,
    url: String,
    script: std::path::PathBuf,
}

/// One closed-loop run against `turn`: wrk, or oha for HTTP/2 (wrk speaks
/// HTTP/1.1 only), or ghz for gRPC.
fn closed_loop(
    turn: &Turn,
    scenario: Scenario,
    loaders: &Loaders,
    options: &Options,
    duration: Duration,
) -> Result<wrk::WrkSummary> {
    if scenario.grpc() {
        let ghz_bin = loaders.ghz.context("the gRPC scenario needs ghz (`make tools`)")?;
        ghz::run_closed_loop(ghz_bin, turn.running.port, &options.load, duration)
    } else if scenario.http2() {
        let oha_bin = loaders.oha.context("the HTTP/2 scenarios need oha (not in --smoke)")?;
        let summary = oha::run_closed_loop(oha_bin, scenario, &turn.url, &options.load, duration)?;
        Ok(wrk::WrkSummary::from_oha(&summary, duration))
    } else {
        wrk::run(loaders.wrk, &turn.script, &turn.url, &options.load, duration)
    }
}

/// After the turn of a server that exports to the Collector: its last
/// batches leave up to a schedule delay after the run, on the core the
/// next server's turn would share.
fn settle(server: &Server) {
    if server.telemetry.needs_collector() {
        std::thread::sleep(equal_load::SETTLE);
    }
}

fn case(
    server: &Server,
    scenario: Scenario,
    throughput: &[ClosedLoopRun],
    fixed: &[oha::OhaSummary],
    options: &Options,
    peak_rss_kib: u64,
) -> Case {
    let of = |f: fn(&ClosedLoopRun) -> f64| Spread::of(&throughput.iter().map(f).collect::<Vec<_>>());
    let cpu_per_10k: Vec<f64> = throughput
        .iter()
        .filter(|r| r.summary.requests > 0)
        .map(|r| r.cpu / r.summary.requests as f64 * 10_000.0)
        .collect();
    let fixed_rate = (!fixed.is_empty()).then(|| FixedRate {
        target_rps: options.load.rate_for(scenario),
        achieved_rps: Spread::of(&fixed.iter().map(|f| f.requests_per_second).collect::<Vec<_>>()),
        p50_ms: Spread::of(&fixed.iter().map(|f| f.p50_ms).collect::<Vec<_>>()),
        p99_ms: Spread::of(&fixed.iter().map(|f| f.p99_ms).collect::<Vec<_>>()),
        p999_ms: Spread::of(&fixed.iter().map(|f| f.p999_ms).collect::<Vec<_>>()),
        errors: fixed.iter().map(|f| f.errors).sum(),
    });
    Case {
        server: server.id.into(),
        server_title: server.title().into(),
        telemetry: server.telemetry,
        scenario,
        requests: throughput.iter().map(|r| r.summary.requests).sum(),
        throughput_rps: of(|r| r.summary.requests_per_second()),
        cpu_s_per_10k: Spread::of(&cpu_per_10k),
        server_core_busy: of(|r| r.server_core_busy),
        load_core_busy: of(|r| r.load_core_busy),
        collector_core_busy: Spread::of(
            &throughput.iter().filter_map(ClosedLoopRun::collector_share).collect::<Vec<_>>(),
        ),
        collector_cpu_s_per_10k: Spread::of(
            &throughput
                .iter()
                .filter(|r| r.summary.requests > 0)
                .filter_map(|r| Some(r.collector_cpu? / r.summary.requests as f64 * 10_000.0))
                .collect::<Vec<_>>(),
        ),
        runs_paced_by_load_core: throughput
            .iter()
            .filter(|r| report::paced_by_load_core(r.load_core_busy, r.server_core_busy, r.collector_share()))
            .count(),
        closed_loop_p99_ms: of(|r| r.summary.p99_us / 1000.0),
        errors: throughput.iter().map(|r| r.summary.errors).sum::<u64>() + fixed.iter().map(|f| f.errors).sum::<u64>(),
        fixed_rate,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        raw_wrk: throughput.iter().map(|r| r.summary.clone()).collect(),
        raw_oha: fixed.to_vec(),
        instructions: None,
    }
}

/// Server logs over 1 MiB (demo-app logs every order) keep only their last
/// 256 KiB: enough to read why a case failed, without 200 MB per run.
fn trim_logs(dir: &Path) -> Result<()> {
    const KEEP: u64 = 256 * 1024;
    for entry in fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let size = entry.metadata().map(|m| m.len()).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "log") && size > 4 * KEEP {
            let bytes = fs::read(&path)?;
            let tail = &bytes[bytes.len() - KEEP as usize..];
            let start = tail.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
            let mut trimmed = format!("[bench: {size} bytes of log, only the end kept]\n").into_bytes();
            trimmed.extend_from_slice(&tail[start..]);
            fs::write(&path, trimmed)?;
        }
    }
    Ok(())
}

/// The smoke's verdict: every case answered, without errors.
fn smoke_verdict(cases: &[Case]) -> Result<()> {
    let mut bad: Vec<String> = cases
        .iter()
        .filter(|c| c.requests == 0 || c.errors > 0)
        .map(|c| format!("{} {}: {} requests, {} errors", c.server, c.scenario.title(), c.requests, c.errors))
        .collect();
    let counted = cases.iter().filter(|c| c.instructions.is_some_and(|i| i.per_request > 0)).count();
    if counted == 0 {
        bad.push("callgrind counted no instruction in any case".into());
    }
    if !bad.is_empty() {
        bail!("bench smoke: cases without answers or with errors (see the servers' logs):\n{}", bad.join("\n"));
    }
    println!("bench smoke: {} cases answered without errors, {counted} counted by callgrind", cases.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(servers: &[&str], scenarios: &[&str]) -> Options {
        Options {
            smoke: false,
            runs: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            load: Load { connections: 8, rate: 100, write_rate: 50, equal_rate: 200 },
            servers: servers.iter().map(|s| s.to_string()).collect(),
            scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
            publish: false,
            callgrind_requests: 0,
            hot_code: false,
        }
    }

    #[test]
    fn selection_runs_scenario_by_scenario_and_skips_what_a_server_lacks() {
        let pairs = select(&options(&["demo-app", "hyper"], &[])).unwrap();
        let ids: Vec<String> = pairs.iter().map(|(s, c)| format!("{}:{}", s.id, c.id())).collect();
        assert_eq!(
            ids,
            [
                "demo-app:info",
                "hyper:info",
                "demo-app:info-h2",
                "hyper:info-h2",
                "demo-app:grpc-info",
                "demo-app:healthz",
                "hyper:healthz",
                "demo-app:echo",
                "hyper:echo",
                "demo-app:orders",
                "demo-app:checkout"
            ]
        );
        assert!(select(&options(&["nginx"], &[])).is_err());
        assert!(select(&options(&[], &["websocket"])).is_err());
        assert!(select(&options(&["hyper"], &["orders"])).is_err());
    }

    #[test]
    fn every_round_visits_each_server_once_starting_one_further() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|round| in_turns(round, 3).collect()).collect();
        assert_eq!(rounds, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
    }

    #[test]
    fn long_logs_keep_their_end_from_a_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let long: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
        fs::write(dir.path().join("server.log"), &long).unwrap();
        fs::write(dir.path().join("short.log"), "kept\n").unwrap();
        fs::write(dir.path().join("data.db"), &long).unwrap();
        trim_logs(dir.path()).unwrap();
        let trimmed = fs::read_to_string(dir.path().join("server.log")).unwrap();
        assert!(trimmed.len() < 300 * 1024);
        assert!(trimmed.starts_with("[bench: "), "{}", &trimmed[..80]);
        assert!(trimmed.lines().nth(1).unwrap().starts_with("line "));
        assert!(trimmed.ends_with("line 199999\n"));
        assert_eq!(fs::read_to_string(dir.path().join("short.log")).unwrap(), "kept\n");
        assert_eq!(fs::read_to_string(dir.path().join("data.db")).unwrap().len(), long.len());
    }

    #[test]
    fn accepted_spans_are_read_per_transport_only_for_that_metric() {
        let text = "# TYPE otelcol_receiver_accepted_spans counter\n\
                    otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\"} 1200\n\
                    otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"http\"} 34\n\
                    otelcol_receiver_accepted_spans_total_other 99\n";
        assert_eq!(accepted_spans(text, "grpc"), 1200);
        assert_eq!(accepted_spans(text, "http"), 34);
    }

    #[test]
    fn collector_traces_keep_only_exporters_without_a_backend() {
        let project = Project::discover().unwrap();
        let config = fs::read_to_string(collector::config_path(&project)).unwrap();
        let set = traces_without_backends(&config).unwrap();
        assert!(set.starts_with("--set=service.pipelines.traces.exporters=["), "{set}");
        assert!(!set.contains("otlp"), "{set}");
        let only_backends = "service:\n  pipelines:\n    traces:\n      exporters: [otlp_grpc/jaeger]\n";
        assert!(traces_without_backends(only_backends).is_err());
    }
}

//! `cargo xtask`: every piece of project automation, in Rust.
//!
//! The Makefile only aliases these subcommands; CI runs the same ones.

mod bench;
mod cargo;
mod cluster;
mod cmd;
mod flux;
mod fuzz;
mod pipeline;
mod project;
mod reconcile;
mod run;
mod schemas;
mod stack;
mod tools;
mod verify;

use clap::{Parser, Subcommand};

use crate::project::Project;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Automation for the demo-platform repository")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build or install every pinned external tool into the cache.
    Tools {
        /// Only report what is missing; build nothing. Exits 1 if anything is missing.
        #[arg(long)]
        check: bool,
    },
    /// Validate every manifest, workflow and negative fixture with the upstream tools.
    Verify {
        /// Only the fixtures (tests/fixtures): each validator accepts the
        /// valid ones and rejects the invalid ones for their reason.
        #[arg(long)]
        fixtures: bool,
    },
    /// Rewrite snapshots/<env>.yaml: everything Flux applies to each environment.
    Snapshots,
    /// Per environment, the objects that the working tree adds, removes or
    /// modifies compared with GIT_REF (what a pull request would change).
    Diff {
        #[arg(value_name = "GIT_REF", default_value = "HEAD")]
        git_ref: String,
    },
    /// Kyverno policies: the compliance report.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// The full gate: tools, fmt, clippy, tests, verify, e2e (what CI runs).
    Test,
    /// demo-app locally (role all, SQLite in ./.data); extra flags pass through.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The local observability stack (Collector, Jaeger, Prometheus, demo-app backend and frontend) until Ctrl-C.
    Stack,
    /// End-to-end test of the observability pipeline on a stack with free ports.
    E2e,
    /// dev on a local kind cluster: registry, image from the working tree, Flux
    /// from the working tree (no Git credentials), wait until ready, print URLs.
    ClusterUp,
    /// Delete the kind cluster and its registry container.
    ClusterDown,
    /// On a cluster-up cluster: Helm tests, smoke checks, a canary promoted and one rolled back.
    ClusterCheck,
    /// The chart's canary analysis against a local Prometheus: a healthy canary passes, faulty ones fail.
    Canary,
    /// schemathesis against demo-app's own OpenAPI document
    /// (tools/schemathesis/schemathesis.toml).
    ApiTest,
    /// demo-app under faults and abuse: a full or read-only data volume, its
    /// database deleted, SIGKILL mid-write, a Collector that never answers,
    /// PostgreSQL killed under load, clients beyond the limits.
    Faults,
    /// podinfo's own Helm chart runs demo-app: its container command, env and
    /// probes, then its Helm tests (curl, jq, grpc_health_probe).
    PodinfoChart,
    /// Every fuzz target of crates/demo-app-input/fuzz for FUZZ_SECONDS (10) each.
    Fuzz,
    /// An environment reconciled for real: a Kubernetes control plane, Flux and the
    /// platform's controllers on loopback, bootstrapped from the working tree.
    Reconcile {
        /// dev, staging, production, or all.
        #[arg(long, default_value = "dev")]
        env: String,
    },
    /// Benchmarks: demo-app against podinfo, a FastAPI baseline and bare hyper (see docs/benchmarks.md).
    Bench {
        /// Two servers, 1 s per case, debug builds, no open-loop run: checks the harness (part of `make test`).
        #[arg(long)]
        smoke: bool,
        /// Runs per case (medians with min and max are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Seconds of warm-up load before the runs of each case.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Connections of the load generators.
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// Requests per second of the fixed-rate latency runs, the same for every server.
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        /// The fixed rate of the scenarios that store an order (orders, checkout: an fsync per request).
        #[arg(long, default_value_t = 500)]
        write_rate: u32,
        /// The open-loop rate at which demo-app's CPU per request is compared with and without telemetry (read scenarios).
        #[arg(long, default_value_t = 25_000)]
        equal_rate: u32,
        /// Only these servers (comma-separated ids: demo-app, demo-app-otel, demo-app-otel-http, demo-app-otel-down, podinfo, python, python-otel, hyper).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Only these scenarios (comma-separated: info, healthz, echo, orders, checkout).
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
        /// Also copy the chart and table to docs/benchmarks/ (what the README shows).
        #[arg(long)]
        publish: bool,
        /// Requests counted under callgrind per case, for instructions per request (0: none).
        #[arg(long, default_value_t = 2000)]
        callgrind_requests: u32,
        /// Measure nothing: run demo-app's cases under callgrind and write the functions
        /// they run to crates/demo-app/hot-functions.txt (its release code layout).
        #[arg(long)]
        hot_code: bool,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Every policy on every rendered environment: resources, results and
    /// compliance per environment, as Markdown and JSON (PolicyReport-shaped)
    /// in ~/.cache/demo-platform/verify/report/.
    Report {
        /// Report on the policies' own test resources (which fail on purpose)
        /// instead, in verify/report/fixtures/; exits 0 when they show failures.
        #[arg(long)]
        fixtures: bool,
    },
}

/// Errors end the output as one readable chain, without a backtrace: CI keeps
/// only the tail of the log, and that tail must say what failed and why.
fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let project = Project::discover()?;
    match cli.command {
        Command::Tools { check: true } => tools::check(&project),
        Command::Tools { check: false } => tools::install_all(&project),
        Command::Verify { fixtures } => verify::run(&project, fixtures),
        Command::Snapshots => flux::snapshot::update(&project),
        Command::Diff { git_ref } => flux::snapshot::diff_command(&project, &git_ref),
        Command::Policy { action: PolicyAction::Report { fixtures } } => verify::policy_report::run(&project, fixtures),
        Command::Test => pipeline::run(&project),
        Command::Run { args } => run::run(&project, &args),
        Command::Stack => stack::run(&project),
        Command::E2e => stack::e2e::run(&project),
        Command::ClusterUp => cluster::up(&project),
        Command::ClusterDown => cluster::down(),
        Command::ClusterCheck => cluster::check(&project),
        Command::Canary => stack::canary::run(&project),
        Command::ApiTest => stack::api_test::run(&project),
        Command::Faults => stack::faults::run(&project),
        Command::PodinfoChart => stack::podinfo_chart::run(&project),
        Command::Fuzz => fuzz::run(&project),
        Command::Reconcile { env } => reconcile::run(&project, &environments(&env)?),
        Command::Bench {
            smoke,
            runs,
            duration,
            warmup,
            connections,
            rate,
            write_rate,
            equal_rate,
            servers,
            scenarios,
            publish,
            callgrind_requests,
            hot_code,
        } => {
            let options = bench::Options {
                smoke,
                runs,
                duration: std::time::Duration::from_secs(duration),
                warmup: std::time::Duration::from_secs(warmup),
                load: bench::Load { connections, rate, write_rate, equal_rate },
                servers,
                scenarios,
                publish,
                callgrind_requests,
                hot_code,
            };
            bench::run(&project, options)
        }
    }
}

/// `--env`: one environment, or `all` of them in promotion order.
fn environments(env: &str) -> anyhow::Result<Vec<String>> {
    match env {
        "all" => Ok(flux::ENVIRONMENTS.iter().map(|e| e.to_string()).collect()),
        e if flux::ENVIRONMENTS.contains(&e) => Ok(vec![e.to_string()]),
        other => anyhow::bail!("unknown environment `{other}`: use one of {} or all", flux::ENVIRONMENTS.join(", ")),
    }
}

//! `cargo xtask test` (`make test`): the whole gate, in the order that fails
//! fastest, with the time of each step: tools, fmt, clippy, tests, verify,
//! the end-to-end telemetry test on a local stack, and dev reconciled by
//! Flux and the platform's controllers on a loopback control plane (beside
//! the stack's steps: both mostly wait on their processes).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::stack::process::{self, Supervisor};
use crate::{tools, verify};

pub fn run(project: &Project) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut steps = Steps { started: Instant::now(), done: Vec::new() };
    let result = run_steps(project, &cargo, &mut steps);
    steps.summary(result.is_ok());
    result
}

fn run_steps(project: &Project, cargo: &str, steps: &mut Steps) -> Result<()> {
    steps.run("tools", || tools::install_all(project))?;
    steps.run("cargo fmt --check", || run_cargo(project, Command::new(cargo), &["fmt", "--all", "--check"]))?;
    // One compile for lints and tests (see cargo.rs).
    steps.run("clippy + test build", || run_cargo(project, crate::cargo::linted(), crate::cargo::TEST_BUILD))?;
    // Tests that need the tools above are `#[ignore]`d with the reason, so a
    // plain `cargo test` on a fresh clone runs (and lists them as ignored);
    // here the tools are installed, and they run too.
    // Eight test threads on two cores: the suites mostly wait on sockets,
    // timers and child processes (the api suite: 24 s with the default two
    // threads, 12 s with eight; `cargo test` as a whole 63 → 49 s).
    steps.run("cargo test", || {
        let args =
            ["test", "--workspace", "--locked", "--no-fail-fast", "--", "--include-ignored", "--test-threads", "8"];
        run_cargo(project, crate::cargo::linted(), &args)
    })?;
    steps.run("verify", || verify::run(project, false))?;
    // The loopback cluster spends most of its five minutes waiting on its
    // controllers, and the steps below mostly wait on theirs: dev is
    // reconciled beside them, as its own process, its output kept in a log
    // and printed when it is done. A failing step stops it (on drop).
    let mut beside = Supervisor::default();
    let log = project.cache.join("reconcile-dev.log");
    let _ = std::fs::remove_file(&log);
    // This very binary, even though the test build has relinked its file.
    let mut reconcile = Command::new("/proc/self/exe");
    reconcile.args(["reconcile", "--env", "dev"]);
    let began = Instant::now();
    // Its own grace to stop the control plane and controllers it started.
    beside.spawn("reconcile dev", reconcile, &log, Duration::from_secs(60))?;
    println!("==> reconcile dev started beside the next steps (log: {})", log.display());
    std::thread::scope(|scope| stack_steps(project, steps, scope))?;
    steps.run("reconcile dev", || {
        let child = beside.get_mut("reconcile dev").context("reconcile dev was started above")?;
        let status = process::poll_until("reconcile dev", Duration::from_secs(600), Duration::from_secs(1), |last| {
            *last = "still running".into();
            Ok(child.exited())
        })?;
        print!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        // Its own table above says when it ended; this is when it was joined.
        println!("reconcile dev, started beside the steps above {:.1} s ago, is done", began.elapsed().as_secs_f64());
        if !status.success() {
            bail!("`cargo xtask reconcile --env dev` exited with {status} (log: {})", log.display());
        }
        Ok(())
    })?;
    Ok(())
}

/// The local stack's steps, the fuzz build compiling beside the first ones
/// (on a new machine about 150 CPU-s: cargo-fuzz and the instrumented
/// parsers) while they mostly wait on their processes.
fn stack_steps<'scope>(
    project: &'scope Project,
    steps: &mut Steps,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<()> {
    let fuzz_build = scope.spawn(|| {
        let began = Instant::now();
        crate::fuzz::build(project).map(|build| (build, began.elapsed()))
    });
    steps.run("e2e", || crate::stack::e2e::run(project))?;
    steps.run("api test", || crate::stack::api_test::run(project))?;
    steps.run("faults", || crate::stack::faults::run(project))?;
    steps.run("podinfo chart", || crate::stack::podinfo_chart::run(project))?;
    steps.run("fuzz", || {
        let (build, took) = fuzz_build.join().map_err(|_| anyhow::anyhow!("the fuzz build panicked"))??;
        println!("fuzz build (beside the steps above): {:.1} s", took.as_secs_f64());
        crate::fuzz::run_targets(&build)
    })?;
    steps.run("bench smoke", || crate::bench::run(project, crate::bench::Options::smoke()))?;
    steps.run("canary analysis", || crate::stack::canary::run(project))?;
    Ok(())
}

/// The steps run so far and their times, for the table at the end.
struct Steps {
    started: Instant,
    done: Vec<(&'static str, f64, bool)>,
}

impl Steps {
    fn run(&mut self, name: &'static str, body: impl FnOnce() -> Result<()>) -> Result<()> {
        println!("==> {name} (at {:.1} min)", self.started.elapsed().as_secs_f64() / 60.0);
        let began = Instant::now();
        let result = body();
        let took = began.elapsed().as_secs_f64();
        match &result {
            Ok(()) => println!("==> {name}: ok in {took:.1} s"),
            Err(_) => println!("==> {name}: FAILED after {took:.1} s"),
        }
        self.done.push((name, took, result.is_ok()));
        result.with_context(|| format!("step `{name}` failed"))
    }

    fn summary(&self, passed: bool) {
        println!("\n{:<20} {:>8}  result", "step", "seconds");
        for (name, took, ok) in &self.done {
            println!("{name:<20} {took:>8.1}  {}", if *ok { "ok" } else { "FAILED" });
        }
        let total = self.started.elapsed().as_secs_f64();
        println!("{:<20} {total:>8.1}", "total");
        println!("==> make test {} in {total:.0} s", if passed { "passed" } else { "FAILED" });
    }
}

/// Cargo with inherited output, so test results stream as they come.
fn run_cargo(project: &Project, mut cargo: Command, args: &[&str]) -> Result<()> {
    let status = cargo
        .args(args)
        .current_dir(&project.root)
        .status()
        .with_context(|| format!("cannot start {}", cmd_name(&cargo)))?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

fn cmd_name(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

//! `cargo xtask test` (`make test`): the whole gate, in the order that fails
//! fastest, with the time of each step: tools, fmt, clippy, tests, verify,
//! the end-to-end telemetry test on a local stack, and dev reconciled by
//! Flux and the platform's controllers on a loopback control plane.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::{tools, verify};

pub fn run(project: &Project) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    step("tools", || tools::install_all(project))?;
    step("cargo fmt --check", || cargo_cmd(project, &cargo, &["fmt", "--all", "--check"]))?;
    step("cargo clippy", || {
        cargo_cmd(project, &cargo, &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])
    })?;
    step("cargo test", || cargo_cmd(project, &cargo, &["test", "--workspace", "--locked", "--no-fail-fast"]))?;
    step("verify", || verify::run(project))?;
    step("e2e", || crate::stack::e2e::run(project))?;
    step("bench smoke", || crate::bench::run(project, crate::bench::Options::smoke()))?;
    step("canary analysis", || crate::stack::canary::run(project))?;
    step("reconcile dev", || crate::reconcile::run(project, &["dev".to_string()]))?;
    println!("==> make test passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let result = body();
    let took = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => println!("==> {name}: ok in {took:.1} s"),
        Err(_) => println!("==> {name}: FAILED after {took:.1} s"),
    }
    result.with_context(|| format!("step `{name}` failed"))
}

/// Cargo with inherited output, so test results stream as they come.
fn cargo_cmd(project: &Project, cargo: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(cargo)
        .args(args)
        .current_dir(&project.root)
        .status()
        .with_context(|| format!("cannot start {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

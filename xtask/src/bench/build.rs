//! The Rust servers, built by the workspace's cargo (so CARGO_TARGET_DIR and
//! `build.target-dir` are respected); their paths come from cargo's report.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::project::Project;

/// `cargo build --profile <profile>` of the packages' binaries of the same
/// name; returns name → executable.
pub fn binaries(project: &Project, profile: &str, packages: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    // The smoke in `make test` runs the binaries its compile step made.
    if profile == "dev" {
        let mut all = crate::cargo::workspace_binaries(project)?;
        all.retain(|name, _| packages.contains(&name.as_str()));
        for package in packages {
            if !all.contains_key(*package) {
                bail!("cargo reported no executable for {package}");
            }
        }
        return Ok(all);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(&project.root).args(["build", "--locked", "--profile", profile]);
    for package in packages {
        build.args(["--package", package, "--bin", package]);
    }
    build.arg("--message-format=json-render-diagnostics").stdin(Stdio::null()).stdout(Stdio::piped());
    println!("building: {}", cmd::display(&build));
    let started = Instant::now();
    let mut child = build.spawn().with_context(|| format!("cannot start `{}`", cmd::display(&build)))?;
    let mut found = BTreeMap::new();
    for line in std::io::BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line?) else { continue };
        if message["reason"] == "compiler-artifact"
            && let (Some(name), Some(path)) = (message["target"]["name"].as_str(), message["executable"].as_str())
            && packages.contains(&name)
        {
            found.insert(name.to_string(), PathBuf::from(path));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd::display(&build));
    }
    for package in packages {
        if !found.contains_key(*package) {
            bail!("cargo reported no executable for {package}");
        }
    }
    println!("built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(found)
}

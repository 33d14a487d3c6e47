//! Cargo as the gate runs it: the workspace compiled once, linted while it
//! compiles.
//!
//! `cargo clippy` is `cargo check` with clippy-driver as the workspace's
//! rustc wrapper. Running `cargo clippy` and then `cargo test` compiles every
//! dependency twice (metadata for the one, code for the other) and every
//! workspace crate twice. Here the test build itself goes through clippy-driver,
//! the way cargo clippy sets it up (`RUSTC_WORKSPACE_WRAPPER`, `CLIPPY_ARGS`):
//! the dependencies compile once with plain rustc, each workspace crate once
//! with the lints, and every later cargo command with the same environment
//! (the test run, the binaries the stack starts) finds it all built.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::project::Project;

/// `make test`'s one compile: every target of the workspace.
pub const TEST_BUILD: &[&str] = &["test", "--workspace", "--all-targets", "--locked", "--no-run"];

/// Lints that fail the build, as `cargo clippy -- -D warnings`.
const CLIPPY_ARGS: &[&str] = &["-D", "warnings"];

/// `cargo` (the one running us, if any) with the clippy-driver wrapper set.
pub fn linted() -> Command {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // rustup puts clippy-driver next to cargo; otherwise it must be on PATH.
    let beside = cargo.with_file_name("clippy-driver");
    let driver = if beside.is_file() { beside } else { PathBuf::from("clippy-driver") };
    let mut cmd = Command::new(&cargo);
    // cargo-clippy's own encoding: each argument followed by this separator.
    let args: String = CLIPPY_ARGS.iter().map(|a| format!("{a}__CLIPPY_HACKERY__")).collect();
    cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env("CLIPPY_ARGS", args);
    cmd
}

/// The workspace's binaries (name → executable) as the test build makes
/// them. A `cargo build -p demo-app` would resolve other features for the
/// shared dependencies than the test build (dev-dependencies unify theirs
/// into it) and compile half of them again; after `make test`'s compile step
/// this compiles nothing, and the stack runs the binaries the tests ran.
pub fn workspace_binaries(project: &Project) -> Result<BTreeMap<String, PathBuf>> {
    let mut build = linted();
    build.current_dir(&project.root).args(TEST_BUILD);
    binaries_of(build)
}

/// Runs a cargo build and returns the binaries it reports (name →
/// executable), from its JSON messages.
pub fn binaries_of(mut build: Command) -> Result<BTreeMap<String, PathBuf>> {
    build
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    println!("building: {}", cmd::display(&build));
    let mut child = build.spawn().with_context(|| format!("cannot start `{}`", cmd::display(&build)))?;
    let mut found = BTreeMap::new();
    for line in std::io::BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line?) else { continue };
        let is_binary = message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
        // A binary's unit tests are a `bin` target too, built with the test profile.
        if message["reason"] == "compiler-artifact"
            && is_binary
            && message["profile"]["test"] == false
            && let (Some(name), Some(path)) = (message["target"]["name"].as_str(), message["executable"].as_str())
        {
            found.insert(name.to_string(), PathBuf::from(path));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd::display(&build));
    }
    Ok(found)
}

/// One binary of the workspace, built as `workspace_binaries` builds it.
pub fn binary(project: &Project, name: &str) -> Result<PathBuf> {
    workspace_binaries(project)?.remove(name).with_context(|| format!("cargo reported no executable named {name}"))
}

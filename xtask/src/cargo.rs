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
//! (the test run, the e2e build of demo-app) finds it all built.

use std::path::PathBuf;
use std::process::Command;

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

//! `cargo xtask fuzz` (part of `make test`): every cargo-fuzz target of
//! `crates/demo-app-input/fuzz` (demo-app's parsers of untrusted input) for a
//! bounded time, two at a time, from the seeds in the repository. New inputs
//! and crash artifacts go to a scratch folder, never into the working tree.
//! A crash, a timeout or an out-of-memory fails the step, naming the input.
//!
//! Needs nightly Rust (libFuzzer's instrumentation) and cargo-fuzz, which is
//! installed from crates.io at its pinned version into the tools cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::project::Project;

const CARGO_FUZZ_VERSION: &str = "0.13.2";
const FUZZ_DIR: &str = "crates/demo-app-input/fuzz";
/// Seconds per target in `make test`; `FUZZ_SECONDS` for longer runs.
const DEFAULT_SECONDS: u64 = 10;

/// The instrumented build every target runs from.
pub struct Build {
    cargo_fuzz: PathBuf,
    fuzz_dir: PathBuf,
    targets: Vec<String>,
    target_dir: PathBuf,
}

pub fn run(project: &Project) -> Result<()> {
    run_targets(&build(project)?)
}

/// cargo-fuzz installed (once per machine) and every target built with
/// libFuzzer's instrumentation. `make test` starts it beside the steps
/// before the fuzz step, which mostly wait: on a new machine it is about
/// 150 CPU-s of compiling.
pub fn build(project: &Project) -> Result<Build> {
    cmd::run(Command::new("cargo").args(["+nightly", "--version"]))
        .context("fuzzing needs nightly Rust: `rustup toolchain install nightly`")?;
    let cargo_fuzz = cargo_fuzz(project)?;
    let fuzz_dir = project.root.join(FUZZ_DIR);
    let targets = targets(&fuzz_dir)?;
    // The instrumented build lives in the cache, so a fresh clone (CI) does
    // not rebuild every dependency on nightly.
    let target_dir = project.cache.join("fuzz-target");
    cmd::run(
        fuzz_command(&cargo_fuzz, &fuzz_dir).args(["build", "--sanitizer", "none", "--target-dir"]).arg(&target_dir),
    )?;
    Ok(Build { cargo_fuzz, fuzz_dir, targets, target_dir })
}

/// Every target for `FUZZ_SECONDS` (10 by default), two at a time
/// (libFuzzer uses one core).
pub fn run_targets(build: &Build) -> Result<()> {
    let seconds = match std::env::var("FUZZ_SECONDS") {
        Ok(value) => value.parse().with_context(|| format!("FUZZ_SECONDS={value}: expected seconds"))?,
        Err(_) => DEFAULT_SECONDS,
    };
    let Build { cargo_fuzz, fuzz_dir, targets, target_dir } = build;
    let scratch = tempfile::tempdir()?;
    let mut failures = Vec::new();
    for pair in targets.chunks(2) {
        let results: Vec<(String, Result<u64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|target| {
                    let run = Run { cargo_fuzz, fuzz_dir, target_dir, seconds };
                    let scratch = scratch.path();
                    scope.spawn(move || (target.clone(), run.target(target, scratch)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a fuzz thread does not panic")).collect()
        });
        for (target, result) in results {
            match result {
                Ok(runs) => println!("fuzz {target:<20} ok   {runs:>12} executions in {seconds} s"),
                Err(err) => {
                    println!("fuzz {target:<20} FAIL {err:#}");
                    failures.push(target);
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("fuzzing found failures in {failures:?} (inputs above)");
    }
    Ok(())
}

/// What every target's run shares.
#[derive(Clone, Copy)]
struct Run<'a> {
    cargo_fuzz: &'a Path,
    fuzz_dir: &'a Path,
    target_dir: &'a Path,
    seconds: u64,
}

impl Run<'_> {
    /// libFuzzer's executions of one target, or its failure with the input.
    fn target(self, target: &str, scratch: &Path) -> Result<u64> {
        let found = scratch.join(target);
        std::fs::create_dir_all(&found)?;
        let output = cmd::capture(
            fuzz_command(self.cargo_fuzz, self.fuzz_dir)
                .args(["run", "--sanitizer", "none", "--target-dir"])
                .arg(self.target_dir)
                .arg(target)
                .arg(&found)
                .arg(self.fuzz_dir.join("corpus").join(target))
                .arg("--")
                .arg(format!("-max_total_time={}", self.seconds))
                .args(["-timeout=5", "-rss_limit_mb=1024"])
                .arg(format!("-artifact_prefix={}/", found.display())),
        )?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("libFuzzer stopped ({}):\n{}", output.status, cmd::tail(&output.stderr, &output.stdout, 25));
        }
        executions(&stderr)
            .with_context(|| format!("libFuzzer printed no `Done N runs`:\n{}", cmd::tail(&output.stderr, b"", 10)))
    }
}

/// `Done 5756410 runs in 11 second(s)` -> 5756410.
fn executions(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.strip_prefix("Done ")?.split_whitespace().next()?.parse().ok())
}

fn fuzz_command(cargo_fuzz: &Path, fuzz_dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    let path = std::env::join_paths(
        std::iter::once(cargo_fuzz.parent().map(Path::to_path_buf).unwrap_or_default())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap_or_default();
    command
        .env("PATH", path)
        .current_dir(fuzz_dir.parent().expect("the fuzz folder has a crate"))
        .args(["+nightly", "fuzz"]);
    command
}

/// The `[[bin]]` names of the fuzz crate.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml"))?;
    let names: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_string())
        .filter(|n| n != "demo-app-fuzz")
        .collect();
    if names.is_empty() {
        bail!("{} names no fuzz target", fuzz_dir.join("Cargo.toml").display());
    }
    Ok(names)
}

/// cargo-fuzz at its pinned version, installed from crates.io once. A debug
/// build: it only hands flags to cargo, and compiles in 30 s and 50 CPU-s
/// instead of 47 s and 83 CPU-s (2026-12-06, `cargo install` into an empty root).
fn cargo_fuzz(project: &Project) -> Result<PathBuf> {
    let root = project.tools_dir().join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let binary = root.join("bin/cargo-fuzz");
    if !binary.is_file() {
        println!("installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}", root.display());
        cmd::run(
            Command::new("cargo")
                .args(["install", "cargo-fuzz", "--locked", "--debug", "--version", CARGO_FUZZ_VERSION, "--root"])
                .arg(&root),
        )
        .context("cannot install cargo-fuzz from crates.io")?;
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_executions_and_the_targets() {
        assert_eq!(super::executions("#123 pulse\nDone 5756410 runs in 11 second(s)\n"), Some(5756410));
        assert_eq!(super::executions("==1== ERROR: libFuzzer: deadly signal"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"demo-app-fuzz\"\n[[bin]]\nname = \"order_json\"\n[[bin]]\nname = \"store_name\"\n",
        )
        .unwrap();
        assert_eq!(super::targets(dir.path()).unwrap(), ["order_json", "store_name"]);
    }
}

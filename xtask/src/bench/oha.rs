//! Latency at a fixed rate: oha in open loop (`-q RATE --latency-correction`):
//! requests are scheduled at the rate whatever the server does, and each
//! latency counts from its scheduled send time, so a server that stalls
//! shows its queue in p99 instead of slowing the load down (coordinated
//! omission). oha comes from crates.io, built with `cargo install --locked`
//! into the tool cache the first time the full benchmark needs it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::scenarios::Scenario;
use super::{LOAD_CORE, Load};
use crate::cmd;
use crate::project::Project;

pub const VERSION: &str = "1.16.0";

/// Where the pinned oha lives: `tools/cargo/oha-<version>/bin/oha`.
pub fn binary_path(project: &Project) -> PathBuf {
    project.tools_dir().join("cargo").join(format!("oha-{VERSION}")).join("bin/oha")
}

/// The binary, built first if missing (about 10 minutes on 2 cores).
pub fn ensure(project: &Project) -> Result<PathBuf> {
    let binary = binary_path(project);
    if binary.is_file() {
        return Ok(binary);
    }
    let root = binary.parent().and_then(Path::parent).context("oha path has a root")?.to_path_buf();
    let staging = root.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    println!("building oha {VERSION} (open-loop load generator) into {}; about 10 minutes, once ...", root.display());
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut install = Command::new(cargo);
    // The system OpenSSL instead of rustls' default provider: no C crypto
    // library to compile (the benchmark speaks plain HTTP anyway).
    install
        .args(["install", "--locked", "--no-default-features", "--features", "native-tls"])
        .args(["--version", VERSION, "--root"])
        .arg(&staging)
        .arg("oha")
        // cargo install's own temporary target dir, not the workspace's.
        .env_remove("CARGO_TARGET_DIR");
    cmd::run(&mut install).context(
        "building oha failed; it needs OpenSSL headers and pkg-config (`apt-get install -y libssl-dev pkg-config`)",
    )?;
    let _ = fs::remove_dir_all(&root);
    fs::rename(&staging, &root)?;
    println!("oha built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(binary)
}

/// One fixed-rate run, as reported by oha (latencies in milliseconds).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OhaSummary {
    pub requests_per_second: f64,
    /// Answers, whatever their status.
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Failed requests and answers with another status than the scenario's.
    pub errors: u64,
    /// oha's own words for the failed requests, with their counts.
    pub error_kinds: BTreeMap<String, u64>,
}

pub fn run(oha: &Path, scenario: Scenario, url: &str, load: &Load, duration: Duration) -> Result<OhaSummary> {
    run_with(oha, scenario, url, load, duration, Some(load.rate_for(scenario)))
}

/// Open loop at `rate` requests per second.
pub fn run_at(
    oha: &Path,
    scenario: Scenario,
    url: &str,
    load: &Load,
    duration: Duration,
    rate: u32,
) -> Result<OhaSummary> {
    run_with(oha, scenario, url, load, duration, Some(rate))
}

/// As fast as the server answers (closed loop, like wrk): the throughput of
/// the HTTP/2 scenarios, which wrk cannot speak.
pub fn run_closed_loop(
    oha: &Path,
    scenario: Scenario,
    url: &str,
    load: &Load,
    duration: Duration,
) -> Result<OhaSummary> {
    run_with(oha, scenario, url, load, duration, None)
}

fn run_with(
    oha: &Path,
    scenario: Scenario,
    url: &str,
    load: &Load,
    duration: Duration,
    rate: Option<u32>,
) -> Result<OhaSummary> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", LOAD_CORE])
        .arg(oha)
        .args(["--no-tui", "--output-format", "json", "-w"])
        .args(["-z", &format!("{}s", duration.as_secs().max(1))])
        .args(["-c", &load.connections.to_string()])
        .args(["-m", scenario.method()]);
    if let Some(rate) = rate {
        command.args(["--latency-correction", "-q", &rate.to_string()]);
    }
    if scenario.http2() {
        // Over plain HTTP that is h2c with prior knowledge.
        command.arg("--http2");
    }
    if let Some((content_type, body)) = scenario.body() {
        command.args(["-T", content_type, "-d", &body]);
    }
    command.arg(url);
    let output = cmd::run(&mut command)?;
    parse(&output.stdout, scenario.expected_status())
        .with_context(|| format!("reading the JSON report of `{}`", cmd::display(&command)))
}

#[derive(Deserialize)]
struct Report {
    summary: ReportSummary,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution")]
    status_codes: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution")]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct ReportSummary {
    #[serde(rename = "requestsPerSec")]
    requests_per_sec: f64,
}

/// What oha reports for the requests it still had in flight when the run's
/// time was up (HTTP/2 streams, even with `-w`): the client stopping them,
/// not the server failing them. Kept in `error_kinds`, not in `errors`.
const STOPPED_BY_OHA: &str = "aborted due to deadline";

fn parse(json: &[u8], expected_status: u16) -> Result<OhaSummary> {
    let report: Report = serde_json::from_slice(json).context("not oha's JSON report")?;
    let percentile = |key: &str| -> Result<f64> {
        match report.latency_percentiles.get(key) {
            Some(Some(seconds)) => Ok(seconds * 1000.0),
            _ => bail!("no {key} in latencyPercentiles (no request answered?)"),
        }
    };
    let wrong_status: u64 =
        report.status_codes.iter().filter(|(code, _)| **code != expected_status.to_string()).map(|(_, n)| n).sum();
    Ok(OhaSummary {
        requests_per_second: report.summary.requests_per_sec,
        requests: report.status_codes.values().sum(),
        p50_ms: percentile("p50")?,
        p99_ms: percentile("p99")?,
        p999_ms: percentile("p99.9")?,
        errors: wrong_status
            + report.errors.iter().filter(|(kind, _)| kind.as_str() != STOPPED_BY_OHA).map(|(_, n)| n).sum::<u64>(),
        error_kinds: report.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape oha 1.16 prints with `--output-format json` (trimmed).
    const REPORT: &str = r#"{
      "summary": {"successRate": 0.999, "total": 5.0, "slowest": 0.02, "fastest": 0.0001, "average": 0.0004,
                  "requestsPerSec": 1999.6, "totalData": 100, "sizePerRequest": 10, "sizePerSec": 20.0},
      "latencyPercentiles": {"p10": 0.0002, "p25": 0.00025, "p50": 0.0003, "p75": 0.0004, "p90": 0.0005,
                             "p95": 0.0007, "p99": 0.0012, "p99.9": 0.004, "p99.99": 0.019},
      "statusCodeDistribution": {"200": 9990, "503": 2},
      "errorDistribution": {"connection closed before message completed": 3}
    }"#;

    #[test]
    fn reads_rate_percentiles_and_counts_every_kind_of_error() {
        let summary = parse(REPORT.as_bytes(), 200).unwrap();
        assert!((summary.requests_per_second - 1999.6).abs() < 1e-9);
        assert_eq!(summary.requests, 9992);
        assert!((summary.p50_ms - 0.3).abs() < 1e-9);
        assert!((summary.p99_ms - 1.2).abs() < 1e-9);
        assert!((summary.p999_ms - 4.0).abs() < 1e-9);
        assert_eq!(summary.errors, 5);
        // The same answers are all wrong for a scenario that expects 201.
        assert_eq!(parse(REPORT.as_bytes(), 201).unwrap().errors, 9995);
    }

    #[test]
    fn requests_oha_stopped_at_the_deadline_are_not_server_errors() {
        let report = REPORT.replace("connection closed before message completed", "aborted due to deadline");
        let summary = parse(report.as_bytes(), 200).unwrap();
        assert_eq!(summary.errors, 2, "only the 503s");
        assert_eq!(summary.error_kinds["aborted due to deadline"], 3);
    }

    #[test]
    fn a_report_without_answers_is_an_error() {
        let empty = r#"{"summary": {"requestsPerSec": 0.0}, "latencyPercentiles": {"p50": null},
                        "statusCodeDistribution": {}, "errorDistribution": {"refused": 10}}"#;
        assert!(parse(empty.as_bytes(), 200).is_err());
        assert!(parse(b"Error: connection refused", 200).is_err());
    }
}

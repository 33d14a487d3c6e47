//! gRPC load: ghz (Go module, built by `make tools`) in closed loop, the same
//! number of calls in flight as wrk's connections, on the load core. The
//! call is podinfo's `info.InfoService/Info`, described to ghz by the
//! server's own reflection service (both servers have one).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::wrk::WrkSummary;
use super::{LOAD_CORE, Load};
use crate::cmd;

pub const CALL: &str = "info.InfoService/Info";

pub fn run_closed_loop(ghz: &Path, port: u16, load: &Load, duration: Duration) -> Result<WrkSummary> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", LOAD_CORE])
        .arg(ghz)
        .args(["--insecure", "--call", CALL, "--format", "json"])
        .args(["--concurrency", &load.connections.to_string(), "--connections", &load.connections.to_string()])
        .args(["--duration", &format!("{}s", duration.as_secs().max(1))])
        .arg(format!("127.0.0.1:{port}"));
    let output = cmd::run(&mut command)?;
    summary(&output.stdout, duration, u64::from(load.connections))
        .with_context(|| format!("reading the JSON report of `{}`", cmd::display(&command)))
}

#[derive(Deserialize)]
struct Report {
    count: u64,
    #[serde(rename = "statusCodeDistribution", default)]
    status_codes: std::collections::BTreeMap<String, u64>,
    #[serde(rename = "latencyDistribution", default)]
    latencies: Option<Vec<Percentile>>,
    #[serde(rename = "errorDistribution", default)]
    errors: Option<std::collections::BTreeMap<String, u64>>,
}

#[derive(Deserialize)]
struct Percentile {
    percentage: u32,
    /// Nanoseconds.
    latency: f64,
}

/// ghz's report in wrk's terms: calls other than OK are errors, except
/// the ones in flight when ghz closed its connections at the end of the run
/// (at most one per call in flight: the client stopping them, as oha's
/// deadline): "transport is closing" for a call already sent, "the client
/// connection is closing" for one grpc-go cancels before sending it. ghz
/// gives no 99.9th percentile, so that one stays at its 99th.
/// grpc-go's messages for the calls its own closing connections end.
const CLOSED_BY_CLIENT: [&str; 2] = ["transport is closing", "grpc: the client connection is closing"];

fn summary(json: &[u8], duration: Duration, in_flight: u64) -> Result<WrkSummary> {
    let report: Report = serde_json::from_slice(json)?;
    let ok = report.status_codes.get("OK").copied().unwrap_or(0);
    let cut_off: u64 = report
        .errors
        .iter()
        .flatten()
        .filter(|(why, _)| CLOSED_BY_CLIENT.iter().any(|closed| why.contains(closed)))
        .map(|(_, n)| n)
        .sum();
    if ok == 0 {
        bail!("no call answered OK: {:?}", report.status_codes);
    }
    let at =
        |p: u32| report.latencies.iter().flatten().find(|l| l.percentage == p).map_or(f64::NAN, |l| l.latency / 1000.0);
    let errors = report.count - ok - cut_off.min(in_flight);
    if errors > 0 {
        // The table has a count only: the reasons go to the run's output.
        println!("    ghz: {errors} call(s) failed; ghz's errors: {:?}", report.errors.unwrap_or_default());
    }
    Ok(WrkSummary {
        requests: report.count,
        duration_us: duration.as_micros() as u64,
        errors,
        p50_us: at(50),
        p99_us: at(99),
        p999_us: at(99),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ghz_reports_read_as_wrk_summaries() {
        let json = br#"{"count":1000,"rps":250.0,"statusCodeDistribution":{"OK":958,"Unavailable":42},
            "errorDistribution":{"rpc error: code = Unavailable desc = transport is closing":39,
                "rpc error: code = Canceled desc = grpc: the client connection is closing":1,
                "rpc error: code = Unavailable desc = connection refused":2},
            "latencyDistribution":[{"percentage":50,"latency":200000},{"percentage":99,"latency":1500000}]}"#;
        let summary = super::summary(json, std::time::Duration::from_secs(4), 32).unwrap();
        // 32 cut off by the client at the end (of 40 claimed), 8 + 2 real errors.
        assert_eq!((summary.requests, summary.errors), (1000, 10));
        assert_eq!((summary.p50_us, summary.p99_us), (200.0, 1500.0));
        let failed = br#"{"count":5,"statusCodeDistribution":{"Unavailable":5}}"#;
        assert!(super::summary(failed, std::time::Duration::from_secs(1), 32).is_err());
    }
}

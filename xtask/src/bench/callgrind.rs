//! Instructions per request, counted by callgrind: a figure that does not
//! move with the machine's other load, unlike requests per second. The
//! server runs under valgrind; after a warm-up its counters are zeroed,
//! `requests` requests go one after another on one keep-alive connection,
//! and the counters are dumped per thread. The threads that serve requests
//! (tokio's workers) are told apart from the rest (telemetry export, stdout),
//! so "off the request path" is measured, not assumed.
//!
//! Only the Rust servers: valgrind stops on Go's runtime (podinfo), and
//! CPython under it is a measure of the interpreter. A checkout counts both
//! of its processes (frontend and backend, each under valgrind); HTTP/2
//! needs a client this pass does not have.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::scenarios::Scenario;
use super::servers::{self, Binaries, Endpoints, Kind, Server, Telemetry};
use crate::cmd;
use crate::stack::http;

/// Long enough for the batch span processor to have sent every span queued
/// before.
pub(super) const BATCH_EXPORTED: Duration = servers::SPAN_BATCH_DELAY.saturating_add(Duration::from_secs(1));

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Instructions {
    /// All threads of the process, per request.
    pub per_request: u64,
    /// Only the threads that serve requests, per request.
    pub on_request_threads: u64,
    /// Requests counted.
    pub requests: u32,
}

/// Whether callgrind can measure this case (see the module comment).
pub fn supports(server: &Server, scenario: Scenario) -> bool {
    matches!(server.kind, Kind::DemoApp | Kind::Hyper) && !scenario.http2() && !scenario.grpc()
}

pub fn measure(
    server: &Server,
    scenario: Scenario,
    bins: &Binaries,
    endpoints: &Endpoints,
    dir: &Path,
    requests: u32,
) -> Result<Instructions> {
    let out = dir.join("callgrind.out");
    let out_pattern = format!("--callgrind-out-file={}.%p", out.display());
    let wrap = |command: Command| under_valgrind(command, &["--separate-threads=yes", &out_pattern]);
    let mut running = servers::start_wrapped(server, scenario, bins, endpoints, dir, &wrap)?;
    // Every process of the case: a checkout's frontend and backend.
    let pids = running.pids.clone();
    send(running.port, scenario, requests / 5 + 1).context("warm-up under callgrind")?;
    match server.telemetry {
        Telemetry::CollectorDown => outage_noticed(running.port, scenario).context("warm-up under callgrind")?,
        // The warm-up's spans are exported before the count starts: counted
        // with it, they made the export a request's look 20 % dearer.
        Telemetry::Collector | Telemetry::CollectorHttp => std::thread::sleep(BATCH_EXPORTED),
        Telemetry::Off => {}
    }
    pids.iter().try_for_each(|pid| control("-z", *pid))?;
    send(running.port, scenario, requests)?;
    if server.telemetry != Telemetry::Off {
        // Let the batch span processor take this load's spans before the
        // count is read.
        std::thread::sleep(BATCH_EXPORTED);
    }
    pids.iter().try_for_each(|pid| control("-d", *pid))?;
    running.supervisor.stop_all();
    let (mut total, mut serving) = (0, 0);
    for pid in &pids {
        let (of_all, of_serving) = read_dumps(dir, &format!("callgrind.out.{pid}.1-"))?;
        total += of_all;
        serving += of_serving;
    }
    Ok(Instructions {
        per_request: total / u64::from(requests),
        on_request_threads: serving / u64::from(requests),
        requests,
    })
}

/// `taskset -c CORE program args` becomes `taskset -c CORE valgrind
/// --tool=callgrind OPTIONS program args`.
pub(super) fn under_valgrind(command: Command, options: &[&str]) -> Command {
    let mut args = command.get_args().map(|a| a.to_os_string()).collect::<Vec<_>>().into_iter();
    let mut wrapped = Command::new(command.get_program());
    // taskset's own `-c CORE`.
    wrapped.args(args.by_ref().take(2));
    wrapped.args(["valgrind", "--tool=callgrind"]).args(options).args(args);
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    wrapped
}

/// `count` requests of the scenario, one after another, each answered as expected.
fn send(port: u16, scenario: Scenario, count: u32) -> Result<()> {
    let body = scenario.body();
    let headers: Vec<(&str, &str)> = body.iter().map(|(kind, _)| ("content-type", *kind)).collect();
    for n in 0..count {
        let response =
            http::request(scenario.method(), port, scenario.path(), &headers, body.as_ref().map(|(_, b)| b.as_bytes()))
                .with_context(|| format!("request {n} of {count}"))?;
        if response.status != scenario.expected_status() {
            bail!("{} {} answered {} under callgrind", scenario.method(), scenario.path(), response.status);
        }
    }
    Ok(())
}

/// Under valgrind a request takes long enough that the first failed export
/// (a full batch or the batch delay, then the exporter's retries) may come
/// after the counted requests: warm up until demo-app counts a dropped span,
/// so the count is of an outage, not of its first seconds.
fn outage_noticed(port: u16, scenario: Scenario) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = http::request("GET", port, "/metrics", &[], None)?.text();
        let dropped = metrics
            .lines()
            .find_map(|l| l.strip_prefix("telemetry_dropped_total{signal=\"traces\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if dropped.is_some_and(|n| n > 0) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("with the Collector down, no span was counted as dropped within 120 s (telemetry_dropped_total)");
        }
        send(port, scenario, 20)?;
    }
}

pub(super) fn control(action: &str, pid: u32) -> Result<()> {
    cmd::run(Command::new("callgrind_control").args([action, &pid.to_string()]))
        .map(drop)
        .with_context(|| format!("callgrind_control {action} (valgrind is a Debian tool of `make tools`)"))
}

/// (instructions of every thread, of the request-serving threads) in the
/// dump files `<prefix><thread>` of `dir`.
fn read_dumps(dir: &Path, prefix: &str) -> Result<(u64, u64)> {
    let (mut total, mut serving, mut files) = (0, 0, 0);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let count = dump_total(&text).with_context(|| format!("{} has no totals line", path.display()))?;
        files += 1;
        total += count;
        if serves_requests(&text) {
            serving += count;
        }
    }
    if files == 0 {
        bail!("callgrind wrote no dump named {prefix}* in {}", dir.display());
    }
    Ok((total, serving))
}

fn dump_total(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("totals: ").or_else(|| l.strip_prefix("summary: ")))?.trim().parse().ok()
}

/// A thread of tokio's multi-thread scheduler: where both Rust servers run
/// their connections (demo-app's telemetry has threads of its own).
fn serves_requests(dump: &str) -> bool {
    dump.contains("scheduler::multi_thread::worker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valgrind_goes_between_taskset_and_the_server() {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", "/bin/demo-app", "--port", "1"]).env("OTEL_X", "1");
        let wrapped = under_valgrind(command, &["--separate-threads=yes", "--callgrind-out-file=x.%p"]);
        let args: Vec<_> = wrapped.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "-c",
                "0",
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                "--callgrind-out-file=x.%p",
                "/bin/demo-app",
                "--port",
                "1"
            ]
        );
        assert_eq!(wrapped.get_envs().count(), 1);
    }

    #[test]
    fn dumps_are_summed_and_request_threads_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let worker = "fn=(1) tokio::runtime::scheduler::multi_thread::worker::run\nsummary: 3000\ntotals: 3000\n";
        std::fs::write(dir.path().join("callgrind.out.7.1-02"), worker).unwrap();
        std::fs::write(dir.path().join("callgrind.out.7.1-05"), "fn=(1) export\ntotals: 1000\n").unwrap();
        std::fs::write(dir.path().join("callgrind.out.7-02"), "totals: 99999\n").unwrap();
        assert_eq!(read_dumps(dir.path(), "callgrind.out.7.1-").unwrap(), (4000, 3000));
        assert!(read_dumps(dir.path(), "callgrind.out.8.1-").is_err(), "no dump is an error, not zero");
    }
}

//! The CPU cost of telemetry at one offered load. Every demo-app variant of
//! a scenario runs at once, idle but for its own turn, and their open-loop
//! runs at the same rate take turns: a shared machine's slow drift (other
//! tenants, frequency) then falls on every variant alike, where whole cases
//! run one after another would each meet a different machine.
//!
//! Closed-loop throughput cannot give this figure here: the Collector shares
//! the load generator's core, so with export on wrk sends fewer requests,
//! and a server that is not saturated spends more CPU on each (fewer
//! requests a wake-up).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::oha::{self, OhaSummary};
use super::report::EqualLoad;
use super::scenarios::Scenario;
use super::servers::{self, Binaries, Endpoints, Kind, Server, Telemetry};
use super::stats::Spread;
use super::{Options, procfs};
use crate::stack::process;

/// The scenarios issue 18 sets a telemetry cost for.
const COMPARED: [Scenario; 2] = [Scenario::Info, Scenario::Checkout];

/// CPU per request of each selected demo-app variant of the compared
/// scenarios, when telemetry off is among them.
pub fn compare(
    selected: &[(&'static Server, Scenario)],
    bins: &Binaries,
    endpoints: &Endpoints,
    oha: &Path,
    options: &Options,
    dir: &Path,
) -> Result<Vec<EqualLoad>> {
    let mut rows = Vec::new();
    for scenario in COMPARED {
        let variants: Vec<&Server> = selected
            .iter()
            .filter(|(server, s)| *s == scenario && server.kind == Kind::DemoApp)
            .map(|(server, _)| *server)
            .collect();
        if variants.len() < 2 || !variants.iter().any(|s| s.telemetry == Telemetry::Off) {
            continue;
        }
        let rate = options.load.equal_rate_for(scenario);
        println!(
            "\n{}: CPU per request of {} demo-app variants at {rate} req/s, in turns",
            scenario.title(),
            variants.len()
        );
        let mut running = Vec::new();
        for server in &variants {
            let dir = dir.join(format!("{}-{}", server.id, scenario.id()));
            fs::create_dir_all(&dir)?;
            running.push(servers::start(server, scenario, bins, endpoints, &dir)?);
        }
        let url = |r: &servers::Running| format!("http://127.0.0.1:{}{}", r.port, scenario.path());
        if !options.warmup.is_zero() {
            for r in &running {
                oha::run_at(oha, scenario, &url(r), &options.load, options.warmup, rate).context("warm-up")?;
            }
        }
        let mut runs: Vec<Vec<(OhaSummary, f64)>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..options.runs {
            for (r, runs) in running.iter().zip(&mut runs) {
                process::check_interrupted()?;
                let before = procfs::cpu_seconds(&r.pids)?;
                let summary = oha::run_at(oha, scenario, &url(r), &options.load, options.duration, rate)?;
                runs.push((summary, procfs::cpu_seconds(&r.pids)? - before));
            }
        }
        for (server, r) in variants.iter().zip(&mut running) {
            if let Some((child, status)) = r.supervisor.first_exited() {
                bail!("{} ({}) exited under load ({status}):\n{}", server.id, child.name, child.log_tail(20));
            }
            r.supervisor.stop_all();
        }
        for (server, runs) in variants.iter().zip(&runs) {
            let row = EqualLoad {
                server: server.id.into(),
                scenario,
                rate_rps: rate,
                cpu_us_per_request: cpu_per_request(runs, rate),
                errors: runs.iter().map(|(s, _)| s.errors).sum(),
            };
            let cpu = row.cpu_us_per_request.map_or("rate not sustained".into(), |c| format!("{:.2} µs", c.median));
            println!("  {:<20} {cpu} CPU a request, {} errors", server.id, row.errors);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Microseconds of CPU per request; none unless every run kept to the rate
/// (a server that fell behind was measured at another load).
fn cpu_per_request(runs: &[(OhaSummary, f64)], rate: u32) -> Option<Spread> {
    let sustained = |s: &OhaSummary| s.requests > 0 && s.requests_per_second >= 0.95 * f64::from(rate);
    if runs.is_empty() || !runs.iter().all(|(s, _)| sustained(s)) {
        return None;
    }
    Spread::of(&runs.iter().map(|(s, cpu)| cpu / s.requests as f64 * 1e6).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, requests: u64, cpu: f64) -> (OhaSummary, f64) {
        let summary = OhaSummary {
            requests_per_second: rps,
            requests,
            p50_ms: 0.1,
            p99_ms: 0.2,
            p999_ms: 0.3,
            errors: 0,
            error_kinds: Default::default(),
        };
        (summary, cpu)
    }

    #[test]
    fn cpu_per_request_counts_only_runs_that_kept_the_rate() {
        // 0.5 s of CPU for 50,000 requests: 10 µs each.
        let kept = cpu_per_request(&[run(10_000.0, 50_000, 0.5), run(9_900.0, 49_500, 0.6)], 10_000).unwrap();
        assert!((kept.min - 10.0).abs() < 1e-9, "{kept:?}");
        // One run fell behind the offered load: its server was measured at another one.
        assert!(cpu_per_request(&[run(10_000.0, 50_000, 0.5), run(8_000.0, 40_000, 0.5)], 10_000).is_none());
        assert!(cpu_per_request(&[], 10_000).is_none());
    }
}

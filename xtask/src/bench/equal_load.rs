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
use std::time::Duration;

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
        // CPU is read as each variant's turn starts, so a round charges it
        // with what it did until its next turn: the export of its last
        // spans and log records, which batch delays put after the run.
        let n = running.len();
        let mut readings: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut answered: Vec<Vec<OhaSummary>> = vec![Vec::new(); n];
        let block = rounds_per_block(n);
        for round in 0..options.runs * block {
            // The order rotates each round: no variant always follows another.
            for i in super::in_turns(round, n) {
                process::check_interrupted()?;
                readings[i].push(procfs::cpu_seconds(&running[i].pids)?);
                answered[i].push(oha::run_at(oha, scenario, &url(&running[i]), &options.load, options.duration, rate)?);
            }
        }
        std::thread::sleep(SETTLE);
        for (i, r) in running.iter().enumerate() {
            readings[i].push(procfs::cpu_seconds(&r.pids)?);
        }
        for (server, r) in variants.iter().zip(&mut running) {
            if let Some((child, status)) = r.supervisor.first_exited() {
                bail!("{} ({}) exited under load ({status}):\n{}", server.id, child.name, child.log_tail(20));
            }
            r.supervisor.stop_all();
        }
        for ((server, readings), answered) in variants.iter().zip(&readings).zip(&answered) {
            let row = row(server, scenario, rate, options.duration, readings, answered, block);
            if server.telemetry == Telemetry::Off && !row.sustained {
                bail!(
                    "demo-app without telemetry did not keep to {rate} req/s on {}: lower --equal-rate",
                    scenario.title()
                );
            }
            let cpu = match row.pooled_cpu_us(0..row.cpu_us_per_round.len()) {
                Some(c) if row.sustained => format!("{c:.2} µs"),
                _ => "rate not sustained".into(),
            };
            println!("  {:<20} {cpu} CPU a request, {} errors", server.id, row.errors);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Rounds pooled into one block, the unit a verdict compares: as many as
/// there are variants, so that within a block each variant takes each place
/// in the order once. Three turns of 12 s spread as widely as three of 4 s
/// had (checkout from −14 % to +24 %, info from −11 % to +11 %, 2026-12-07
/// 17:25): the noise is the machine's swings between one variant's turn
/// and another's, which more, shorter turns pooled together average out.
fn rounds_per_block(variants: usize) -> usize {
    variants.max(2)
}

/// Longer than the span batch delay (OTEL_BSP_SCHEDULE_DELAY, 5 s): the
/// last round's spans are exported, and charged, before the last reading.
pub(super) const SETTLE: Duration = Duration::from_millis(5500);

/// One variant's rounds: `readings` has one CPU reading per round start
/// and one after the last round.
fn row(
    server: &Server,
    scenario: Scenario,
    rate: u32,
    duration: Duration,
    readings: &[f64],
    answered: &[OhaSummary],
    rounds_per_block: usize,
) -> EqualLoad {
    let per_round: Vec<f64> = readings
        .windows(2)
        .zip(answered)
        .map(|(cpu, s)| if s.requests > 0 { (cpu[1] - cpu[0]) / s.requests as f64 * 1e6 } else { f64::INFINITY })
        .collect();
    // Answers of any status: a failure is counted in `errors`, not taken
    // for a rate kept. oha's own requests/s also counts deadline aborts.
    let kept = |s: &OhaSummary| s.requests as f64 / duration.as_secs_f64() >= 0.95 * f64::from(rate);
    EqualLoad {
        server: server.id.into(),
        scenario,
        rate_rps: rate,
        sustained: !answered.is_empty() && answered.iter().all(kept),
        cpu_us_per_request: Spread::of(&per_round),
        cpu_us_per_round: per_round,
        requests_per_round: answered.iter().map(|s| s.requests).collect(),
        rounds_per_block,
        errors: answered.iter().map(|s| s.errors).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(requests: u64) -> OhaSummary {
        OhaSummary {
            requests_per_second: requests as f64,
            requests,
            p50_ms: 0.1,
            p99_ms: 0.2,
            p999_ms: 0.3,
            errors: 0,
            error_kinds: Default::default(),
        }
    }

    #[test]
    fn each_round_is_charged_until_the_next_reading_and_a_slow_one_is_not_sustained() {
        let server = Server::by_id("demo-app-otel").unwrap();
        let one_second = Duration::from_secs(1);
        // 0.5 s of CPU for 50,000 requests, then 0.6 s for 50,000: 10 and 12 µs.
        let row =
            row(server, Scenario::Info, 50_000, one_second, &[1.0, 1.5, 2.1], &[answered(50_000), answered(50_000)], 2);
        assert!(row.sustained);
        assert_eq!(row.cpu_us_per_round.len(), 2);
        assert!((row.cpu_us_per_round[0] - 10.0).abs() < 1e-9 && (row.cpu_us_per_round[1] - 12.0).abs() < 1e-9);
        // 40,000 answers in a second at 50,000 offered: measured at another load.
        let slow = row_of(server, &[answered(50_000), answered(40_000)]);
        assert!(!slow.sustained);
        assert!(!row_of(server, &[]).sustained);
    }

    fn row_of(server: &Server, answered: &[OhaSummary]) -> EqualLoad {
        let readings: Vec<f64> = (0..=answered.len()).map(|i| i as f64).collect();
        row(server, Scenario::Info, 50_000, Duration::from_secs(1), &readings, answered, 1)
    }
}

//! `cargo xtask e2e`: the stack on free ports, checkouts through the
//! frontend, then every claim of the observability pipeline checked through
//! the backends' own APIs. Every check runs and is reported (PASS/FAIL with
//! what was expected and what was found); the command fails if any failed.
//!
//! Checks marked `telemetry` need demo-app's OpenTelemetry export; the others
//! hold with the plain Prometheus endpoint.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::app::{self, Role};
use super::ports::socket;
use super::process::{self, poll_until};
use super::{COLLECTOR, Options, Stack, collector, http, jaeger, ports::Choice, prometheus};
use crate::project::Project;
use crate::verify::dashboards;

/// Checkouts whose trace, orders and logs are checked.
const CHECKOUTS: usize = 20;
/// Checkouts per latency sample (Collector up, then down).
const LATENCY_SAMPLE: usize = 200;
const WARM_UP: usize = 20;
/// How long Prometheus gets to scrape what the checkouts did.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long traces, logs and OTLP metrics get to arrive, all together.
const TELEMETRY_TIMEOUT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(500);
/// Dashboards whose queries the e2e runs against the local Prometheus.
const DASHBOARD_TAG: &str = "demo-app";

/// Faster export than the SDK defaults (5 s batches, 60 s metrics), so the
/// test waits seconds, not minutes; a short export timeout so a dead
/// Collector is noticed quickly. Standard OTel SDK variables.
const APP_ENV: &[(&str, &str)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
];

const FRONTEND: &str = super::FRONTEND;
const BACKEND: &str = super::BACKEND;

pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let started = Instant::now();
    let options = Options { ports: Choice::AllFree, scrape_interval: Some("1s"), app_env: APP_ENV.to_vec() };
    let mut stack = Stack::start(project, &options)?;
    println!("stack up in {:.1} s; checking\n", started.elapsed().as_secs_f64());
    let mut report = Report::default();

    report.record("Jaeger query API answers", false, || {
        let services = jaeger::services(stack.ports.jaeger_query_http)?;
        Ok(format!("/api/v3/services = {services:?}"))
    });
    report.record("Collector health_check is 200", false, || {
        collector::ready(&stack.ports)?;
        Ok("ok".into())
    });
    process::check_interrupted()?;

    // The checkouts every later check looks for.
    let mut trace_ids = Vec::new();
    report.record(&format!("{CHECKOUTS} checkouts through the frontend answer 201"), false, || {
        let mut failures = Vec::new();
        for i in 0..CHECKOUTS {
            let (trace_id, parent) = app::new_trace_context();
            let checkout = app::checkout(&stack.ports, &trace_id, &parent, &format!("e2e-{i}"))?;
            if checkout.status != 201 {
                failures.push(format!("#{i}: {} {}", checkout.status, http::abbreviate(&checkout.body, 200)));
            }
            trace_ids.push(trace_id);
        }
        if failures.is_empty() {
            Ok("all 201".into())
        } else {
            bail!("{} failed: {}", failures.len(), failures.join("; "))
        }
    });
    let telemetry_deadline = Instant::now() + TELEMETRY_TIMEOUT;
    let id_set: HashSet<String> = trace_ids.iter().cloned().collect();
    process::check_interrupted()?;

    let prom = stack.ports.prometheus;
    let config = std::fs::read_to_string(stack.dir.join("prometheus/prometheus.yml"))?;
    let expected = prometheus::targets(&config)?.len();
    report.record("Prometheus scrapes every target (up == 1)", false, || {
        poll_until("every target up", SCRAPE_TIMEOUT, POLL, |last| {
            let samples = prometheus::query(prom, "up")?;
            let up: Vec<String> = samples.iter().map(|s| format!("{}={}", label(s, "instance"), s.value)).collect();
            *last = format!("{} of {expected} targets up: {up:?}", samples.iter().filter(|s| s.value == 1.0).count());
            Ok((samples.len() == expected && samples.iter().all(|s| s.value == 1.0)).then(|| up.join(", ")))
        })
    });
    report.record(&format!("orders_created_total (backend) == {CHECKOUTS}"), false, || {
        let promql = r#"sum(orders_created_total{job="demo-app",role="backend"})"#;
        poll_until(promql, SCRAPE_TIMEOUT, POLL, |last| {
            let value = prometheus::query(prom, promql)?.first().map(|s| s.value);
            *last = format!("{promql} = {value:?}");
            match value {
                Some(v) if v == CHECKOUTS as f64 => Ok(Some(format!("{promql} = {v}"))),
                Some(v) if v > CHECKOUTS as f64 => bail!("{promql} = {v}, more than the {CHECKOUTS} checkouts sent"),
                _ => Ok(None),
            }
        })
    });
    report.record("HTTP duration histograms count the requests", false, || {
        let promql = r#"sum by (role, path) (http_request_duration_seconds_count{job="demo-app"})"#;
        let wanted = [("frontend", "api_checkout"), ("backend", "api_orders")];
        poll_until("histogram counts", SCRAPE_TIMEOUT, POLL, |last| {
            let samples = prometheus::query(prom, promql)?;
            let count = |role: &str, path: &str| {
                samples
                    .iter()
                    .find(|s| {
                        s.labels.get("role").map(String::as_str) == Some(role)
                            && s.labels.get("path").map(String::as_str) == Some(path)
                    })
                    .map_or(0.0, |s| s.value)
            };
            let found: Vec<String> = wanted.iter().map(|(r, p)| format!("{r} {p}: {}", count(r, p))).collect();
            *last = format!("expected {CHECKOUTS} each; found {}", found.join(", "));
            if wanted.iter().any(|(r, p)| count(r, p) > CHECKOUTS as f64) {
                bail!("more requests counted than the {CHECKOUTS} checkouts sent: {}", found.join(", "));
            }
            Ok(wanted.iter().all(|(r, p)| count(r, p) == CHECKOUTS as f64).then(|| found.join(", ")))
        })
    });
    report.record("demo-app dashboards: every query returns data", true, || dashboard_queries(project, prom));
    process::check_interrupted()?;

    let jaeger_port = stack.ports.jaeger_query_http;
    report.record(
        &format!("Jaeger: each of the {CHECKOUTS} traces goes frontend server -> client -> backend server -> database"),
        true,
        || trace_check(jaeger_port, &trace_ids, telemetry_deadline),
    );
    let telemetry_dir = stack.telemetry_dir();
    report.record("Collector file exporter: log records carry the request's trace id", true, || {
        poll_until("log records with a checkout's trace id", remaining(telemetry_deadline), POLL, |last| {
            let scan = collector::scan(&telemetry_dir)?;
            let matching: Vec<_> = scan.logs_with_trace(&id_set).collect();
            *last = format!(
                "the files in {} hold {} log record(s) {:?}, none with one of the {} trace ids sent in traceparent \
                 ({} spans, {} metric batches there)",
                telemetry_dir.display(),
                scan.logs.len(),
                scan.log_services(),
                id_set.len(),
                scan.spans,
                scan.metric_batches
            );
            if matching.is_empty() {
                return Ok(None);
            }
            let mut by_service = BTreeMap::<&str, usize>::new();
            for record in &matching {
                *by_service.entry(record.service.as_str()).or_default() += 1;
            }
            let first = matching[0];
            if first.span_id.is_empty() || first.span_id.bytes().all(|b| b == b'0') {
                bail!("log record {:?} has the trace id but no span id", first.body);
            }
            Ok(Some(format!(
                "{} record(s) {by_service:?}, e.g. {:?} trace {} span {}",
                matching.len(),
                first.body,
                first.trace_id,
                first.span_id
            )))
        })
    });
    // Each checkout is one call from the frontend and one INSERT on the
    // backend (OTLP metrics), and one server span in each service (the span
    // metrics the Collector derives; request metrics travel only that way).
    let counts = [
        (
            "OTLP metrics",
            r#"sum by (job) (http_client_request_duration_seconds_count{job=~"(.*/)?demo-app-frontend",http_request_method="POST"}) or sum by (job) (db_client_operation_duration_seconds_count{job=~"(.*/)?demo-app-backend",db_operation_name="INSERT",db_collection_name="orders"})"#,
        ),
        (
            "span metrics",
            r#"sum by (job) (traces_span_metrics_calls_total{job=~"(.*/)?demo-app-(frontend|backend)",span_kind="SPAN_KIND_SERVER",http_route=~"/api/checkout|/api/orders",http_request_method="POST"})"#,
        ),
    ];
    for (what, promql) in counts {
        report.record(
            &format!("Collector -> Prometheus: {what} count the {CHECKOUTS} checkouts in both services"),
            true,
            || {
                poll_until(what, remaining(telemetry_deadline), POLL, |last| {
                    let samples = prometheus::query(prom, promql)?;
                    let jobs: Vec<String> =
                        samples.iter().map(|s| format!("{}={}", label(s, "job"), s.value)).collect();
                    if samples.iter().any(|s| s.value > CHECKOUTS as f64) {
                        bail!("{promql} = {jobs:?}: more than the {CHECKOUTS} checkouts sent");
                    }
                    if samples.len() == 2 && samples.iter().all(|s| s.value == CHECKOUTS as f64) {
                        return Ok(Some(jobs.join(", ")));
                    }
                    let names = prometheus::query(prom, r#"count by (__name__) ({job=~".*demo-app-.+"})"#)?;
                    let names: Vec<&str> =
                        names.iter().filter_map(|s| s.labels.get("__name__").map(String::as_str)).collect();
                    *last = format!("{promql} = {jobs:?}; series the Collector's exporter has: {names:?}");
                    Ok(None)
                })
            },
        );
    }
    process::check_interrupted()?;

    collector_down(&mut stack, &mut report)?;

    let pids = stack.supervisor.pids();
    stack.supervisor.stop_all();
    report.record("every child stopped and reaped", false, || {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| process::is_alive(p)).collect();
        if alive.is_empty() { Ok(format!("{} processes gone", pids.len())) } else { bail!("still alive: {alive:?}") }
    });

    println!("\n{}", report.summary());
    println!("e2e took {:.0} s", started.elapsed().as_secs_f64());
    if report.failed() == 0 {
        stack.remove_dir = true;
        Ok(())
    } else {
        bail!(
            "{} of {} e2e checks failed (logs and telemetry kept in {})",
            report.failed(),
            report.checks.len(),
            stack.dir.display()
        )
    }
}

/// Runs every query of the dashboards tagged `demo-app`
/// (deploy/observability/dashboards), as Grafana would with "All" selected,
/// until each returns at least one series. The recorded series come from
/// the platform's rule files, which the local Prometheus loads.
fn dashboard_queries(project: &Project, prom: u16) -> Result<String> {
    let mut queries = Vec::new();
    for file in dashboards::files(&project.root)? {
        let dashboard = dashboards::load(&file)?;
        let tags = dashboard["tags"].as_array().cloned().unwrap_or_default();
        if !tags.iter().any(|t| t == DASHBOARD_TAG) {
            continue;
        }
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Scrapes are 1 s apart here: a minute holds plenty of samples.
        queries.extend(dashboards::queries(&dashboard, "1m")?.into_iter().map(|q| (name.clone(), q)));
    }
    if queries.is_empty() {
        bail!("no dashboard tagged {DASHBOARD_TAG:?} in {}", dashboards::DASHBOARDS_DIR);
    }
    let total = queries.len();
    poll_until("every dashboard query to return data", SCRAPE_TIMEOUT, POLL, |last| {
        let mut empty = Vec::new();
        for (file, query) in &queries {
            if prometheus::query(prom, &query.expr)?.is_empty() {
                empty.push(format!("{file} {}: {}", query.place, query.expr));
            }
        }
        *last = format!("{} of {total} queries return nothing:\n{}", empty.len(), empty.join("\n"));
        Ok(empty.is_empty().then(|| format!("{total} queries of the {DASHBOARD_TAG:?} dashboards return data")))
    })
}

/// Polls Jaeger until every checkout's trace holds the whole chain.
fn trace_check(port: u16, trace_ids: &[String], deadline: Instant) -> Result<String> {
    let mut complete: BTreeMap<&str, String> = BTreeMap::new();
    poll_until("every checkout trace complete in Jaeger", remaining(deadline), Duration::from_secs(1), |last| {
        let mut incomplete = Vec::new();
        let pending: Vec<&String> = trace_ids.iter().filter(|t| !complete.contains_key(t.as_str())).collect();
        for trace_id in pending {
            match jaeger::trace(port, trace_id)? {
                None => incomplete.push(format!("trace {trace_id}: not in Jaeger")),
                Some(spans) => match jaeger::find_chain(&spans, FRONTEND, BACKEND) {
                    Ok(chain) => {
                        complete.insert(trace_id, chain.describe());
                    }
                    Err(why) => incomplete.push(format!("trace {trace_id} ({} spans): {why}", spans.len())),
                },
            }
        }
        if incomplete.is_empty() {
            let (id, chain) = complete.iter().next().expect("trace ids were sent");
            return Ok(Some(format!(
                "{} of {} traces complete, e.g. trace {id}:\n    {chain}",
                complete.len(),
                trace_ids.len()
            )));
        }
        let services = jaeger::services(port)?;
        *last = format!(
            "{} of {} traces complete; services Jaeger knows: {services:?}; first incomplete: {}",
            complete.len(),
            trace_ids.len(),
            incomplete[0]
        );
        Ok(None)
    })
}

/// Stops the Collector mid-run: checkouts keep succeeding (every one 201),
/// and the apps count what they could not export.
fn collector_down(stack: &mut Stack, report: &mut Report) -> Result<()> {
    let ports = stack.ports;
    let dropped_before = dropped_total(&ports);
    let up = report
        .record_value(&format!("median of {LATENCY_SAMPLE} checkouts, Collector up"), false, || latency_sample(&ports));
    process::check_interrupted()?;
    let status = stack.supervisor.stop(COLLECTOR)?;
    report.record("Collector exits cleanly on SIGTERM under load", false, || {
        if status.success() {
            return Ok(status.to_string());
        }
        let log = stack.dir.join("logs").join(format!("{COLLECTOR}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let panic: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("panic:")).take(10).collect();
        bail!("{status} (expected 0); {}:\n{}", log.display(), panic.join("\n"))
    });
    report.record("Collector stopped (its OTLP port refuses connections)", false, || match TcpStream::connect_timeout(
        &socket(ports.otlp_grpc),
        Duration::from_secs(1),
    ) {
        Ok(_) => bail!("127.0.0.1:{} still accepts connections", ports.otlp_grpc),
        Err(_) => Ok(format!("127.0.0.1:{} refused", ports.otlp_grpc)),
    });
    let down = report.record_value(
        &format!("median of {LATENCY_SAMPLE} checkouts, Collector down (all must answer 201)"),
        false,
        || latency_sample(&ports),
    );
    // A latency comparison on a shared machine is noise, not a verdict: the
    // e2e reports both medians; `make bench` measures the overhead.
    if let (Some(up), Some(down)) = (up, down) {
        println!(
            "      median {:.2} ms up, {:.2} ms down (x{:.2}); not a verdict here",
            ms(up),
            ms(down),
            ratio(down, up)
        );
    }
    process::check_interrupted()?;
    report.record("telemetry_dropped_total rises while the Collector is down", true, || {
        let Some(before) = dropped_before? else {
            bail!("telemetry_dropped_total is not exposed on either app's metrics port (expected a counter with label `signal`)")
        };
        poll_until("telemetry_dropped_total to rise", Duration::from_secs(30), POLL, |last| {
            // Keep producing telemetry while waiting for the exporters to give up on it.
            let (trace_id, parent) = app::new_trace_context();
            app::checkout(&ports, &trace_id, &parent, "e2e-dropped")?;
            let now = dropped_total(&ports)?.unwrap_or(0.0);
            *last = format!("sum over both apps was {before} before the Collector stopped, {now} now");
            Ok((now > before).then(|| format!("{before} -> {now}")))
        })
    });
    Ok(())
}

/// Sum of `telemetry_dropped_total` over both apps, read from their metrics
/// ports; `None` if neither exposes it.
fn dropped_total(ports: &super::ports::Ports) -> Result<Option<f64>> {
    let mut total = None;
    for role in [Role::Frontend, Role::Backend] {
        let response = http::get(role.metrics_port(ports), "/metrics")?;
        for (_, value) in prometheus::exposition_samples(&response.text(), "telemetry_dropped_total") {
            *total.get_or_insert(0.0) += value;
        }
    }
    Ok(total)
}

/// Median latency of sequential checkouts, after a warm-up; fails if any
/// checkout does not answer 201.
fn latency_sample(ports: &super::ports::Ports) -> Result<(Duration, String)> {
    let mut took = Vec::with_capacity(LATENCY_SAMPLE);
    for i in 0..WARM_UP + LATENCY_SAMPLE {
        process::check_interrupted()?;
        let (trace_id, parent) = app::new_trace_context();
        let checkout = app::checkout(ports, &trace_id, &parent, "e2e-latency")?;
        if checkout.status != 201 {
            bail!("checkout #{i} answered {}: {}", checkout.status, http::abbreviate(&checkout.body, 200));
        }
        if i >= WARM_UP {
            took.push(checkout.took);
        }
    }
    took.sort_unstable();
    let median = took[took.len() / 2];
    let p90 = took[took.len() * 9 / 10];
    Ok((median, format!("all 201; median {:.2} ms, p90 {:.2} ms", ms(median), ms(p90))))
}

fn label<'a>(sample: &'a prometheus::Sample, name: &str) -> &'a str {
    sample.labels.get(name).map_or("", String::as_str)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1))
}

struct Check {
    name: String,
    telemetry: bool,
    outcome: Result<String, String>,
    took: Duration,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    /// Runs one check, prints its outcome at once and keeps it for the summary.
    fn record(&mut self, name: &str, telemetry: bool, body: impl FnOnce() -> Result<String>) {
        self.record_value(name, telemetry, || body().map(|detail| ((), detail)));
    }

    /// Like `record`, for a check that also yields a value to later checks.
    fn record_value<T>(
        &mut self,
        name: &str,
        telemetry: bool,
        body: impl FnOnce() -> Result<(T, String)>,
    ) -> Option<T> {
        let started = Instant::now();
        let (value, outcome) = match body() {
            Ok((value, detail)) => (Some(value), Ok(detail)),
            Err(err) => (None, Err(format!("{err:#}"))),
        };
        let check = Check { name: name.to_string(), telemetry, outcome, took: started.elapsed() };
        println!("{}", check.line());
        self.checks.push(check);
        value
    }

    fn failed(&self) -> usize {
        self.checks.iter().filter(|c| c.outcome.is_err()).count()
    }

    fn summary(&self) -> String {
        let mut out = String::from("e2e summary (telemetry = needs demo-app's OpenTelemetry export):\n");
        for check in &self.checks {
            let status = if check.outcome.is_ok() { "PASS" } else { "FAIL" };
            let tag = if check.telemetry { " [telemetry]" } else { "" };
            out.push_str(&format!("  {status}  {}{tag}\n", check.name));
        }
        let failed = self.failed();
        out.push_str(&format!("{} passed, {failed} failed", self.checks.len() - failed));
        out
    }
}

impl Check {
    fn line(&self) -> String {
        let tag = if self.telemetry { " [telemetry]" } else { "" };
        match &self.outcome {
            Ok(detail) => format!("PASS  {}{tag} ({:.1} s): {detail}", self.name, self.took.as_secs_f64()),
            Err(why) => format!(
                "FAIL  {}{tag} ({:.1} s):\n      {}",
                self.name,
                self.took.as_secs_f64(),
                why.replace('\n', "\n      ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_and_explains() {
        let mut report = Report::default();
        report.record("a", false, || Ok("fine".into()));
        report.record("b", true, || bail!("expected 20, found 0"));
        let value = report.record_value("c", false, || Ok((7, "seven".into())));
        assert_eq!(value, Some(7));
        assert_eq!(report.failed(), 1);
        let summary = report.summary();
        assert!(summary.contains("  FAIL  b [telemetry]\n"), "{summary}");
        assert!(summary.ends_with("2 passed, 1 failed"), "{summary}");
        assert!(report.checks[1].line().contains("expected 20, found 0"));
    }
}

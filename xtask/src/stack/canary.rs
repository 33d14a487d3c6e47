//! `cargo xtask canary` (part of `make test`): the canary analysis of the
//! chart, evaluated for real on this machine. Four demo-app backends run on
//! loopback: a stable one and three canaries (healthy, with fault injection
//! on, with `--random-delay`), each scraped by a local Prometheus with the
//! labels the chart's ServiceMonitor gives pods in a cluster (namespace,
//! component, rollouts_pod_template_hash). After traffic to all four, the
//! queries and success conditions of the AnalysisTemplate rendered from the
//! chart (staging values) are run against that Prometheus for each canary:
//! the healthy one must pass, the two faulty ones must fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::ports::{HOST, addr, free_port};
use super::process::{self, Supervisor, poll_until};
use super::{app, http, prometheus};
use crate::cmd;
use crate::project::Project;
use crate::tools;

/// The environment whose rendered AnalysisTemplate is evaluated.
const ENVIRONMENT: &str = "staging";
const NAMESPACE: &str = "demo-app";
const COMPONENT: &str = "backend";
/// How long traffic runs before the analysis (rate() needs samples).
const TRAFFIC: Duration = Duration::from_secs(20);
/// Time between two measurements of one metric (Argo's `interval`, shortened).
const MEASUREMENT_GAP: Duration = Duration::from_secs(2);

struct Backend {
    /// Also the value of rollouts_pod_template_hash.
    hash: &'static str,
    args: &'static [&'static str],
    fault_injection: bool,
    /// Whether the analysis must pass on it.
    healthy: bool,
}

const BACKENDS: &[Backend] = &[
    Backend { hash: "stable", args: &[], fault_injection: false, healthy: true },
    Backend { hash: "canary-healthy", args: &[], fault_injection: false, healthy: true },
    Backend { hash: "canary-fault-injection", args: &[], fault_injection: true, healthy: false },
    Backend {
        hash: "canary-random-delay",
        args: &[
            "--random-delay",
            "--random-delay-unit",
            "ms",
            "--random-delay-min",
            "400",
            "--random-delay-max",
            "800",
        ],
        fault_injection: false,
        healthy: false,
    },
];

/// One metric of the AnalysisTemplate.
#[derive(Debug)]
pub struct Metric {
    pub name: String,
    pub query: String,
    pub success_condition: String,
    pub failure_limit: u64,
}

pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let metrics = analysis_template(project)?;
    let demo_app = app::build(project)?;
    let prometheus_bin = tools::locate(project, "prometheus")?;
    let promtool = tools::locate(project, "promtool")?;
    let argo_condition = tools::locate(project, "argo-condition")?;
    let dir = std::env::temp_dir().join(format!("demo-platform-canary-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("logs"))?;
    let mut supervisor = Supervisor::default();
    let tools = Tools { demo_app, prometheus: prometheus_bin, promtool, argo_condition };
    let result = run_in(&dir, &tools, &metrics, &mut supervisor);
    supervisor.stop_all();
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        println!("logs kept in {}", dir.display());
    }
    result
}

struct Tools {
    demo_app: PathBuf,
    prometheus: PathBuf,
    promtool: PathBuf,
    argo_condition: PathBuf,
}

fn run_in(dir: &Path, tools: &Tools, metrics: &[Metric], supervisor: &mut Supervisor) -> Result<()> {
    let Tools { demo_app, prometheus: prometheus_bin, promtool, argo_condition } = tools;
    let mut ports = Vec::new();
    for backend in BACKENDS {
        let data = dir.join(backend.hash);
        fs::create_dir_all(&data)?;
        let mut command = Command::new(demo_app);
        super::clean_env(&mut command);
        command
            .args([
                "--role",
                "backend",
                "--host",
                HOST,
                "--insecure-dev",
                "--control-endpoints=true",
                "--drain-delay",
                "0s",
            ])
            // Port 0: the process binds and says which ports it got (no
            // window between choosing a port and binding it).
            .args(["--port", "0", "--port-metrics", "0"])
            .arg("--data-path")
            .arg(&data)
            .args(backend.args)
            .env("OTEL_SDK_DISABLED", "true");
        let log = dir.join("logs").join(format!("{}.log", backend.hash));
        supervisor.spawn(backend.hash, command, &log, Duration::from_secs(10))?;
        let (http_port, metrics_port) = app::bound_ports(&log).with_context(|| format!("starting {}", backend.hash))?;
        poll_until(&format!("{} ready", backend.hash), Duration::from_secs(60), Duration::from_millis(100), |last| {
            match http::get(http_port, "/readyz") {
                Ok(r) if r.status == 200 => Ok(Some(())),
                Ok(r) => {
                    *last = format!("/readyz answered {}", r.status);
                    Ok(None)
                }
                Err(err) => {
                    *last = format!("{err:#}");
                    Ok(None)
                }
            }
        })
        .with_context(|| format!("starting {} (log {})", backend.hash, log.display()))?;
        if backend.fault_injection {
            let response = http::request("POST", http_port, "/fault_injection/enable", &[], None)?;
            if !(200..300).contains(&response.status) {
                bail!("{}: POST /fault_injection/enable answered {}", backend.hash, response.status);
            }
        }
        ports.push((backend, http_port, metrics_port));
    }

    let prometheus_port = free_port()?;
    let config = dir.join("prometheus.yml");
    fs::write(&config, scrape_config(&ports.iter().map(|(b, _, m)| (b.hash, *m)).collect::<Vec<_>>()))?;
    cmd::run(Command::new(promtool).args(["check", "config"]).arg(&config))?;
    let mut prom = Command::new(prometheus_bin);
    super::clean_env(&mut prom);
    prom.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()))
        .arg(format!("--web.listen-address={}", addr(prometheus_port)));
    supervisor.spawn("prometheus", prom, &dir.join("logs/prometheus.log"), Duration::from_secs(10))?;
    poll_until("prometheus ready", Duration::from_secs(30), Duration::from_millis(200), |last| {
        match http::get(prometheus_port, "/-/ready") {
            Ok(r) if r.status == 200 => Ok(Some(())),
            other => {
                *last = format!("{:?}", other.map(|r| r.status));
                Ok(None)
            }
        }
    })?;

    println!("driving traffic to {} backends for {} s", ports.len(), TRAFFIC.as_secs());
    drive_traffic(&ports.iter().map(|(_, p, _)| *p).collect::<Vec<_>>(), TRAFFIC)?;

    let mut failures = Vec::new();
    for (backend, _, _) in ports.iter().filter(|(b, _, _)| b.hash != "stable") {
        let verdict = analyse(argo_condition, prometheus_port, metrics, backend.hash)?;
        let expected = if backend.healthy { "pass" } else { "fail" };
        println!("  {}: analysis {} (expected {expected})", backend.hash, if verdict { "passed" } else { "failed" });
        if verdict != backend.healthy {
            failures.push(format!("{}: the analysis should {expected}", backend.hash));
        }
    }
    if !failures.is_empty() {
        bail!("canary analysis: {}", failures.join("; "));
    }
    println!("canary analysis: the healthy canary passes, the faulty ones fail");
    Ok(())
}

/// The canary-health AnalysisTemplate of the chart, rendered as Flux would
/// for `ENVIRONMENT` (chart defaults + values-<env>.yaml).
pub fn analysis_template(project: &Project) -> Result<Vec<Metric>> {
    let helm = tools::locate(project, "helm")?;
    let chart = project.root.join("charts/demo-app");
    let output = cmd::run(
        Command::new(helm)
            .args(["template", "demo-app"])
            .arg(&chart)
            .args(["--namespace", NAMESPACE, "--values"])
            .arg(chart.join(format!("values-{ENVIRONMENT}.yaml"))),
    )?;
    let text = String::from_utf8(output.stdout)?;
    for doc in serde_norway::Deserializer::from_str(&text) {
        let doc: Value = serde::Deserialize::deserialize(doc)?;
        if doc["kind"] != "AnalysisTemplate"
            || !doc["metadata"]["name"].as_str().is_some_and(|n| n.ends_with("-canary-health"))
        {
            continue;
        }
        let metrics = doc["spec"]["metrics"]
            .as_array()
            .context("AnalysisTemplate without metrics")?
            .iter()
            .map(|m| {
                Ok(Metric {
                    name: m["name"].as_str().context("metric without name")?.to_string(),
                    query: m["provider"]["prometheus"]["query"]
                        .as_str()
                        .context("not a Prometheus metric")?
                        .to_string(),
                    success_condition: m["successCondition"].as_str().context("no successCondition")?.to_string(),
                    failure_limit: m["failureLimit"].as_u64().unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(metrics);
    }
    bail!("the chart rendered no *-canary-health AnalysisTemplate for {ENVIRONMENT} (rollouts.enabled?)")
}

/// Every metric, `failure_limit + 1` measurements each, as Argo Rollouts
/// would take them: the analysis fails when a metric fails more often than
/// its failureLimit. Also fails (as an error) if a query finds no data.
fn analyse(argo_condition: &Path, prometheus_port: u16, metrics: &[Metric], hash: &str) -> Result<bool> {
    let mut passed = true;
    for metric in metrics {
        let query = metric
            .query
            .replace("{{args.namespace}}", NAMESPACE)
            .replace("{{args.component}}", COMPONENT)
            .replace("{{args.canary-hash}}", hash);
        if query.contains("{{") {
            bail!("metric {}: an argument is not substituted: {query}", metric.name);
        }
        let mut failed = 0;
        let mut values = Vec::new();
        for _ in 0..=metric.failure_limit {
            let result: Vec<f64> = prometheus::query(prometheus_port, &query)?.iter().map(|s| s.value).collect();
            // NaN is the chart's "no request in the window" (a pass in the
            // cluster); here traffic was sent, so it means the test is broken.
            if result.first().is_none_or(|v| v.is_nan()) {
                bail!(
                    "metric {} for {hash}: no data ({result:?}); is Prometheus scraping it? query: {query}",
                    metric.name
                );
            }
            if !evaluate(argo_condition, &metric.success_condition, &result)? {
                failed += 1;
            }
            values.push(result[0]);
            thread::sleep(MEASUREMENT_GAP);
        }
        let ok = failed <= metric.failure_limit;
        println!(
            "    {:<12} {:<6} values {:?}  condition `{}`\n                 query {}",
            metric.name,
            if ok { "pass" } else { "FAIL" },
            values,
            metric.success_condition,
            query.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        passed &= ok;
    }
    Ok(passed)
}

/// An Argo Rollouts condition over `result` (a Prometheus vector as a list
/// of floats), evaluated by `argo-condition` (tools/argo-condition): the
/// expression library and environment of the Argo Rollouts controller.
/// Err when the condition cannot be evaluated (a measurement error in Argo).
pub fn evaluate(argo_condition: &Path, condition: &str, result: &[f64]) -> Result<bool> {
    let result: Vec<String> = result.iter().map(|v| format!("\"{v}\"")).collect();
    let output = cmd::capture(Command::new(argo_condition).arg(condition).arg(format!("[{}]", result.join(","))))?;
    match (output.status.success(), String::from_utf8_lossy(&output.stdout).trim()) {
        (true, "true") => Ok(true),
        (true, "false") => Ok(false),
        _ => bail!("cannot evaluate `{condition}`: {}", cmd::tail(&output.stderr, &output.stdout, 5)),
    }
}

/// One scrape job per backend, labelled as the ServiceMonitor labels pods.
fn scrape_config(targets: &[(&str, u16)]) -> String {
    let mut out = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
    out.push_str("  - job_name: demo-app\n    static_configs:\n");
    for (hash, port) in targets {
        out.push_str(&format!(
            "      - targets: [\"{}\"]\n        labels:\n          namespace: {NAMESPACE}\n          component: {COMPONENT}\n          rollouts_pod_template_hash: {hash}\n",
            addr(*port)
        ));
    }
    out
}

/// GET /api/info and /version on every backend from one thread each, for `length`.
fn drive_traffic(ports: &[u16], length: Duration) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = ports
        .iter()
        .map(|&port| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = if sent.is_multiple_of(2) { "/api/info" } else { "/version" };
                    let _ = http::get(port, path);
                    sent += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                sent
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < length {
        process::check_interrupted()?;
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for (port, handle) in ports.iter().zip(handles) {
        let sent = handle.join().map_err(|_| anyhow::anyhow!("traffic thread panicked"))?;
        println!("  {sent} requests to 127.0.0.1:{port}");
    }
    Ok(())
}

/// For Prometheus, which cannot report a port it chose: the kernel picks a
/// free one, released just before Prometheus binds it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs argo-condition from `make tools`; `make test` runs it"]
    fn conditions_are_evaluated_as_argo_would() {
        let project = Project::discover().unwrap();
        let tool = tools::locate(&project, "argo-condition").expect("argo-condition is built by `make tools`");
        let c = "isNaN(result[0]) || result[0] >= 0.99";
        assert!(evaluate(&tool, c, &[f64::NAN]).unwrap());
        assert!(evaluate(&tool, c, &[0.995]).unwrap());
        assert!(!evaluate(&tool, c, &[0.5]).unwrap());
        assert!(!evaluate(&tool, "result[0] < 0.3", &[0.8]).unwrap());
        // Argo Rollouts refuses to index an empty result, guarded or not.
        assert!(evaluate(&tool, "len(result) == 0 || result[0] > 1", &[]).is_err());
        assert!(evaluate(&tool, "result[0] >", &[1.0]).is_err());
    }

    #[test]
    #[ignore = "needs helm from `make tools`; `make test` runs it"]
    fn the_chart_renders_the_metrics_this_test_evaluates() {
        let project = Project::discover().unwrap();
        let metrics = analysis_template(&project).expect("helm is built by `make tools`");
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["success-rate", "p99-latency"]);
        for m in &metrics {
            assert!(m.query.contains("{{args.canary-hash}}"), "{}", m.query);
            assert!(m.query.trim_end().ends_with("or on() vector(NaN)"), "never an empty result: {}", m.query);
        }
    }
}

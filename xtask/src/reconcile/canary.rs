//! Progressive delivery on a reconciled environment: the Argo Rollouts controller (a process, workloads.rs) walks a
//! new version's canary through the Istio VirtualService, and its analysis
//! queries a Prometheus behind `prometheus-operated.monitoring` that scrapes
//! real demo-app processes standing in for the Rollouts' pods: one per
//! ReplicaSet with replicas, started with the environment its pod template
//! and ConfigMap give it at that moment (a kubelet reads them at container
//! start), under traffic.
//!
//! (b) a version released to the registry is committed by image automation
//! and walks header route, then every weight, to promotion; (c) a version
//! with fault injection on is aborted because its AnalysisRun failed on
//! success-rate, and stable keeps all the traffic. Scenario (a)'s commit
//! gave the Rollouts a shorter clock (pauses and analysis interval of
//! seconds): the same steps, in a minute instead of half an hour. dev's
//! values leave the Rollouts off; that commit turns them on, as staging's
//! values do.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::checks::Report;
use super::control_plane::ControlPlane;
use super::flux_system::{pushed, request_reconcile};
use super::internet::Internet;
use super::network::Routes;
use super::repository::Repository;
use super::workloads::env_value;
use crate::project::Project;
use crate::stack::http;
use crate::stack::ports::free_port;
use crate::stack::process::{Supervisor, poll_until};
use crate::tools;

const NAMESPACE: &str = "demo-app";
const ROLLOUTS: [&str; 2] = ["demo-app-frontend", "demo-app-backend"];
/// Header step, smoke Job, five weights and four pauses of seconds each.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);
/// The weights of `rollouts.steps` the canary must be seen at.
const WEIGHTS: [u64; 4] = [10, 25, 50, 75];

/// The Rollouts on, with their clock in seconds (under the HelmRelease's
/// `spec.values`).
const SHORT_CLOCK: &str = "    rollouts:
      enabled: true
      pause: 5s
      abortScaleDownDelaySeconds: 5
      analysis:
        interval: 5s
        window: 20s
";

#[allow(clippy::too_many_arguments)]
pub fn run(
    project: &Project,
    env: &str,
    plane: &ControlPlane,
    repo: &Repository,
    routes: &Routes,
    internet: &Internet,
    supervisor: &mut Supervisor,
    report: &mut Report,
) -> Result<()> {
    let dir = plane.dir.join("canary");
    fs::create_dir_all(dir.join("logs"))?;
    let mut pods = Pods::start(project, routes, supervisor, &dir)?;
    let file = values_file(env);
    // Scenario (a) committed them on, with the shorter clock. A Rollout's
    // first revision is stable at once (no canary).
    poll_until(
        "the Rollouts, with the shorter pauses, Healthy",
        Duration::from_secs(120),
        Duration::from_secs(1),
        |last| {
            pods.sync(plane, supervisor)?;
            let Ok(rollout) = plane.admin.get(&["rollout", ROLLOUTS[1], "-n", NAMESPACE]) else {
                *last = "no Rollout yet".into();
                return Ok(None);
            };
            let steps = rollout["spec"]["strategy"]["canary"]["steps"].to_string();
            *last = format!("phase {}, steps {steps}", rollout["status"]["phase"]);
            Ok((steps.contains("\"5s\"") && rollout["status"]["phase"] == "Healthy").then_some(()))
        },
    )?;

    report.step("(b) a released version's canary walks its steps to promotion", || {
        healthy_release(plane, repo, internet, &mut pods, supervisor)
    })?;
    report.row("  its smoke step", "a Job kwok completes: its curl is not run here");
    report.step("(c) a faulty version is aborted by its analysis", || {
        faulty_release(plane, repo, &file, &mut pods, supervisor)
    })?;
    pods.stop();
    Ok(())
}

/// An environment's values (`file`) with the Rollouts on and their clock
/// in seconds.
pub(super) fn with_short_clock(file: &str, values: &str) -> Result<String> {
    let enabled = "    rollouts:\n      enabled: true\n";
    Ok(if values.contains(enabled) {
        values.replace(enabled, SHORT_CLOCK)
    } else if values.contains("\n    rollouts:") {
        bail!("{file} configures the Rollouts in a way this scenario does not expect: update it");
    } else {
        format!("{values}\n{SHORT_CLOCK}")
    })
}

fn values_file(env: &str) -> String {
    format!("deploy/apps/{env}/values.yaml")
}

fn healthy_release(
    plane: &ControlPlane,
    repo: &Repository,
    internet: &Internet,
    pods: &mut Pods,
    supervisor: &mut Supervisor,
) -> Result<()> {
    // Above what dev's scenario (b) released.
    const RELEASED: &str = "99.1.0";
    let watch = TrafficWatch::start(plane, supervisor, "healthy")?;
    internet.publish("example/demo-app", RELEASED);
    // Scan now, as `flux reconcile image repository` does.
    request_reconcile(plane, &["imagerepository/demo-app", "imageupdateautomation/demo-app"])?;
    let before = stable_hash(plane, ROLLOUTS[1])?;
    let mut notified = false;
    poll_until("the canary of the released version promoted", ROLLOUT_TIMEOUT, Duration::from_secs(1), |last| {
        // Image automation's push, announced as ours are (`pushed`), not
        // left to the GitRepository's next interval.
        if !notified && repo.head_subject()?.contains(RELEASED) {
            pushed(plane)?;
            notified = true;
        }
        pods.sync(plane, supervisor)?;
        let rollout = plane.admin.get(&["rollout", ROLLOUTS[1], "-n", NAMESPACE])?;
        let status = &rollout["status"];
        if status["abort"] == true {
            bail!("the healthy canary was aborted: {}", status["message"]);
        }
        *last =
            format!("phase {}, step {}, traffic seen {:?}", status["phase"], status["currentStepIndex"], watch.seen());
        let promoted = status["phase"] == "Healthy" && status["stableRS"] != before && status["stableRS"].is_string();
        Ok(promoted.then_some(()))
    })?;
    let seen = watch.seen();
    watch.stop(supervisor);
    let subject = repo.head_subject()?;
    if !subject.contains(RELEASED) {
        bail!("a canary was promoted, but the last commit is not image automation's for {RELEASED}: {subject}");
    }
    let mut weights: Vec<u64> = Vec::new();
    for (weight, _) in &seen {
        if weights.last() != Some(weight) {
            weights.push(*weight);
        }
    }
    if !seen.iter().any(|(_, header)| *header) {
        bail!(
            "the VirtualService never had the `canary: true` header route (weights seen {weights:?}; its states: {})",
            watch.log.display()
        );
    }
    let mut expected = WEIGHTS.iter().peekable();
    for weight in &weights {
        if expected.peek() == Some(&weight) {
            expected.next();
        }
    }
    if expected.peek().is_some() {
        bail!("the canary's weights were {weights:?}, not each of {WEIGHTS:?} in order");
    }
    // Argo Rollouts marks the Rollout Healthy on the new stable ReplicaSet
    // and hands the traffic back in a later reconcile of the same promotion.
    all_traffic_on_stable(plane, "after promotion")
}

fn faulty_release(
    plane: &ControlPlane,
    repo: &Repository,
    file: &str,
    pods: &mut Pods,
    supervisor: &mut Supervisor,
) -> Result<()> {
    // As image automation left it (the released version of (b)).
    let values = repo.read_file(file)?;
    let config = "    config:\n";
    if !values.contains(config) {
        bail!("{file} no longer has `config:` as this scenario expects: update it");
    }
    let faulty = values.replace(config, "    config:\n      faults:\n        randomError: true\n");
    let before = stable_hash(plane, ROLLOUTS[1])?;
    repo.commit_file(file, &faulty, "fault injection on (a third of the answers 5xx)")?;
    pushed(plane)?;
    let rollout = poll_until("the faulty canary aborted", ROLLOUT_TIMEOUT, Duration::from_secs(1), |last| {
        pods.sync(plane, supervisor)?;
        let rollout = plane.admin.get(&["rollout", ROLLOUTS[1], "-n", NAMESPACE])?;
        let status = &rollout["status"];
        if status["stableRS"] != before {
            bail!("the faulty canary was promoted: stable is now {}", status["stableRS"]);
        }
        *last = format!("phase {}, step {}, abort {}", status["phase"], status["currentStepIndex"], status["abort"]);
        Ok((status["abort"] == true).then_some(rollout))
    })?;
    // The background analysis of the canary's template (the smoke step's
    // run has no success-rate metric).
    let canary = rollout["status"]["currentPodHash"].as_str().unwrap_or_default();
    let runs = plane.admin.get(&["analysisruns", "-n", NAMESPACE])?;
    let run = runs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|run| {
            run["metadata"]["labels"]["rollouts-pod-template-hash"] == canary
                && run["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["name"] == ROLLOUTS[1])
                && run["spec"]["metrics"].as_array().into_iter().flatten().any(|m| m["name"] == "success-rate")
        })
        .with_context(|| {
            format!("the Rollout was aborted, but no AnalysisRun of its canary {canary} measured success-rate")
        })?
        .clone();
    let run_name = run["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let results = run["status"]["metricResults"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&str> =
        results.iter().filter(|m| m["phase"] == "Failed").filter_map(|m| m["name"].as_str()).collect();
    if run["status"]["phase"] != "Failed" || !failed.contains(&"success-rate") {
        bail!(
            "the canary was aborted, but not because its analysis failed on success-rate: AnalysisRun {run_name} is {}, failed metrics {failed:?}",
            run["status"]["phase"]
        );
    }
    all_traffic_on_stable(plane, "after the abort")
}

/// Waits for the backend's VirtualService to send nothing to the canary.
fn all_traffic_on_stable(plane: &ControlPlane, when: &str) -> Result<()> {
    let what = format!("all traffic on stable {when}");
    poll_until(&what, Duration::from_secs(30), Duration::from_secs(1), |last| {
        let (weight, header) = canary_traffic(plane, ROLLOUTS[1])?;
        *last = format!("canary {weight}%, header route {header}");
        Ok((weight == 0 && !header).then_some(()))
    })
}

fn stable_hash(plane: &ControlPlane, rollout: &str) -> Result<Value> {
    Ok(plane.admin.get(&["rollout", rollout, "-n", NAMESPACE])?["status"]["stableRS"].clone())
}

fn canary_traffic(plane: &ControlPlane, name: &str) -> Result<(u64, bool)> {
    Ok(traffic(&plane.admin.get(&["virtualservice", name, "-n", NAMESPACE])?))
}

/// The canary's weight in a VirtualService's weighted routes, and whether
/// its header route is there.
fn traffic(service: &Value) -> (u64, bool) {
    let routes = service["spec"]["http"].as_array().cloned().unwrap_or_default();
    let header = routes.iter().any(|r| r["name"] == "canary-header");
    let weight = routes
        .iter()
        .filter(|r| r["name"] != "canary-header")
        .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["destination"]["subset"] == "canary")
        .filter_map(|d| d["weight"].as_u64())
        .max()
        .unwrap_or(0);
    (weight, header)
}

/// Every state of the backend's VirtualService during a release, from
/// `kubectl get --watch`: a poll misses a state shorter than its period
/// (the header route lasts one smoke Job and one pause, seconds here).
struct TrafficWatch {
    name: String,
    log: PathBuf,
}

impl TrafficWatch {
    /// Returns once the watch has printed the current state.
    fn start(plane: &ControlPlane, supervisor: &mut Supervisor, tag: &str) -> Result<TrafficWatch> {
        let name = format!("watch-virtualservice-{tag}");
        let log = plane.dir.join("canary/logs").join(format!("{name}.json"));
        // Not `Kube::command`: its request timeout would end the watch.
        let mut command = Command::new(&plane.admin.kubectl);
        command.arg("--kubeconfig").arg(&plane.admin.kubeconfig).args([
            "get",
            "virtualservice",
            ROLLOUTS[1],
            "-n",
            NAMESPACE,
            "--watch",
            "--output=json",
        ]);
        supervisor.spawn(&name, command, &log, Duration::from_secs(2))?;
        let watch = TrafficWatch { name, log };
        poll_until("the VirtualService watch started", Duration::from_secs(20), Duration::from_millis(100), |_| {
            Ok((!watch.seen().is_empty()).then_some(()))
        })
        .with_context(|| format!("its output: {}", watch.log.display()))?;
        Ok(watch)
    }

    /// (canary weight, header route) of each state, a repeated one once.
    fn seen(&self) -> Vec<(u64, bool)> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let mut states = Vec::new();
        // Stops at the first value not (yet) complete.
        for service in serde_json::Deserializer::from_str(&text).into_iter::<Value>().map_while(Result::ok) {
            let state = traffic(&service);
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        states
    }

    fn stop(&self, supervisor: &mut Supervisor) {
        let _ = supervisor.stop(&self.name);
    }
}

/// demo-app processes for the Rollouts' ReplicaSets, scraped by Prometheus
/// with the labels the chart's ServiceMonitor gives the pods.
struct Pods {
    demo_app: PathBuf,
    dir: PathBuf,
    /// ReplicaSet name → (its rollouts-pod-template-hash, component, HTTP port, metrics port).
    running: BTreeMap<String, (String, String, u16, u16)>,
    traffic: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
}

impl Pods {
    fn start(project: &Project, routes: &Routes, supervisor: &mut Supervisor, dir: &Path) -> Result<Pods> {
        let prometheus = tools::locate(project, "prometheus")?;
        let port = free_port()?;
        let config = dir.join("prometheus.yml");
        fs::write(&config, prometheus_config(&dir.join("targets.json")))?;
        fs::write(dir.join("targets.json"), "[]")?;
        let mut command = Command::new(prometheus);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        supervisor.spawn("prometheus", command, &dir.join("logs/prometheus.log"), Duration::from_secs(10))?;
        poll_until("prometheus ready", Duration::from_secs(30), Duration::from_millis(200), |_| {
            Ok(http::get(port, "/-/ready").is_ok_and(|r| r.status == 200).then_some(()))
        })?;
        // Where the chart's analysis looks for it (rollouts.analysis.prometheusAddress).
        routes.add("monitoring", "prometheus-operated", 9090, port);

        let traffic = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (targets, done) = (traffic.clone(), stop.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let ports = targets.lock().expect("traffic lock").clone();
                for port in ports {
                    let _ = http::get(port, "/api/info");
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        let demo_app = crate::stack::app::build(project)?;
        Ok(Pods { demo_app, dir: dir.to_path_buf(), running: BTreeMap::new(), traffic, stop })
    }

    /// Starts a process for each ReplicaSet of the Rollouts that has
    /// replicas, stops those of ReplicaSets scaled to zero.
    fn sync(&mut self, plane: &ControlPlane, supervisor: &mut Supervisor) -> Result<()> {
        let sets = plane.admin.get(&["replicasets", "-n", NAMESPACE])?;
        let mut wanted = BTreeMap::new();
        for set in sets["items"].as_array().into_iter().flatten() {
            let owned = set["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["kind"] == "Rollout" && ROLLOUTS.contains(&o["name"].as_str().unwrap_or_default()));
            if owned && set["spec"]["replicas"].as_u64().unwrap_or(0) > 0 {
                wanted.insert(set["metadata"]["name"].as_str().unwrap_or_default().to_string(), set.clone());
            }
        }
        let gone: Vec<String> = self.running.keys().filter(|name| !wanted.contains_key(*name)).cloned().collect();
        for name in gone {
            self.running.remove(&name);
            let _ = supervisor.stop(&format!("pod-{name}"));
        }
        let mut changed = false;
        for (name, set) in wanted {
            if !self.running.contains_key(&name) {
                let pod = self.start_pod(plane, supervisor, &name, &set)?;
                self.running.insert(name, pod);
                changed = true;
            }
        }
        if changed {
            self.publish_targets()?;
        }
        Ok(())
    }

    fn start_pod(
        &self,
        plane: &ControlPlane,
        supervisor: &mut Supervisor,
        name: &str,
        set: &Value,
    ) -> Result<(String, String, u16, u16)> {
        let hash = set["metadata"]["labels"]["rollouts-pod-template-hash"]
            .as_str()
            .with_context(|| format!("ReplicaSet {name} has no rollouts-pod-template-hash label"))?
            .to_string();
        let pod = &set["spec"]["template"]["spec"];
        let container = pod["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["args"].as_array().into_iter().flatten().any(|a| a.as_str().is_some_and(|a| a.starts_with("--role=")))
            })
            .with_context(|| format!("ReplicaSet {name} has no demo-app container"))?;
        let component = container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a.as_str().and_then(|a| a.strip_prefix("--role=")))
            .unwrap_or_default()
            .to_string();
        let mut command = Command::new(&self.demo_app);
        command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        // As a kubelet at container start: the ConfigMap as it is now, then `env`.
        for source in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(map) = source["configMapRef"]["name"].as_str() {
                let map = plane.admin.get(&["configmap", map, "-n", NAMESPACE])?;
                for (key, value) in map["data"].as_object().into_iter().flatten() {
                    command.env(key, value.as_str().unwrap_or_default());
                }
            }
        }
        let account = pod["serviceAccountName"].as_str().unwrap_or("default");
        for variable in container["env"].as_array().into_iter().flatten() {
            // The database Secret comes from CloudNativePG, which is not run:
            // such a variable is left out and the pod uses SQLite.
            if let Ok(Some(value)) = env_value(plane, NAMESPACE, name, account, variable) {
                command.env(variable["name"].as_str().unwrap_or_default(), value);
            }
        }
        let (port, metrics) = (free_port()?, free_port()?);
        let data = self.dir.join(name);
        fs::create_dir_all(&data)?;
        command
            .env("DEMO_APP_HOST", "127.0.0.1")
            .env("DEMO_APP_PORT", port.to_string())
            .env("DEMO_APP_PORT_METRICS", metrics.to_string())
            .env("DEMO_APP_DATA_PATH", &data)
            .env_remove("DEMO_APP_DATABASE_URL")
            .env("OTEL_SDK_DISABLED", "true")
            .args(container["args"].as_array().into_iter().flatten().filter_map(Value::as_str))
            .current_dir(&data);
        let log = self.dir.join("logs").join(format!("{name}.log"));
        supervisor.spawn(&format!("pod-{name}"), command, &log, Duration::from_secs(10))?;
        poll_until(
            &format!("demo-app for ReplicaSet {name} ready"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            |_| Ok(http::get(port, "/readyz").is_ok_and(|r| r.status == 200).then_some(())),
        )
        .with_context(|| format!("log: {}", log.display()))?;
        Ok((hash, component, port, metrics))
    }

    fn publish_targets(&self) -> Result<()> {
        let targets: Vec<Value> = self
            .running
            .values()
            .map(|(hash, component, _, metrics)| {
                json!({"targets": [format!("127.0.0.1:{metrics}")],
                       "labels": {"namespace": NAMESPACE, "component": component, "rollouts_pod_template_hash": hash}})
            })
            .collect();
        // Written aside and renamed: Prometheus never reads half a file.
        let next = self.dir.join("targets.json.next");
        fs::write(&next, serde_json::to_string(&targets)?)?;
        fs::rename(&next, self.dir.join("targets.json"))?;
        *self.traffic.lock().expect("traffic lock") = self.running.values().map(|(_, _, port, _)| *port).collect();
        Ok(())
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn prometheus_config(targets: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo-app\n    \
         file_sd_configs:\n      - files: [\"{}\"]\n        refresh_interval: 1s\n",
        targets.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(weight: u64, header: bool) -> Value {
        let mut http = Vec::new();
        if header {
            http.push(json!({"name": "canary-header", "route": [{"destination": {"subset": "canary"}}]}));
        }
        http.push(json!({"name": "primary", "route": [
            {"destination": {"subset": "stable"}, "weight": 100 - weight},
            {"destination": {"subset": "canary"}, "weight": weight},
        ]}));
        json!({"spec": {"http": http}})
    }

    #[test]
    fn a_watch_log_gives_each_state_once_and_stops_at_a_half_written_one() {
        let dir = std::env::temp_dir().join(format!("traffic-watch-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("watch.json");
        let states = [service(0, false), service(0, false), service(0, true), service(10, false), service(25, false)];
        let mut text: String = states.iter().map(|s| serde_json::to_string_pretty(s).unwrap() + "\n").collect();
        text.push_str("{\n  \"spec\": {");
        fs::write(&log, text).unwrap();
        let watch = TrafficWatch { name: "watch".into(), log };
        assert_eq!(watch.seen(), [(0, false), (0, true), (10, false), (25, false)]);
        fs::remove_dir_all(&dir).unwrap();
    }
}

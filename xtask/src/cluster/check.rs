//! `cargo xtask cluster-check`, after cluster-up: the chart's Helm tests, the
//! smoke checks through the ingress gateway, then a canary run driven by Argo
//! Rollouts' analysis: a good new version is promoted, a faulty one (a third
//! of its answers are 5xx) is aborted and the stable version keeps serving.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{IMAGE_REPOSITORY, bootstrap, build_and_load, poll, which};
use crate::cmd;
use crate::project::Project;

const NAMESPACE: &str = "demo-app";
const HOST: &str = "demo-app.dev.example.com";
const FORWARD_PORT: u16 = 18080;

pub fn run(project: &Project) -> Result<()> {
    for program in ["docker", "kind", "kubectl", "flux", "curl"] {
        which(program).with_context(|| format!("cluster-check needs `{program}` on PATH"))?;
    }
    let helm = bootstrap::helm(project)?;
    println!("==> helm test");
    cmd::run(Command::new(&helm).args(["test", "demo-app", "--namespace", NAMESPACE, "--timeout", "5m", "--logs"]))?;
    println!("==> smoke checks through the ingress gateway");
    smoke()?;
    println!("==> canary: a good version is promoted");
    let version = bootstrap::app_version(project)?;
    let result = canary(project, &version);
    // Whatever happened, Flux takes the cluster back to the working tree.
    for name in ["flux-system", "apps"] {
        let _ = cmd::run(Command::new("flux").args(["resume", "kustomization", name, "--namespace", "flux-system"]));
    }
    result
}

struct PortForward(Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn smoke() -> Result<()> {
    let _forward = PortForward(
        Command::new("kubectl")
            .args(["--namespace", "gateway-system", "port-forward", "service/istio-ingressgateway"])
            .arg(format!("{FORWARD_PORT}:80"))
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start kubectl port-forward")?,
    );
    for path in ["/healthz", "/api/info", "/"] {
        poll(&format!("GET {path} through the gateway to answer 200"), Duration::from_secs(90), || {
            Ok((status(path)? == "200").then_some(()))
        })?;
        println!("    GET {path}: 200");
    }
    Ok(())
}

/// The HTTP status of a GET through the port-forwarded gateway ("000" when
/// nothing answers yet).
fn status(path: &str) -> Result<String> {
    let out = cmd::capture(Command::new("curl").args([
        "--silent",
        "--output",
        "/dev/null",
        "--max-time",
        "5",
        "--write-out",
        "%{http_code}",
        "--header",
        &format!("Host: {HOST}"),
        &format!("http://127.0.0.1:{FORWARD_PORT}{path}"),
    ]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn canary(project: &Project, version: &str) -> Result<()> {
    // Flux would undo the edits below at its next reconciliation.
    for name in ["flux-system", "apps"] {
        cmd::run(Command::new("flux").args(["suspend", "kustomization", name, "--namespace", "flux-system"]))?;
    }
    let good = format!("{version}-canary.good");
    build_and_load(project, &good, &[])?;
    release(&good, false)?;
    poll("the good canary to be promoted", Duration::from_secs(900), || {
        let rollouts = rollouts()?;
        let done = !rollouts.is_empty()
            && rollouts
                .iter()
                .all(|r| r["status"]["phase"] == "Healthy" && r["status"]["stableRS"] == r["status"]["currentPodHash"]);
        // The Rollouts point at their Deployment (workloadRef): the image they
        // run is their stable ReplicaSet's.
        Ok((done && stable_images()?.iter().all(|i| i.ends_with(&good))).then_some(()))
    })?;
    println!("    {good} promoted on every Rollout");

    println!("==> canary: a faulty version is rolled back");
    let faulty = format!("{version}-canary.faulty");
    build_and_load(project, &faulty, &[])?;
    release(&faulty, true)?;
    poll("the faulty canary to be aborted", Duration::from_secs(900), || {
        Ok(rollouts()?.iter().any(|r| r["status"]["abort"] == true).then_some(()))
    })?;
    // Aborted for the reason the fault injection gives: the analysis failed
    // on the success rate, not on anything else (a crash, a timeout).
    let runs = cmd::run(Command::new("kubectl").args([
        "--namespace",
        NAMESPACE,
        "get",
        "analysisruns.argoproj.io",
        "--output",
        "json",
    ]))?;
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout)?;
    let failed_on = failed_metrics(&runs);
    if !failed_on.iter().any(|m| m == FAILING_METRIC) {
        bail!("the canary was aborted, but no AnalysisRun failed on {FAILING_METRIC} (failed metrics: {failed_on:?})");
    }
    let stable = stable_images()?;
    if stable.iter().any(|i| !i.ends_with(&good)) {
        bail!("after the abort, the stable pods run {stable:?}; expected {IMAGE_REPOSITORY}:{good}");
    }
    println!("    {faulty} aborted by the analysis; stable pods still run {good}");
    Ok(())
}

/// Points the HelmRelease at `tag` (with fault injection when `faulty`) and
/// has helm-controller upgrade now.
fn release(tag: &str, faulty: bool) -> Result<()> {
    let mut patch = vec![serde_json::json!({"op": "replace", "path": "/spec/values/image/tag", "value": tag})];
    patch
        .push(serde_json::json!({"op": "add", "path": "/spec/values/config/faults", "value": {"randomError": faulty}}));
    cmd::run(Command::new("kubectl").args([
        "--namespace",
        NAMESPACE,
        "patch",
        "helmreleases.helm.toolkit.fluxcd.io",
        "demo-app",
        "--type=json",
        "--patch",
        &serde_json::to_string(&patch)?,
    ]))?;
    cmd::run(Command::new("flux").args([
        "reconcile",
        "helmrelease",
        "demo-app",
        "--namespace",
        NAMESPACE,
        "--timeout=10m",
    ]))?;
    Ok(())
}

fn rollouts() -> Result<Vec<serde_json::Value>> {
    let out = cmd::run(Command::new("kubectl").args([
        "--namespace",
        NAMESPACE,
        "get",
        "rollouts.argoproj.io",
        "--output",
        "json",
    ]))?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// The metric the faulty version's injected 5xx answers must fail.
const FAILING_METRIC: &str = "success-rate";

/// Names of the metrics that failed in failed AnalysisRuns.
fn failed_metrics(runs: &serde_json::Value) -> Vec<String> {
    let failed = |v: &serde_json::Value| v["phase"] == "Failed";
    let runs = runs["items"].as_array().into_iter().flatten().filter(|r| failed(&r["status"]));
    runs.flat_map(|r| r["status"]["metricResults"].as_array().into_iter().flatten().filter(|m| failed(m)))
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect()
}

/// The application image of each Rollout's stable ReplicaSet (the
/// ReplicaSet Argo Rollouts made from the referenced Deployment's template).
fn stable_images() -> Result<Vec<String>> {
    let mut images = Vec::new();
    for rollout in rollouts()? {
        let hash = rollout["status"]["stableRS"].as_str().context("a Rollout has no stable ReplicaSet")?;
        let out = cmd::run(Command::new("kubectl").args([
            "--namespace",
            NAMESPACE,
            "get",
            "replicasets",
            "--selector",
            &format!("rollouts-pod-template-hash={hash}"),
            "--output",
            "jsonpath={range .items[*]}{.spec.template.spec.containers[?(@.name==\"demo-app\")].image}{\"\\n\"}{end}",
        ]))?;
        images.extend(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    if images.is_empty() {
        bail!("no stable ReplicaSet found in namespace {NAMESPACE}");
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_metrics_of_failed_runs_count() {
        let runs = serde_json::json!({"items": [
            {"status": {"phase": "Failed", "metricResults": [
                {"name": "success-rate", "phase": "Failed"}, {"name": "p99-latency", "phase": "Successful"}]}},
            {"status": {"phase": "Successful", "metricResults": [{"name": "x", "phase": "Failed"}]}}]});
        assert_eq!(failed_metrics(&runs), ["success-rate"]);
    }
}

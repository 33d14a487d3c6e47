//! What "reconciled" means, checked against the API server: every Flux
//! Kustomization and HelmRelease Ready (with the time it took), every
//! workload available on the simulated nodes, no policy violation in the
//! PolicyReports, no warning event from Flux, no call to a Service that no
//! process serves. Printed as one table per environment.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;

use super::control_plane::ControlPlane;
use super::internet::Internet;
use super::kube::{name_of, ready_condition};
use super::kubelet;
use super::network::Routes;
use super::workloads::{NOT_RUN, PARTLY_RECONCILED, Running};
use crate::stack::process::{Supervisor, check_interrupted};

pub struct Report {
    env: String,
    started: Instant,
    /// (what, seconds since start, outcome).
    rows: Vec<(String, f64, String)>,
    pub peak_rss_kib: u64,
}

impl Report {
    pub fn new(env: &str) -> Self {
        Report { env: env.to_string(), started: Instant::now(), rows: Vec::new(), peak_rss_kib: 0 }
    }

    pub(super) fn row(&mut self, what: impl Into<String>, outcome: impl Into<String>) {
        self.rows.push((what.into(), self.started.elapsed().as_secs_f64(), outcome.into()));
    }

    /// Runs one bring-up step, recording its time and outcome.
    pub fn step<T>(&mut self, what: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = body();
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(err) => format!("FAILED: {err:#}"),
        };
        self.row(what, outcome);
        result
    }

    pub fn print(&self, total: Duration) {
        println!(
            "\nreconcile {}: {:.0} s, peak RSS of every process {} MiB",
            self.env,
            total.as_secs_f64(),
            self.peak_rss_kib / 1024
        );
        let width = self.rows.iter().map(|(w, _, _)| w.len()).max().unwrap_or(0);
        println!("{:<width$}  {:>7}  outcome", "step", "at s");
        for (what, at, outcome) in &self.rows {
            println!("{what:<width$}  {at:>7.1}  {outcome}");
        }
    }
}

const FLUX_KINDS: &[(&str, &str)] = &[
    ("kustomizations.kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helmreleases.helm.toolkit.fluxcd.io", "HelmRelease"),
];

/// Polls until every Kustomization and HelmRelease the repository defines
/// for this environment is Ready, calling `tick` each round (it starts the
/// controllers whose Deployments have appeared and reports what it did).
pub fn wait_ready(
    plane: &ControlPlane,
    expected: &[(String, String)],
    timeout: Duration,
    report: &mut Report,
    mut tick: impl FnMut() -> Result<Vec<(String, &'static str)>>,
) -> Result<()> {
    let began = Instant::now();
    let deadline = began + timeout;
    let mut ready: BTreeMap<(String, String), ()> = BTreeMap::new();
    let mut last: BTreeMap<(String, String), String> = BTreeMap::new();
    loop {
        check_interrupted()?;
        for (what, outcome) in tick()? {
            report.row(what, outcome);
        }
        for (resource, kind) in FLUX_KINDS {
            for object in plane.admin.list(resource)? {
                let key = (kind.to_string(), name_of(&object));
                if ready.contains_key(&key) {
                    continue;
                }
                match ready_condition(&object) {
                    Some((status, _, message)) if status == "True" => {
                        let at = began.elapsed().as_secs_f64();
                        report.row(
                            format!("{kind} {}", key.1),
                            format!("Ready at {at:.0} s: {}", abbreviate(&message, 90)),
                        );
                        ready.insert(key, ());
                    }
                    Some((_, reason, message)) => {
                        last.insert(key, format!("{reason}: {message}"));
                    }
                    None => {
                        last.insert(key, "no Ready condition yet".into());
                    }
                }
            }
        }
        let missing: Vec<&(String, String)> = expected.iter().filter(|k| !ready.contains_key(*k)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut lines = Vec::new();
            for key in &missing {
                let state = last.get(*key).map(String::as_str).unwrap_or("not created");
                report.row(format!("{} {}", key.0, key.1), format!("NOT READY: {}", abbreviate(state, 300)));
                lines.push(format!("  {} {}: {}", key.0, key.1, abbreviate(state, 600)));
            }
            let refusals = admission_refusals(plane);
            let refusals = if refusals.is_empty() {
                String::new()
            } else {
                format!("\nrefused at admission (from the events):\n  {}", refusals.join("\n  "))
            };
            bail!(
                "{} of {} Flux objects not Ready within {:.0} s:\n{}{refusals}",
                missing.len(),
                expected.len(),
                timeout.as_secs_f64(),
                lines.join("\n")
            );
        }
        thread::sleep(Duration::from_secs(2));
    }
}

/// Objects a controller could not create because an admission webhook or
/// policy denied them (a ReplicaSet's pods, a Job's), from the Warning
/// events: what the API server said, once per distinct message.
fn admission_refusals(plane: &ControlPlane) -> Vec<String> {
    let mut seen = BTreeMap::new();
    for event in plane.admin.list("events").unwrap_or_default() {
        let message = event["message"].as_str().unwrap_or_default();
        if event["type"] == "Warning" && (message.contains("denied the request") || message.contains("forbidden")) {
            seen.entry(abbreviate(message, 400)).or_insert_with(|| involved(&event));
        }
    }
    seen.into_iter().map(|(message, object)| format!("{object}: {message}")).collect()
}

/// Once Flux is done: the workloads, the policy reports, the events and
/// the cluster network's refusals.
pub fn final_state(
    plane: &ControlPlane,
    routes: &Routes,
    internet: &Internet,
    controllers: &Running,
    report: &mut Report,
) -> Result<()> {
    let mut problems = Vec::new();

    let forbidden = controllers.forbidden();
    report.row("controllers' API calls", format!("{} controllers refused by RBAC", forbidden.len()));
    for (controller, count, first) in forbidden {
        problems
            .push(format!("{controller}: {count} API calls forbidden by its RBAC, e.g. {}", abbreviate(&first, 300)));
    }

    let mut workloads = 0;
    for kind in ["deployments", "statefulsets", "daemonsets"] {
        for object in plane.admin.list(kind)? {
            workloads += 1;
            if let Some(why) = unavailable(kind, &object) {
                problems.push(format!("{kind} {}: {why}", name_of(&object)));
            }
        }
    }
    report.row(format!("{workloads} workloads"), "checked available on the kwok nodes");

    // kwok starts pods whose Secrets a kubelet would wait for forever.
    let objects = kubelet::Objects::new(
        &plane.admin.list("secrets")?,
        &plane.admin.list("configmaps")?,
        &plane.admin.list("persistentvolumeclaims")?,
    );
    let pods = plane.admin.list("pods")?;
    let mut unresolved = 0;
    // The pods of a controller not run here wait for what its Helm hook
    // Jobs would have created (kwok completes Jobs without running them).
    let of_not_run = |pod: &Value| {
        NOT_RUN.iter().any(|(namespace, deployment, _, _)| {
            pod["metadata"]["namespace"] == *namespace
                && pod["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|owner| {
                    owner["kind"] == "ReplicaSet"
                        && owner["name"].as_str().is_some_and(|n| n.starts_with(&format!("{deployment}-")))
                })
        })
    };
    let checked: Vec<&Value> = pods.iter().filter(|pod| !of_not_run(pod)).collect();
    for pod in &checked {
        for why in kubelet::unresolved(pod, &objects) {
            unresolved += 1;
            problems.push(format!("pod {}: {why} (a kubelet would not start it)", name_of(pod)));
        }
    }
    report.row(
        format!("{} pods", checked.len()),
        format!(
            "checked: every Secret, ConfigMap and claim they name exists ({unresolved} missing; {} pods of controllers not run not checked)",
            pods.len() - checked.len()
        ),
    );

    let mut results = 0;
    let mut offline = 0;
    for resource in ["policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io"] {
        for object in plane.admin.list(resource)? {
            for result in object["results"].as_array().into_iter().flatten() {
                results += 1;
                let message = result["message"].as_str().unwrap_or_default();
                // Image signatures live in the registry, which has no images
                // on loopback: an error reaching it is reported, not failed.
                if result["result"] == "error" && message.contains("dial tcp") {
                    offline += 1;
                } else if matches!(result["result"].as_str(), Some("fail" | "error")) {
                    problems.push(format!(
                        "policy {} {} on {}: {}",
                        result["policy"].as_str().unwrap_or("?"),
                        result["result"].as_str().unwrap_or("?"),
                        reference(&object["scope"]),
                        abbreviate(result["message"].as_str().unwrap_or_default(), 200)
                    ));
                }
            }
        }
    }
    report.row(format!("{results} policy report results"), "checked: none fail");
    if offline > 0 {
        report.row(
            format!("{offline} policy results"),
            "NOT VERIFIABLE HERE: they read image signatures from a registry the loopback cluster cannot reach",
        );
    }

    let (mut warnings, mut recovered) = (0, Vec::new());
    for event in plane.admin.list("events")? {
        let source = event["source"]["component"].as_str().or(event["reportingComponent"].as_str()).unwrap_or("");
        if event["type"] != "Warning" || !is_flux(source) {
            continue;
        }
        warnings += 1;
        let what = format!(
            "event from {source} on {}: {}",
            involved(&event),
            abbreviate(event["message"].as_str().unwrap_or_default(), 200)
        );
        // Flux retries what failed (a webhook that timed out on a busy
        // machine, a health check); an object Ready since the warning got
        // over it, and the table still shows the warning.
        match involved_object(plane, &event) {
            Some(object) if ready_since(&object, &event) => recovered.push(what),
            _ => problems.push(what),
        }
    }
    report.row("Flux events", format!("{warnings} warnings, {} of them on objects Ready since", recovered.len()));
    for what in recovered {
        report.row("  recovered", what);
    }

    // A webhook of a controller that is not run: with failurePolicy Fail
    // the object is refused (and Flux is not Ready, above); with Ignore it
    // is admitted unvalidated, which the table says.
    let refused = routes.refused();
    report.row("calls to Services", format!("{} kinds of call refused (no process listened)", refused.len()));
    for (reason, count) in refused {
        report.row("  refused", format!("{count}×: {reason}"));
    }
    match super::readmission::readmit(plane, routes) {
        Ok(readmitted) => {
            for done in readmitted {
                report.row(
                    format!("admitted again: {}", done.configuration),
                    format!(
                        "{} objects ({}) admitted by its webhook now it serves",
                        done.objects,
                        done.resources.join(", ")
                    ),
                );
            }
        }
        Err(err) => problems.push(format!("{err:#}")),
    }
    if plane.admin.get(&["crd", "prometheusrules.monitoring.coreos.com"]).is_ok() {
        match super::readmission::broken_rule_is_refused(plane, "monitoring") {
            Ok(_) => report.row("a broken PrometheusRule", "refused by the Prometheus Operator's webhook"),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    for (namespace, deployment, why, kinds) in NOT_RUN {
        if plane.admin.get(&["deployment", deployment, "-n", namespace]).is_err() {
            continue;
        }
        let mut objects = Vec::new();
        for kind in *kinds {
            let count = plane.admin.list(kind).map(|items| items.len()).unwrap_or(0);
            if count > 0 {
                objects.push(format!("{count} {}", kind.split('.').next().unwrap_or(kind)));
            }
        }
        let objects = if objects.is_empty() { "none here".to_string() } else { objects.join(", ") };
        report.row(format!("not run: {namespace}/{deployment}"), format!("{why}; NOT RECONCILED: {objects}"));
    }

    for (kind, why) in PARTLY_RECONCILED {
        for object in plane.admin.list(kind)? {
            let phase = object["status"]["phase"].as_str().unwrap_or("no status yet");
            let short = kind.split('.').next().unwrap_or(kind);
            report.row(format!("{short} {}", name_of(&object)), format!("phase {phase:?}; NOT RECONCILED: {why}"));
        }
    }

    // Calls to the internet other than the stand-in registry: what a
    // connected cluster would do and this one cannot (reported, not failed).
    let outside = internet.refused();
    report.row(
        "calls to the internet",
        if outside.is_empty() {
            "none but the registry".to_string()
        } else {
            format!("{} refused: {}", outside.len(), abbreviate(&outside.join("; "), 300))
        },
    );

    if !problems.is_empty() {
        bail!("{} problem(s) after Flux reported Ready:\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

/// `Kind namespace/name` of the object an event is about.
fn involved(event: &Value) -> String {
    reference(&event["involvedObject"])
}

/// `Kind namespace/name` of an object reference (an event's object, a report's scope).
fn reference(object: &Value) -> String {
    let field = |k: &str| object[k].as_str().unwrap_or_default();
    match field("namespace") {
        "" => format!("{} {}", field("kind"), field("name")),
        namespace => format!("{} {namespace}/{}", field("kind"), field("name")),
    }
}

/// The object a Flux event is about, as it is now.
fn involved_object(plane: &ControlPlane, event: &Value) -> Option<Value> {
    let object = &event["involvedObject"];
    let group = object["apiVersion"].as_str()?.split('/').next()?;
    let resource = format!("{}.{group}", object["kind"].as_str()?.to_lowercase());
    plane.admin.get(&[&resource, object["name"].as_str()?, "-n", object["namespace"].as_str()?]).ok()
}

/// Whether `object` has been Ready since `event` was last reported.
/// Both times are RFC 3339 in UTC to the second, so they compare as text.
fn ready_since(object: &Value, event: &Value) -> bool {
    let mut conditions = object["status"]["conditions"].as_array().into_iter().flatten();
    let Some(ready) = conditions.find(|c| c["type"] == "Ready" && c["status"] == "True") else {
        return false;
    };
    let seen = event["lastTimestamp"].as_str().or(event["eventTime"].as_str()).unwrap_or_default();
    let since = ready["lastTransitionTime"].as_str().unwrap_or_default();
    !seen.is_empty() && since >= seen
}

fn is_flux(component: &str) -> bool {
    matches!(component, "kustomize-controller" | "helm-controller" | "source-controller" | "notification-controller")
}

fn unavailable(kind: &str, object: &Value) -> Option<String> {
    let status = &object["status"];
    let want = object["spec"]["replicas"].as_u64().unwrap_or(1);
    let number = |field: &str| status[field].as_u64().unwrap_or(0);
    match kind {
        "deployments" if number("availableReplicas") < want => {
            Some(format!("{} of {want} replicas available", number("availableReplicas")))
        }
        "statefulsets" if number("readyReplicas") < want => {
            Some(format!("{} of {want} replicas ready", number("readyReplicas")))
        }
        "daemonsets"
            if number("numberReady") < number("desiredNumberScheduled") || number("desiredNumberScheduled") == 0 =>
        {
            Some(format!("{} of {} pods ready", number("numberReady"), number("desiredNumberScheduled")))
        }
        _ => None,
    }
}

fn abbreviate(text: &str, max: usize) -> String {
    let line = text.replace('\n', " ");
    if line.chars().count() <= max { line } else { format!("{}…", line.chars().take(max).collect::<String>()) }
}

/// On failure: the state of the Flux objects and pods, and the end of
/// every component's log (bounded).
pub fn print_diagnostics(plane: &ControlPlane, supervisor: &mut Supervisor) {
    for args in [
        &["get", "kustomizations,helmreleases,helmrepositories,gitrepositories", "-A"][..],
        &["get", "pods", "-A", "--field-selector=status.phase!=Running"][..],
        // Why a release failed (Helm's wait names what was not ready)
        // lives in its events, not in the status shown above.
        &["get", "events", "-A", "--field-selector=type=Warning", "--sort-by=.lastTimestamp"][..],
    ] {
        println!("\n$ kubectl {}", args.join(" "));
        match plane.admin.run(args) {
            Ok(text) => {
                // The header and the last 60 lines (events are oldest first).
                let all: Vec<&str> = text.lines().collect();
                let tail = all.len().saturating_sub(60).max(1);
                let lines: Vec<String> =
                    all.iter().take(1).chain(all.iter().skip(tail)).map(|l| abbreviate(l, 600)).collect();
                println!("{}", lines.join("\n"));
            }
            Err(err) => println!("({err:#})"),
        }
    }
    for (name, tail) in supervisor.log_tails(12) {
        let lines: Vec<String> = tail.lines().map(|l| abbreviate(l, 300)).collect();
        println!("\n--- {name} (last lines of its log)\n{}", lines.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ready_since;

    fn ready(status: &str, since: &str) -> serde_json::Value {
        json!({"status": {"conditions": [{"type": "Ready", "status": status, "lastTransitionTime": since}]}})
    }

    #[test]
    fn a_warning_counts_as_recovered_only_when_ready_came_after_it() {
        let warning = json!({"lastTimestamp": "2026-12-06T22:04:13Z"});
        assert!(ready_since(&ready("True", "2026-12-06T22:04:40Z"), &warning));
        assert!(!ready_since(&ready("True", "2026-12-06T22:03:59Z"), &warning), "Ready before the warning");
        assert!(!ready_since(&ready("False", "2026-12-06T22:04:40Z"), &warning), "not Ready now");
        assert!(!ready_since(&json!({}), &warning), "no conditions");
        assert!(!ready_since(&ready("True", "2026-12-06T22:04:40Z"), &json!({})), "a warning without a time");
    }
}

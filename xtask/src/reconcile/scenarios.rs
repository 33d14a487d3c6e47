//! Delivery scenarios on a reconciled environment, each a commit to the
//! served repository (as a developer's push) and an assertion on the final
//! state and its cause, read from the API server.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::canary;
use super::checks::Report;
use super::control_plane::ControlPlane;
use super::flux_system::pushed;
use super::kube::ready_condition;
use super::repository::Repository;
use crate::stack::process::poll_until;

/// A change is applied within one sync interval of the GitRepository,
/// plus the time the chain of Kustomizations and the HelmRelease takes,
/// and one retry of a failed apply (the apps Kustomization retries after
/// a minute) on a machine that runs other checks beside this one.
const APPLY_TIMEOUT: Duration = Duration::from_secs(180);

const VALUES: &str = "deploy/apps/dev/values.yaml";
const KUSTOMIZATION: &str = "deploy/apps/dev/kustomization.yaml";
const EXTRA: &str = "deploy/apps/dev/reconcile-scenario.yaml";
const MARKER: &str = "reconciled on loopback";

pub fn run(project_root: &std::path::Path, plane: &ControlPlane, repo: &Repository, report: &mut Report) -> Result<()> {
    let values = std::fs::read_to_string(project_root.join(VALUES))?;
    let kustomization = std::fs::read_to_string(project_root.join(KUSTOMIZATION))?;
    report.step("(a) a committed value is applied", || committed_value(plane, repo, &values, &kustomization))?;
    report.step("(d) a pod without limits is refused", || refused_by_policy(plane, repo, &kustomization))?;
    report.step("(e) a removed object is pruned", || pruned(plane))?;
    Ok(())
}

/// The dev UI message changes, and a ConfigMap is added beside it (pruned in
/// (e)). The same push turns the Rollouts on for canary.rs, with a clock in
/// seconds (one cycle of Flux less than a push of its own).
fn committed_value(plane: &ControlPlane, repo: &Repository, values: &str, kustomization: &str) -> Result<()> {
    let original = "uiMessage: greetings from demo-app (dev)";
    if !values.contains(original) {
        bail!("{VALUES} no longer has `{original}`: update this scenario");
    }
    let values = canary::with_short_clock(VALUES, &values.replace(original, &format!("uiMessage: {MARKER}")))?;
    repo.commit_file(VALUES, &values, "dev: new UI message; Rollouts with a clock in seconds (loopback)")?;
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: reconcile-scenario\n  namespace: demo-app\n\
                 data:\n  note: pruned when this file goes\n";
    repo.commit_file(EXTRA, extra, "dev: one more object")?;
    repo.commit_file(KUSTOMIZATION, &with_resource(kustomization, "reconcile-scenario.yaml")?, "dev: list it")?;
    pushed(plane)?;
    poll_until("the new UI message in the demo-app ConfigMaps", APPLY_TIMEOUT, Duration::from_secs(1), |last| {
        let maps = plane.admin.get(&["configmaps", "-n", "demo-app"])?;
        let applied = maps["items"].as_array().into_iter().flatten().any(|m| {
            m["data"].as_object().into_iter().flatten().any(|(_, v)| v.as_str().is_some_and(|v| v.contains(MARKER)))
        });
        let extra =
            maps["items"].as_array().into_iter().flatten().any(|m| m["metadata"]["name"] == "reconcile-scenario");
        *last = format!("message applied: {applied}, extra ConfigMap: {extra}");
        Ok((applied && extra).then_some(()))
    })
}

/// A Deployment without resource limits, committed to the dev overlay: the
/// real admission webhook refuses it and the apps Kustomization says why.
fn refused_by_policy(plane: &ControlPlane, repo: &Repository, kustomization: &str) -> Result<()> {
    let unlimited = without_limits(plane)?;
    repo.commit_file("deploy/apps/dev/no-limits.yaml", &unlimited, "dev: a pod without limits")?;
    let listed = with_resource(&with_resource(kustomization, "reconcile-scenario.yaml")?, "no-limits.yaml")?;
    repo.commit_file(KUSTOMIZATION, &listed, "dev: list it")?;
    pushed(plane)?;
    // Only the policy's refusal ends the wait: a webhook call that timed out
    // also fails the apply, and kustomize-controller retries it.
    poll_until(
        "the apps Kustomization to report the policy's refusal",
        APPLY_TIMEOUT,
        Duration::from_secs(1),
        |last| {
            let ks = plane.admin.get(&["kustomization", "apps", "-n", "flux-system"])?;
            let (status, reason, message) = ready_condition(&ks).unwrap_or_default();
            *last = format!("{status} {reason}: {message}");
            let refused = status == "False"
                && message.contains("no-limits")
                && message.contains("denied")
                && message.contains("require-requests-limits");
            Ok(refused.then_some(()))
        },
    )?;
    if plane.admin.get(&["deployment", "no-limits", "-n", "demo-app"]).is_ok() {
        bail!("the Deployment without limits exists although admission refused it");
    }
    // The overlay as it was before (a): the refused Deployment goes, and
    // the ConfigMap of (a) with it, which (e) must see pruned.
    repo.commit_file(KUSTOMIZATION, kustomization, "dev: revert")?;
    repo.remove_file("deploy/apps/dev/no-limits.yaml", "dev: revert")?;
    repo.remove_file(EXTRA, "dev: drop the extra object")?;
    pushed(plane)
}

/// A copy of a demo-app Deployment as the chart renders it (so every other
/// policy passes), one replica, its own selector, and no resource limits.
fn without_limits(plane: &ControlPlane) -> Result<String> {
    let deployments = plane.admin.get(&["deployments", "-n", "demo-app"])?;
    let original =
        deployments["items"].as_array().and_then(|items| items.first()).context("demo-app has no Deployment")?;
    let mut spec = original["spec"].clone();
    spec["replicas"] = json!(1);
    spec["selector"]["matchLabels"]["demo.platform/scenario"] = json!("no-limits");
    spec["template"]["metadata"]["labels"]["demo.platform/scenario"] = json!("no-limits");
    for container in spec["template"]["spec"]["containers"].as_array_mut().context("a Deployment has containers")? {
        if let Some(resources) = container["resources"].as_object_mut() {
            resources.remove("limits");
        }
    }
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "no-limits", "namespace": "demo-app", "labels": original["metadata"]["labels"]},
        "spec": spec,
    });
    Ok(serde_json::to_string_pretty(&deployment)?)
}

/// After (d)'s revert: the apps Kustomization Ready again, and the
/// ConfigMap that left the overlay deleted.
fn pruned(plane: &ControlPlane) -> Result<()> {
    wait_kustomization_ready(plane, "apps")?;
    poll_until("the removed ConfigMap to be deleted", APPLY_TIMEOUT, Duration::from_secs(1), |last| {
        let gone = plane.admin.get(&["configmap", "reconcile-scenario", "-n", "demo-app"]).is_err();
        *last = format!("still present: {}", !gone);
        Ok(gone.then_some(()))
    })
}

fn wait_kustomization_ready(plane: &ControlPlane, name: &str) -> Result<()> {
    poll_until(&format!("Kustomization {name} Ready again"), APPLY_TIMEOUT, Duration::from_secs(1), |last| {
        let ks = plane.admin.get(&["kustomization", name, "-n", "flux-system"])?;
        let (status, reason, message) = ready_condition(&ks).unwrap_or_default();
        *last = format!("{status} {reason}: {message}");
        Ok((status == "True").then_some(()))
    })
}

/// The overlay's kustomization.yaml with one more entry under `resources:`.
fn with_resource(kustomization: &str, file: &str) -> Result<String> {
    let at = kustomization.find("resources:\n").context("the dev overlay has no `resources:` list")?;
    let insert = at + "resources:\n".len();
    Ok(format!("{}  - {file}\n{}", &kustomization[..insert], &kustomization[insert..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_listed_first_under_resources() {
        let text = "kind: Kustomization\nresources:\n  - ../base\npatches:\n  - path: v.yaml\n";
        assert_eq!(
            with_resource(text, "extra.yaml").unwrap(),
            "kind: Kustomization\nresources:\n  - extra.yaml\n  - ../base\npatches:\n  - path: v.yaml\n"
        );
        assert!(with_resource("kind: Kustomization\n", "x.yaml").is_err());
    }
}

//! Flux from the working tree, with no Git server and no token: `deploy/`
//! and the chart are pushed as OCI artifacts to the local registry, and the
//! cluster's entry Kustomization points Flux at them. Two things differ from
//! a bootstrapped cluster, both as patches of that entry Kustomization, so
//! nothing under deploy/ changes:
//! - every Kustomization reads the OCIRepository `flux-system` instead of the
//!   GitRepository of the same name;
//! - demo-app's HelmRelease takes its chart from the chart artifact, runs the
//!   image built from the working tree, and the dev image automation (which
//!   would scan the release registry and push to Git) is left out.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{IMAGE_REPOSITORY, REGISTRY, REGISTRY_PORT, kubectl_apply, which};
use crate::cmd;
use crate::project::Project;

const SOURCE_ARTIFACT: &str = "demo-platform/source";
const CHART_ARTIFACT: &str = "charts/demo-app";

/// `appVersion` of the chart: the version of the crate and the image too.
pub fn app_version(project: &Project) -> Result<String> {
    let chart: serde_json::Value =
        serde_norway::from_str(&fs::read_to_string(project.root.join("charts/demo-app/Chart.yaml"))?)?;
    chart["appVersion"].as_str().map(str::to_string).context("charts/demo-app/Chart.yaml has no appVersion")
}

/// The commit of the working tree, `.dirty` when it has local changes: part
/// of the image tag, so each cluster-up runs what is on disk.
pub fn revision(project: &Project) -> Result<String> {
    let git = |args: &[&str]| cmd::run(Command::new("git").current_dir(&project.root).args(args));
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Ok(out) => cmd::first_line(&out),
        Err(_) => return Ok("worktree".into()),
    };
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.stdout.is_empty();
    Ok(if dirty { format!("{commit}.dirty") } else { commit })
}

pub fn install_flux() -> Result<()> {
    cmd::run(
        Command::new("flux")
            .args(["install", "--components-extra=image-reflector-controller,image-automation-controller"]),
    )?;
    Ok(())
}

/// Pushes the chart and `deploy/`, then applies the sources and the entry
/// Kustomization.
pub fn publish(project: &Project, work: &Path, tag: &str) -> Result<()> {
    let version = app_version(project)?;
    let helm = helm(project)?;
    let packaged = work.join("chart");
    let _ = fs::remove_dir_all(&packaged);
    cmd::run(
        Command::new(&helm)
            .arg("package")
            .arg(project.root.join("charts/demo-app"))
            .arg("--destination")
            .arg(&packaged),
    )?;
    let tgz = packaged.join(format!("demo-app-{version}.tgz"));
    if !tgz.is_file() {
        bail!("helm package did not write {}: is the chart's version {version} (one version rule)?", tgz.display());
    }
    let registry = format!("localhost:{REGISTRY_PORT}");
    cmd::run(Command::new(&helm).arg("push").arg(&tgz).arg(format!("oci://{registry}/charts")).arg("--plain-http"))?;
    cmd::run(Command::new("flux").current_dir(&project.root).args([
        "push",
        "artifact",
        &format!("oci://{registry}/{SOURCE_ARTIFACT}:local"),
        "--path=.",
        // Only what Flux reads: deploy/ (the chart travels as its own artifact).
        "--ignore-paths=/*,!/deploy",
        "--source=file://local-working-tree",
        &format!("--revision=local@sha1:{}", commit_or_zeros(project)),
    ]))?;
    kubectl_apply(&manifests(&version, tag)?)
}

/// The sources and the entry Kustomization, as one multi-document YAML.
fn manifests(version: &str, tag: &str) -> Result<String> {
    let in_cluster = format!("oci://{REGISTRY}:5000");
    let source = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {"interval": "1m", "url": format!("{in_cluster}/{SOURCE_ARTIFACT}"), "ref": {"tag": "local"}, "insecure": true}
    });
    let chart = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "demo-app-chart", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "url": format!("{in_cluster}/{CHART_ARTIFACT}"),
            "ref": {"tag": version},
            "insecure": true,
            "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"}
        }
    });
    let helmrelease_patch = format!(
        "- op: remove\n  path: /spec/chart\n\
         - op: add\n  path: /spec/chartRef\n  value: {{kind: OCIRepository, name: demo-app-chart, namespace: flux-system}}\n\
         - op: replace\n  path: /spec/values/image\n  value: {{repository: {IMAGE_REPOSITORY}, tag: \"{tag}\"}}\n"
    );
    let mut app_patches =
        vec![json!({"target": {"kind": "HelmRelease", "name": "demo-app"}, "patch": helmrelease_patch})];
    for (kind, name) in
        [("ImageRepository", "demo-app"), ("ImagePolicy", "demo-app-dev"), ("ImageUpdateAutomation", "demo-app")]
    {
        app_patches.push(json!({"patch": format!(
            "$patch: delete\napiVersion: image.toolkit.fluxcd.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: flux-system\n"
        )}));
    }
    let apps_patch = serde_norway::to_string(&json!([{"op": "add", "path": "/spec/patches", "value": app_patches}]))?;
    let entry = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "path": "./deploy/clusters/dev",
            "prune": true,
            // Ready only when every Kustomization it applies is Ready.
            "wait": true,
            "timeout": "30m",
            "sourceRef": {"kind": "OCIRepository", "name": "flux-system"},
            "patches": [
                {
                    "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"},
                    "patch": "- op: replace\n  path: /spec/sourceRef/kind\n  value: OCIRepository\n"
                },
                {"target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization", "name": "apps"}, "patch": apps_patch}
            ]
        }
    });
    let docs: Vec<String> = [source, chart, entry].iter().map(serde_norway::to_string).collect::<Result<_, _>>()?;
    Ok(docs.join("---\n"))
}

fn commit_or_zeros(project: &Project) -> String {
    cmd::run(Command::new("git").current_dir(&project.root).args(["rev-parse", "HEAD"]))
        .map(|out| cmd::first_line(&out))
        .unwrap_or_else(|_| "0".repeat(40))
}

/// Our pinned helm when `make tools` built it, else the one on PATH.
pub fn helm(project: &Project) -> Result<std::path::PathBuf> {
    crate::tools::locate(project, "helm")
        .ok()
        .or_else(|| which("helm"))
        .context("helm is needed to package the chart: run `make tools` or install helm 4")
}

pub fn wait_ready() -> Result<()> {
    let wait = |args: &[&str]| {
        let status = Command::new("kubectl").args(args).status().context("cannot start kubectl")?;
        if !status.success() {
            bail!("`kubectl {}` failed; `flux get all -A` and `flux events -A` say why", args.join(" "));
        }
        Ok(())
    };
    wait(&["-n", "flux-system", "wait", "ocirepository/flux-system", "--for=condition=Ready", "--timeout=5m"])?;
    wait(&["-n", "flux-system", "wait", "kustomization/flux-system", "--for=condition=Ready", "--timeout=35m"])?;
    wait(&[
        "wait",
        "helmreleases.helm.toolkit.fluxcd.io",
        "--all",
        "--all-namespaces",
        "--for=condition=Ready",
        "--timeout=10m",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry Kustomization and its nested patches are well-formed: the
    /// apps patch parses back into the HelmRelease patch and three deletions.
    #[test]
    fn entry_kustomization_patches_the_sources_and_the_app() {
        let text = manifests("0.1.0", "0.1.0-local.abc").unwrap();
        let docs: Vec<serde_json::Value> = text.split("---\n").map(|d| serde_norway::from_str(d).unwrap()).collect();
        assert_eq!(docs.len(), 3);
        let entry = &docs[2];
        assert_eq!(entry["spec"]["path"], "./deploy/clusters/dev");
        let apps: serde_json::Value =
            serde_norway::from_str(entry["spec"]["patches"][1]["patch"].as_str().unwrap()).unwrap();
        let inner = apps[0]["value"].as_array().unwrap();
        assert_eq!(inner.len(), 4);
        let release: serde_json::Value = serde_norway::from_str(inner[0]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(release[2]["value"]["tag"], "0.1.0-local.abc");
        assert!(inner[1..].iter().all(|p| p["patch"].as_str().unwrap().starts_with("$patch: delete")));
        assert_eq!(docs[1]["spec"]["ref"]["tag"], "0.1.0");
    }
}

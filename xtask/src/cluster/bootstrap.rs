//! Flux from the working tree, with no Git server and no token: `deploy/`
//! and every chart of this repository that the dev cluster installs are
//! pushed as OCI artifacts to the local registry, and the cluster's entry
//! Kustomization points Flux at them. What differs from a bootstrapped
//! cluster is written as patches of that entry Kustomization, so nothing
//! under deploy/ changes:
//! - every Kustomization reads the OCIRepository `flux-system` instead of the
//!   GitRepository of the same name;
//! - every HelmRelease whose chart is in this repository (found by rendering
//!   each Kustomization of deploy/clusters/dev) takes it from its chart
//!   artifact, and the ones running our image run the one built from the
//!   working tree;
//! - image automation (which would scan the release registry and push to
//!   Git) is left out.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{IMAGE_REPOSITORY, REGISTRY, REGISTRY_PORT, kubectl_apply, which};
use crate::cmd;
use crate::project::Project;

const SOURCE_ARTIFACT: &str = "demo-platform/source";

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

/// A HelmRelease of the dev cluster whose chart lives in this repository
/// (read from the GitRepository), and the Flux Kustomization that applies it.
#[derive(Debug, Clone)]
pub struct InRepoRelease {
    pub kustomization: String,
    /// Whether that Kustomization already has `spec.patches` (ours are appended).
    pub has_patches: bool,
    pub name: String,
    pub namespace: String,
    /// Chart folder, relative to the repository root.
    pub chart_dir: String,
    pub chart_name: String,
    pub chart_version: String,
    /// The release runs the image this repository builds.
    pub runs_our_image: bool,
}

/// An image automation object (kind, name, namespace), with the Flux
/// Kustomization that applies it and whether that one already has patches.
type ImageObject = (String, String, String);
type Automation = Vec<(String, bool, ImageObject)>;

/// Pushes every in-repository chart and `deploy/`, then applies the sources
/// and the entry Kustomization.
pub fn publish(project: &Project, work: &Path, tag: &str) -> Result<()> {
    let (releases, automation) = discover(project)?;
    let helm = helm(project)?;
    let registry = format!("localhost:{REGISTRY_PORT}");
    let packaged = work.join("charts");
    let _ = fs::remove_dir_all(&packaged);
    let mut pushed = std::collections::BTreeSet::new();
    for release in &releases {
        if !pushed.insert(release.chart_dir.clone()) {
            continue;
        }
        cmd::run(
            Command::new(&helm)
                .arg("package")
                .arg(project.root.join(&release.chart_dir))
                .arg("--destination")
                .arg(&packaged),
        )?;
        let tgz = packaged.join(format!("{}-{}.tgz", release.chart_name, release.chart_version));
        if !tgz.is_file() {
            bail!("helm package of {} did not write {}", release.chart_dir, tgz.display());
        }
        cmd::run(
            Command::new(&helm).arg("push").arg(&tgz).arg(format!("oci://{registry}/charts")).arg("--plain-http"),
        )?;
    }
    cmd::run(Command::new("flux").current_dir(&project.root).args([
        "push",
        "artifact",
        &format!("oci://{registry}/{SOURCE_ARTIFACT}:local"),
        "--path=.",
        // Only what Flux reads from the source: deploy/ (in-repo charts travel
        // as their own artifacts).
        "--ignore-paths=/*,!/deploy",
        "--source=file://local-working-tree",
        &format!("--revision=local@sha1:{}", commit_or_zeros(project)),
    ]))?;
    kubectl_apply(&manifests(&releases, &automation, tag)?)
}

/// The HelmReleases with in-repository charts, and the image automation
/// objects, of every Kustomization of deploy/clusters/dev, as the model of
/// what Flux applies (`crate::flux`, the one verify checks) builds them.
fn discover(project: &Project) -> Result<(Vec<InRepoRelease>, Automation)> {
    let mut releases = Vec::new();
    let mut automation = Vec::new();
    for (ks, docs) in crate::flux::kustomizations(&crate::flux::Kustomizer::new(project)?, &project.root, "dev")? {
        let name = ks["metadata"]["name"].as_str().context("a Kustomization without a name")?.to_string();
        if name == crate::flux::SELF_SOURCE {
            continue;
        }
        let has_patches = ks["spec"]["patches"].as_array().is_some_and(|p| !p.is_empty());
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let meta = |key: &str| doc["metadata"][key].as_str().unwrap_or_default().to_string();
            if ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"].contains(&kind) {
                automation.push((name.clone(), has_patches, (kind.to_string(), meta("name"), meta("namespace"))));
            }
            let source = &doc["spec"]["chart"]["spec"];
            if kind != "HelmRelease" || source["sourceRef"]["kind"] != "GitRepository" {
                continue;
            }
            let chart_dir = source["chart"].as_str().context("a HelmRelease without chart")?.trim_start_matches("./");
            let chart: serde_json::Value = serde_norway::from_str(
                &fs::read_to_string(project.root.join(chart_dir).join("Chart.yaml"))
                    .with_context(|| format!("HelmRelease {} names chart {chart_dir}", meta("name")))?,
            )?;
            releases.push(InRepoRelease {
                kustomization: name.clone(),
                has_patches,
                name: meta("name"),
                namespace: meta("namespace"),
                chart_dir: chart_dir.to_string(),
                chart_name: chart["name"].as_str().context("Chart.yaml without name")?.to_string(),
                chart_version: chart["version"].as_str().context("Chart.yaml without version")?.to_string(),
                runs_our_image: doc["spec"]["values"]["image"]["repository"] == IMAGE_REPOSITORY,
            });
        }
    }
    if releases.is_empty() {
        bail!("no HelmRelease with a chart from this repository under deploy/clusters/dev: nothing to run");
    }
    Ok((releases, automation))
}

fn chart_source(release: &InRepoRelease) -> String {
    format!("chart-{}", release.chart_name)
}

/// The sources and the entry Kustomization, as one multi-document YAML.
fn manifests(releases: &[InRepoRelease], automation: &[(String, bool, ImageObject)], tag: &str) -> Result<String> {
    let in_cluster = format!("oci://{REGISTRY}:5000");
    let mut docs = vec![json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {"interval": "1m", "url": format!("{in_cluster}/{SOURCE_ARTIFACT}"), "ref": {"tag": "local"}, "insecure": true}
    })];
    let mut charts = std::collections::BTreeSet::new();
    // Patches per Flux Kustomization: (already has patches, our patches).
    let mut patches: std::collections::BTreeMap<String, (bool, Vec<serde_json::Value>)> = Default::default();
    for release in releases {
        if charts.insert(chart_source(release)) {
            docs.push(json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "OCIRepository",
                "metadata": {"name": chart_source(release), "namespace": "flux-system"},
                "spec": {
                    "interval": "1m",
                    "url": format!("{in_cluster}/charts/{}", release.chart_name),
                    "ref": {"tag": release.chart_version},
                    "insecure": true,
                    "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"}
                }
            }));
        }
        let mut ops = vec![
            json!({"op": "remove", "path": "/spec/chart"}),
            json!({"op": "add", "path": "/spec/chartRef", "value": {"kind": "OCIRepository", "name": chart_source(release), "namespace": "flux-system"}}),
        ];
        if release.runs_our_image {
            ops.push(json!({"op": "replace", "path": "/spec/values/image", "value": {"repository": IMAGE_REPOSITORY, "tag": tag}}));
        }
        let entry = patches.entry(release.kustomization.clone()).or_insert((release.has_patches, Vec::new()));
        entry.1.push(json!({
            "target": {"kind": "HelmRelease", "name": release.name, "namespace": release.namespace},
            "patch": serde_norway::to_string(&ops)?
        }));
    }
    // Image automation would scan the release registry and push to Git.
    for (kustomization, has_patches, (kind, name, namespace)) in automation {
        let entry = patches.entry(kustomization.clone()).or_insert((*has_patches, Vec::new()));
        entry.1.push(json!({"patch": format!(
            "$patch: delete\napiVersion: image.toolkit.fluxcd.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        )}));
    }
    let mut entry_patches = vec![json!({
        "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"},
        "patch": "- op: replace\n  path: /spec/sourceRef/kind\n  value: OCIRepository\n"
    })];
    for (kustomization, (has_patches, ours)) in patches {
        // Appended to patches the cluster already has, never replacing them.
        let ops: Vec<serde_json::Value> = if has_patches {
            ours.into_iter().map(|p| json!({"op": "add", "path": "/spec/patches/-", "value": p})).collect()
        } else {
            vec![json!({"op": "add", "path": "/spec/patches", "value": ours})]
        };
        entry_patches.push(json!({
            "target": {"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization", "name": kustomization},
            "patch": serde_norway::to_string(&ops)?
        }));
    }
    docs.push(json!({
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
            "patches": entry_patches
        }
    }));
    let docs: Vec<String> = docs.iter().map(serde_norway::to_string).collect::<Result<_, _>>()?;
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

    fn release(kustomization: &str, name: &str, chart: &str, ours: bool, has_patches: bool) -> InRepoRelease {
        InRepoRelease {
            kustomization: kustomization.into(),
            has_patches,
            name: name.into(),
            namespace: name.into(),
            chart_dir: format!("charts/{chart}"),
            chart_name: chart.into(),
            chart_version: "0.1.0".into(),
            runs_our_image: ours,
        }
    }

    fn parse(text: &str) -> Vec<serde_json::Value> {
        text.split("---\n").map(|d| serde_norway::from_str(d).unwrap()).collect()
    }

    /// Every in-repo chart gets a source; each Kustomization gets one patch of
    /// its HelmReleases (chartRef, our image) and image automation deletions,
    /// appended when it already has patches.
    #[test]
    fn entry_kustomization_patches_sources_releases_and_automation() {
        let releases = [
            release("apps", "demo-app", "demo-app", true, false),
            release("infra-observability", "platform-observability", "observability", false, true),
        ];
        let automation =
            [("apps".to_string(), false, ("ImagePolicy".into(), "demo-app-dev".into(), "flux-system".into()))];
        let docs = parse(&manifests(&releases, &automation, "0.1.0-local.abc").unwrap());
        assert_eq!(docs.len(), 4, "source, two chart sources, entry");
        let entry = &docs[3];
        assert_eq!(entry["spec"]["path"], "./deploy/clusters/dev");
        let patches = entry["spec"]["patches"].as_array().unwrap();
        assert_eq!(patches.len(), 3);
        let apps: serde_json::Value = serde_norway::from_str(patches[1]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(patches[1]["target"]["name"], "apps");
        assert_eq!(apps[0]["path"], "/spec/patches");
        let inner = apps[0]["value"].as_array().unwrap();
        let ops: serde_json::Value = serde_norway::from_str(inner[0]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(ops[1]["value"]["name"], "chart-demo-app");
        assert_eq!(ops[2]["value"]["tag"], "0.1.0-local.abc");
        assert!(inner[1]["patch"].as_str().unwrap().starts_with("$patch: delete"));
        let observability: serde_json::Value = serde_norway::from_str(patches[2]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(observability[0]["path"], "/spec/patches/-", "existing patches are kept");
        let ops: serde_json::Value =
            serde_norway::from_str(observability[0]["value"]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(ops.as_array().unwrap().len(), 2, "no image override for a chart without our image");
    }

    /// The dev cluster of this repository has in-repo charts to publish.
    #[test]
    #[ignore = "needs kustomize from `make tools`; `make test` runs it"]
    fn discovers_the_in_repository_charts_of_dev() {
        let project = Project::discover().unwrap();
        let (releases, automation) = discover(&project).unwrap();
        let demo = releases.iter().find(|r| r.name == "demo-app").expect("demo-app");
        assert_eq!((demo.chart_dir.as_str(), demo.runs_our_image), ("charts/demo-app", true));
        assert!(automation.iter().any(|(_, _, (kind, _, _))| kind == "ImageUpdateAutomation"));
    }
}

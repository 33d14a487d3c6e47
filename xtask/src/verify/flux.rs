//! What Flux would apply: each HelmRelease whose chart lives in this
//! repository is rendered with its values merged as helm-controller merges
//! them (the chart's values.yaml, then `valuesFiles` in order, then inline
//! `values`; maps merge, everything else replaces), after kustomize has
//! applied the overlay's patches.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Validators, helm, rules};
use crate::project::Project;

/// The name of the GitRepository that `flux bootstrap` creates for this repository.
const SELF_SOURCE: &str = "flux-system";

pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: PathBuf,
    pub values_files: Vec<PathBuf>,
    pub values: Value,
    pub run_tests: bool,
}

/// HelmReleases in a rendered kustomization whose chart is in this repository.
pub fn releases(project: &Project, rendered: &Path) -> Result<Vec<Release>> {
    let mut releases = Vec::new();
    for doc in rules::documents(rendered)? {
        if doc["kind"] != "HelmRelease" {
            continue;
        }
        let spec = &doc["spec"]["chart"]["spec"];
        let source = &spec["sourceRef"];
        if source["kind"] != "GitRepository" || source["name"] != SELF_SOURCE {
            continue;
        }
        let name = doc["metadata"]["name"].as_str().context("HelmRelease without a name")?.to_string();
        let chart = spec["chart"].as_str().context("HelmRelease without spec.chart.spec.chart")?;
        let chart = project.root.join(chart.trim_start_matches("./"));
        if !chart.join("Chart.yaml").is_file() {
            bail!("HelmRelease {name}: chart {} is not a chart of this repository", chart.display());
        }
        let values_files = spec["valuesFiles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| project.root.join(f.as_str().unwrap_or_default().trim_start_matches("./")))
            .collect();
        let target = doc["spec"]["targetNamespace"].as_str();
        let namespace = target.or(doc["metadata"]["namespace"].as_str()).unwrap_or("default").to_string();
        // helm-controller's default release name.
        let release_name = match (doc["spec"]["releaseName"].as_str(), target) {
            (Some(explicit), _) => explicit.to_string(),
            (None, Some(target)) => format!("{target}-{name}"),
            (None, None) => name.clone(),
        };
        releases.push(Release {
            name: release_name,
            namespace,
            chart,
            values_files,
            values: doc["spec"]["values"].clone(),
            run_tests: doc["spec"]["test"]["enable"] == true,
        });
    }
    Ok(releases)
}

/// Renders one release into `out_dir`, returning the file.
pub fn render(v: &Validators, release: &Release, label: &str, out_dir: &Path) -> Result<PathBuf> {
    let inline = out_dir.join(format!("{label}.values.yaml"));
    fs::write(&inline, serde_norway::to_string(&release.values)?)?;
    let mut values = release.values_files.clone();
    values.push(inline);
    let out = out_dir.join(format!("{label}.yaml"));
    helm::template(v, &release.chart, &release.name, &release.namespace, &values, release.run_tests, &out)?;
    Ok(out)
}

/// Rendered manifests per environment, snapshotted with insta so that any
/// change to the chart or to an overlay shows in review as a readable diff
/// of `xtask/src/verify/snapshots/`. Needs `make tools` (helm).
#[cfg(test)]
mod snapshots {
    use std::process::Command;

    use super::*;
    use crate::cmd;

    fn render_environment(project: &Project, helm: &Path, env: &str) -> String {
        let overlay = project.root.join("deploy/apps").join(env);
        let kustomized = cmd::run(Command::new("kubectl").arg("kustomize").arg(&overlay)).expect("kustomize builds");
        let dir = tempfile::tempdir().unwrap();
        let rendered = dir.path().join("kustomized.yaml");
        fs::write(&rendered, &kustomized.stdout).unwrap();
        let mut out = String::from_utf8(kustomized.stdout).unwrap();
        for release in releases(project, &rendered).unwrap() {
            let inline = dir.path().join("values.yaml");
            fs::write(&inline, serde_norway::to_string(&release.values).unwrap()).unwrap();
            let mut template = Command::new(helm);
            template
                .args(["template", &release.name])
                .arg(&release.chart)
                .args(["--namespace", &release.namespace, "--kube-version", crate::project::KUBERNETES_VERSION])
                .arg("--skip-tests");
            for file in release.values_files.iter().chain(std::iter::once(&inline)) {
                template.arg("--values").arg(file);
            }
            out.push_str("---\n");
            out.push_str(&String::from_utf8(cmd::run(&mut template).expect("helm template").stdout).unwrap());
        }
        out
    }

    #[test]
    fn rendered_environments_match_their_snapshots() {
        let project = Project::discover().unwrap();
        let helm = crate::tools::locate(&project, "helm").expect("helm is built by `make tools`");
        for env in ["dev", "staging", "production"] {
            insta::assert_snapshot!(env, render_environment(&project, &helm, env));
        }
    }
}

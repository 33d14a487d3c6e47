//! One HelmRelease rendered the way helm-controller installs it: the chart
//! from its source (this repository or an upstream Helm repository), values
//! merged as helm-controller merges them (`valuesFiles` of the chart spec,
//! then `valuesFrom` in order, then `values`: maps merge, anything else
//! replaces), its release name and namespace, `install.crds`, and the
//! kustomize `postRenderers`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{Kustomizer, SELF_SOURCE, charts::ChartSource, documents_of};
use crate::cmd;
use crate::project::KUBERNETES_VERSION;

/// What helm-controller derives from a HelmRelease before installing it.
pub struct Release {
    /// `namespace/name` of the HelmRelease, for messages.
    pub id: String,
    pub release_name: String,
    pub namespace: String,
    pub chart: PathBuf,
    pub chart_version: Option<String>,
    pub values: Value,
    pub with_crds: bool,
    pub with_tests: bool,
    pub post_renderers: Vec<Value>,
}

impl Release {
    /// Resolves `hr` against the objects of its environment (`known`: the
    /// HelmRepositories and the ConfigMaps and Secrets of `valuesFrom`).
    pub fn resolve(root: &Path, charts: &ChartSource, hr: &Value, known: &[Value]) -> Result<Self> {
        let name = hr["metadata"]["name"].as_str().context("HelmRelease without metadata.name")?;
        let hr_namespace = hr["metadata"]["namespace"].as_str().unwrap_or("default");
        let id = format!("{hr_namespace}/{name}");
        let spec = &hr["spec"];
        if !spec["chartRef"].is_null() {
            bail!("HelmRelease {id}: spec.chartRef is not modelled; use spec.chart");
        }
        let chart_spec = &spec["chart"]["spec"];
        let chart_name =
            chart_spec["chart"].as_str().with_context(|| format!("HelmRelease {id}: no spec.chart.spec.chart"))?;
        let source = &chart_spec["sourceRef"];
        let source_namespace = source["namespace"].as_str().unwrap_or(hr_namespace);
        let chart_version = chart_spec["version"].as_str().map(str::to_string);
        let (chart, mut values) = match source["kind"].as_str() {
            Some("GitRepository") if source["name"] == SELF_SOURCE => {
                let dir = root.join(chart_name.trim_start_matches("./"));
                if !dir.join("Chart.yaml").is_file() {
                    bail!("HelmRelease {id}: chart {chart_name} is not a chart of this repository");
                }
                let mut values = json!({});
                for file in chart_spec["valuesFiles"].as_array().into_iter().flatten() {
                    let file = root.join(file.as_str().unwrap_or_default().trim_start_matches("./"));
                    let text = fs::read_to_string(&file).with_context(|| {
                        format!("HelmRelease {id}: valuesFiles entry {} cannot be read", file.display())
                    })?;
                    merge(&mut values, serde_norway::from_str(&text)?);
                }
                (dir, values)
            }
            Some("HelmRepository") => {
                let repo_name = source["name"].as_str().unwrap_or("?");
                let repository = known
                    .iter()
                    .find(|d| {
                        d["kind"] == "HelmRepository"
                            && d["metadata"]["name"] == repo_name
                            && d["metadata"]["namespace"].as_str().unwrap_or("default") == source_namespace
                    })
                    .with_context(|| {
                        format!("HelmRelease {id}: HelmRepository {source_namespace}/{repo_name} is applied by nothing in this environment")
                    })?;
                if repository["spec"]["type"] == "oci" {
                    bail!("HelmRelease {id}: OCI HelmRepositories are not modelled");
                }
                let url = repository["spec"]["url"]
                    .as_str()
                    .with_context(|| format!("HelmRepository {repo_name} has no url"))?;
                let version = chart_version
                    .as_deref()
                    .filter(|v| !v.contains(['*', '^', '~', '>', '<', 'x', ' ']))
                    .with_context(|| format!("HelmRelease {id}: pin spec.chart.spec.version to one exact version"))?;
                let located = charts.locate(&id, url, chart_name, version)?;
                (located, json!({}))
            }
            other => bail!("HelmRelease {id}: chart source {other:?} is not modelled"),
        };
        for from in spec["valuesFrom"].as_array().into_iter().flatten() {
            merge(&mut values, values_from(&id, hr_namespace, from, known)?);
        }
        if !spec["values"].is_null() {
            merge(&mut values, spec["values"].clone());
        }
        let target = spec["targetNamespace"].as_str();
        let release_name = match (spec["releaseName"].as_str(), target) {
            (Some(explicit), _) => explicit.to_string(),
            (None, Some(target)) => format!("{target}-{name}"),
            (None, None) => name.to_string(),
        };
        Ok(Self {
            id,
            release_name,
            namespace: target.unwrap_or(hr_namespace).to_string(),
            chart,
            chart_version,
            values,
            with_crds: spec["install"]["crds"] != "Skip",
            with_tests: spec["test"]["enable"] == true,
            post_renderers: spec["postRenderers"].as_array().cloned().unwrap_or_default(),
        })
    }

    /// `helm template` with the merged values, then the post-renderers.
    /// `api_versions` are the groups the cluster serves by the time this
    /// release installs (the CRDs applied before it), for `.Capabilities`.
    pub fn render(&self, helm: &Path, kustomizer: &Kustomizer, api_versions: &[String]) -> Result<Vec<Value>> {
        let scratch = tempfile::tempdir()?;
        let values = scratch.path().join("values.yaml");
        fs::write(&values, serde_norway::to_string(&self.values)?)?;
        let mut template = Command::new(helm);
        template
            .args(["template", &self.release_name])
            .arg(&self.chart)
            .args(["--namespace", &self.namespace, "--kube-version", KUBERNETES_VERSION, "--values"])
            .arg(&values);
        if self.with_crds {
            template.arg("--include-crds");
        }
        if !self.with_tests {
            template.arg("--skip-tests");
        }
        for api in api_versions {
            template.args(["--api-versions", api]);
        }
        let output =
            cmd::run(&mut template).with_context(|| format!("HelmRelease {}: helm template failed", self.id))?;
        let mut text = String::from_utf8(output.stdout)?;
        for renderer in &self.post_renderers {
            text = post_render(&self.id, kustomizer, scratch.path(), &text, renderer)?;
        }
        documents_of(&text).with_context(|| format!("HelmRelease {}: the render is not YAML", self.id))
    }
}

/// helm-controller's merge: maps merge key by key; anything else (lists,
/// scalars, null) replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// One `valuesFrom` entry: a key (default `values.yaml`) of a ConfigMap or
/// Secret that the environment creates.
fn values_from(id: &str, namespace: &str, from: &Value, known: &[Value]) -> Result<Value> {
    let kind = from["kind"].as_str().unwrap_or("?");
    let name = from["name"].as_str().unwrap_or("?");
    let key = from["valuesKey"].as_str().unwrap_or("values.yaml");
    if !from["targetPath"].is_null() {
        bail!("HelmRelease {id}: valuesFrom targetPath is not modelled");
    }
    let doc = known.iter().find(|d| {
        d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == Some(namespace)
    });
    let Some(doc) = doc else {
        if from["optional"] == true {
            return Ok(json!({}));
        }
        bail!("HelmRelease {id}: valuesFrom {kind} {namespace}/{name} is created by nothing Flux applies");
    };
    let text = match (doc["data"][key].as_str(), doc["stringData"][key].as_str()) {
        (_, Some(text)) => text.to_string(),
        (Some(text), None) if kind == "Secret" => {
            String::from_utf8(BASE64.decode(text).with_context(|| format!("Secret {name}: {key} is not base64"))?)?
        }
        (Some(text), None) => text.to_string(),
        (None, None) => bail!("HelmRelease {id}: {kind} {namespace}/{name} has no key {key}"),
    };
    serde_norway::from_str(&text).with_context(|| format!("HelmRelease {id}: {kind} {name} key {key} is not YAML"))
}

/// A `kustomize` post-renderer (patches, images) over the render.
fn post_render(id: &str, kustomizer: &Kustomizer, scratch: &Path, text: &str, renderer: &Value) -> Result<String> {
    let spec = &renderer["kustomize"];
    if spec.is_null() {
        bail!("HelmRelease {id}: only kustomize post-renderers are modelled");
    }
    let dir = scratch.join("post-render");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("rendered.yaml"), text)?;
    let mut kustomization = json!({"resources": ["rendered.yaml"]});
    for key in ["patches", "images"] {
        if !spec[key].is_null() {
            kustomization[key] = spec[key].clone();
        }
    }
    fs::write(dir.join("kustomization.yaml"), serde_norway::to_string(&kustomization)?)?;
    kustomizer.build(&dir).with_context(|| format!("HelmRelease {id}: a post-renderer does not apply"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_merge_and_lists_replace_as_in_helm_controller() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut base, json!({"a": {"c": [3], "e": null}, "d": {"x": 1}}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [3], "e": null}, "d": {"x": 1}}));
    }

    #[test]
    fn values_from_decodes_secrets_and_names_what_is_missing() {
        let secret = json!({"kind": "Secret", "metadata": {"name": "v", "namespace": "apps"},
                            "data": {"values.yaml": "cmVwbGljYXM6IDI="}});
        let from = json!({"kind": "Secret", "name": "v"});
        assert_eq!(values_from("apps/web", "apps", &from, &[secret]).unwrap(), json!({"replicas": 2}));
        let err = values_from("apps/web", "apps", &from, &[]).unwrap_err();
        assert!(format!("{err}").contains("valuesFrom Secret apps/v is created by nothing"), "{err}");
    }
}

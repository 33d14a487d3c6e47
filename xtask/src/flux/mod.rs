//! What Flux applies to an environment, found by following Flux's own graph:
//! start at `deploy/clusters/<env>` (the path `flux bootstrap` gives the
//! `flux-system` Kustomization), build every Flux Kustomization it reaches
//! as kustomize-controller does, in `dependsOn` order, and render every
//! HelmRelease those builds contain as helm-controller does, upstream charts
//! included. This one model serves verify, the committed snapshots,
//! `cargo xtask diff` and the compliance report.

pub mod charts;
mod helmrelease;
mod kustomization;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cmd;
pub use charts::ChartSource;

/// The environments, each a folder of `deploy/clusters/`.
pub const ENVIRONMENTS: &[&str] = &["dev", "staging", "production"];

/// The name of the GitRepository (and entry Kustomization) that `flux bootstrap` creates.
pub const SELF_SOURCE: &str = "flux-system";

/// `kustomize build` of the kustomize that kustomize-controller is built on
/// (one Go workspace builds both), with the load restrictor the controller
/// uses (none: a Flux Kustomization may reference files outside its folder).
#[derive(Clone)]
pub struct Kustomizer {
    kustomize: PathBuf,
}

impl Kustomizer {
    pub fn new(project: &crate::project::Project) -> Result<Self> {
        Ok(Kustomizer { kustomize: crate::tools::locate(project, "kustomize")? })
    }

    pub fn build(&self, dir: &Path) -> Result<String> {
        let mut build = Command::new(&self.kustomize);
        build.args(["build", "--load-restrictor", "LoadRestrictionsNone"]).arg(dir);
        Ok(String::from_utf8(cmd::run(&mut build)?.stdout)?)
    }
}

/// Where a group of objects comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    Kustomization { name: String },
    HelmRelease { id: String, chart: String, version: Option<String> },
}

impl Origin {
    pub fn label(&self) -> String {
        match self {
            Origin::Kustomization { name } => format!("Kustomization {name}"),
            Origin::HelmRelease { id, chart, version, .. } => {
                format!("HelmRelease {id} ({chart} {})", version.as_deref().unwrap_or("from this repository"))
            }
        }
    }

    fn slug(&self) -> String {
        let raw = match self {
            Origin::Kustomization { name } => format!("ks-{name}"),
            Origin::HelmRelease { id, .. } => format!("hr-{}", id.replace('/', "-")),
        };
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
    }
}

/// Objects applied together: a Kustomization's build or a release's render.
#[derive(Clone)]
pub struct Unit {
    pub origin: Origin,
    pub docs: Vec<Value>,
}

/// Everything Flux applies to one environment, in the order it applies it.
#[derive(Clone)]
pub struct Environment {
    pub name: String,
    pub units: Vec<Unit>,
}

impl Environment {
    pub fn docs(&self) -> impl Iterator<Item = &Value> {
        self.units.iter().flat_map(|u| u.docs.iter())
    }

    pub fn releases(&self) -> usize {
        self.units.iter().filter(|u| matches!(u.origin, Origin::HelmRelease { .. })).count()
    }

    /// One file per unit under `dir/<env>/`, in apply order.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let dir = dir.join(&self.name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            let file = dir.join(format!("{i:02}-{}.yaml", unit.origin.slug()));
            fs::write(&file, to_yaml_stream(&unit.docs)?)?;
            files.push(file);
        }
        Ok(files)
    }
}

/// Renders environments of the repository at `root`.
pub struct Renderer {
    pub root: PathBuf,
    pub helm: PathBuf,
    pub charts: ChartSource,
    pub kustomizer: Kustomizer,
}

impl Renderer {
    /// Renders the repository checked out at `root` with this project's
    /// tools and chart source (`CHART_MIRROR`, or each chart's repository).
    pub fn new(project: &crate::project::Project, root: &Path) -> Result<Self> {
        let helm = crate::tools::locate(project, "helm")?;
        let charts = match &project.chart_mirror {
            Some(dir) => ChartSource::mirror(dir)?,
            None => ChartSource::Upstream { helm: helm.clone(), cache: project.charts_cache() },
        };
        Ok(Self { root: root.to_path_buf(), helm, charts, kustomizer: Kustomizer::new(project)? })
    }

    pub fn render_all(&self) -> Result<Vec<Environment>> {
        ENVIRONMENTS.iter().map(|env| self.render(env)).collect()
    }

    pub fn render(&self, env: &str) -> Result<Environment> {
        self.render_inner(env).with_context(|| format!("{env}: what Flux applies cannot be rendered"))
    }

    fn render_inner(&self, env: &str) -> Result<Environment> {
        let built = kustomizations(&self.kustomizer, &self.root, env)?;
        let known: Vec<Value> = built.iter().flat_map(|(_, docs)| docs.iter().cloned()).collect();
        let releases: Vec<Value> = known.iter().filter(|d| d["kind"] == "HelmRelease").cloned().collect();
        dependency_order("HelmRelease", &releases)?;

        let mut units = Vec::new();
        let mut scopes = Scopes::default();
        for (ks, docs) in &built {
            let ks_name = ks["metadata"]["name"].as_str().unwrap_or("?").to_string();
            scopes.learn(docs);
            let hrs: Vec<Value> = docs.iter().filter(|d| d["kind"] == "HelmRelease").cloned().collect();
            units.push(Unit { origin: Origin::Kustomization { name: ks_name.clone() }, docs: docs.clone() });
            for position in dependency_order("HelmRelease", &hrs).unwrap_or_else(|_| (0..hrs.len()).collect()) {
                let hr = &hrs[position];
                let release = helmrelease::Release::resolve(&self.root, &self.charts, hr, &known)?;
                let mut rendered = release.render(&self.helm, &self.kustomizer, &scopes.api_versions())?;
                scopes.learn(&rendered);
                for doc in &mut rendered {
                    scopes.default_namespace(doc, &release.namespace);
                }
                let chart = hr["spec"]["chart"]["spec"]["chart"].as_str().unwrap_or("?").to_string();
                let version = hr["spec"]["chart"]["spec"]["sourceRef"]["kind"]
                    .as_str()
                    .filter(|k| *k == "HelmRepository")
                    .and(release.chart_version.clone());
                units.push(Unit {
                    origin: Origin::HelmRelease { id: release.id.clone(), chart, version },
                    docs: rendered,
                });
            }
        }
        Ok(Environment { name: env.to_string(), units })
    }
}

/// Every Flux Kustomization reachable from `deploy/clusters/<env>` of the
/// repository at `root`, built, in `dependsOn` order (the entry first):
/// what kustomize-controller applies before any chart is rendered. Cluster
/// bring-up reads it too.
pub fn kustomizations(kustomizer: &Kustomizer, root: &Path, env: &str) -> Result<Vec<(Value, Vec<Value>)>> {
    let entry = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": SELF_SOURCE, "namespace": SELF_SOURCE},
        "spec": {"path": format!("./deploy/clusters/{env}"), "sourceRef": {"kind": "GitRepository", "name": SELF_SOURCE}},
    });
    let mut built: Vec<(Value, Vec<Value>)> = Vec::new();
    let mut queue = vec![entry];
    let mut seen = BTreeSet::new();
    while let Some(ks) = queue.pop() {
        let id = object_id(&ks);
        if !seen.insert(id.clone()) {
            bail!("Kustomization {id} is defined twice");
        }
        let known: Vec<Value> = built.iter().flat_map(|(_, docs)| docs.iter().cloned()).collect();
        let docs = kustomization::build(kustomizer, root, &ks, &known)?;
        queue.extend(docs.iter().filter(|d| is_flux_kustomization(d)).cloned().rev());
        built.push((ks, docs));
    }
    let order = dependency_order("Kustomization", &built.iter().map(|(ks, _)| ks.clone()).collect::<Vec<_>>())?;
    let mut slots: Vec<Option<(Value, Vec<Value>)>> = built.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

fn is_flux_kustomization(doc: &Value) -> bool {
    doc["kind"] == "Kustomization"
        && doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io/"))
}

pub fn object_id(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["metadata"]["namespace"].as_str().unwrap_or("default"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Indexes of `objects` (Kustomizations or HelmReleases) such that each
/// comes after what it `dependsOn`; a dependency that nothing defines, or a
/// cycle, is an error: Flux would wait for it forever.
fn dependency_order(kind: &str, objects: &[Value]) -> Result<Vec<usize>> {
    let ids: Vec<String> = objects.iter().map(object_id).collect();
    let mut deps: Vec<Vec<usize>> = Vec::new();
    for (object, id) in objects.iter().zip(&ids) {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
        let mut mine = Vec::new();
        for dep in object["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let dep_id =
                format!("{}/{}", dep["namespace"].as_str().unwrap_or(namespace), dep["name"].as_str().unwrap_or("?"));
            let index = ids.iter().position(|i| *i == dep_id).with_context(|| {
                format!("{kind} {id} dependsOn {dep_id}, which nothing in this environment defines: it would never become ready")
            })?;
            mine.push(index);
        }
        deps.push(mine);
    }
    let mut order = Vec::new();
    let mut state = vec![0u8; objects.len()]; // 0 new, 1 visiting, 2 done
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        ids: &[String],
        kind: &str,
    ) -> Result<()> {
        match state[i] {
            2 => return Ok(()),
            1 => bail!("{kind} {} is part of a dependsOn cycle: none of it would ever become ready", ids[i]),
            _ => {}
        }
        state[i] = 1;
        for &d in &deps[i] {
            visit(d, deps, state, order, ids, kind)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..objects.len() {
        visit(i, &deps, &mut state, &mut order, &ids, kind)?;
    }
    Ok(order)
}

/// What the API server knows by the time a release installs: the CRDs
/// applied so far (for `.Capabilities.APIVersions`) and which kinds are
/// cluster-scoped (helm installs namespaced objects into the release's
/// namespace).
#[derive(Default)]
struct Scopes {
    api_versions: BTreeSet<String>,
    cluster_kinds: BTreeSet<String>,
}

/// Cluster-scoped kinds of Kubernetes itself.
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

impl Scopes {
    fn learn(&mut self, docs: &[Value]) {
        for crd in docs.iter().filter(|d| d["kind"] == "CustomResourceDefinition") {
            let spec = &crd["spec"];
            let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str()) else { continue };
            for version in spec["versions"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()) {
                self.api_versions.insert(format!("{group}/{version}"));
                self.api_versions.insert(format!("{group}/{version}/{kind}"));
            }
            if spec["scope"] == "Cluster" {
                self.cluster_kinds.insert(kind.to_string());
            }
        }
    }

    fn api_versions(&self) -> Vec<String> {
        self.api_versions.iter().cloned().collect()
    }

    fn default_namespace(&self, doc: &mut Value, namespace: &str) {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if CLUSTER_SCOPED.contains(&kind)
            || self.cluster_kinds.contains(kind)
            || !doc["metadata"]["namespace"].is_null()
        {
            return;
        }
        if let Some(metadata) = doc["metadata"].as_object_mut() {
            metadata.insert("namespace".into(), json!(namespace));
        }
    }
}

/// The YAML documents of a stream, empty ones dropped.
pub fn documents_of(text: &str) -> Result<Vec<Value>> {
    let text = yaml11_octals(text);
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The API server reads manifests as YAML 1.1, where an unquoted `0444` is
/// an octal number (charts write file modes so); serde_norway reads YAML
/// 1.2, where it is a string. Such values become their decimal number.
fn yaml11_octals(text: &str) -> std::borrow::Cow<'_, str> {
    let is_octal = |v: &str| v.len() > 1 && v.starts_with('0') && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !text.lines().any(|l| l.rsplit_once(": ").is_some_and(|(_, v)| is_octal(v.trim_end()))) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.rsplit_once(": ") {
            Some((key, value)) if is_octal(value.trim_end()) && !key.contains(['"', '\'', '#']) => {
                let number = u32::from_str_radix(value.trim_end(), 8).unwrap_or_default();
                out.push_str(&format!("{key}: {number}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

pub fn to_yaml_stream(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(doc)?);
    }
    Ok(out)
}

/// Objects by identity (`apiVersion kind namespace/name`), for diffs.
pub fn by_identity(env: &Environment) -> BTreeMap<String, &Value> {
    env.docs()
        .map(|d| {
            let key = format!(
                "{} {} {}",
                d["apiVersion"].as_str().unwrap_or("?"),
                d["kind"].as_str().unwrap_or("?"),
                match d["metadata"]["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", d["metadata"]["name"].as_str().unwrap_or("?")),
                    None => d["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                }
            );
            (key, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(name: &str, deps: &[&str]) -> Value {
        let deps: Vec<Value> = deps.iter().map(|d| json!({"name": d})).collect();
        json!({"metadata": {"name": name, "namespace": "flux-system"}, "spec": {"dependsOn": deps}})
    }

    #[test]
    fn unquoted_leading_zero_numbers_are_octal_as_the_api_server_reads_them() {
        let docs = documents_of("a:\n  defaultMode: 0444\n  quoted: '0444'\n  port: 0\n").unwrap();
        assert_eq!(docs[0]["a"], json!({"defaultMode": 292, "quoted": "0444", "port": 0}));
    }

    #[test]
    fn dependencies_come_first() {
        let objects = [ks("apps", &["infra"]), ks("infra", &[]), ks("policies", &["infra"])];
        assert_eq!(dependency_order("Kustomization", &objects).unwrap(), vec![1, 0, 2]);
    }

    #[test]
    fn a_missing_dependency_or_a_cycle_is_an_error_naming_it() {
        let err = dependency_order("Kustomization", &[ks("apps", &["infra"])]).unwrap_err();
        assert!(format!("{err}").contains("apps dependsOn flux-system/infra, which nothing"), "{err}");
        let err = dependency_order("Kustomization", &[ks("a", &["b"]), ks("b", &["a"])]).unwrap_err();
        assert!(format!("{err}").contains("dependsOn cycle"), "{err}");
    }

    #[test]
    fn helm_defaults_the_namespace_of_namespaced_objects_only() {
        let mut scopes = Scopes::default();
        scopes.learn(&[json!({"kind": "CustomResourceDefinition", "spec": {
            "group": "kyverno.io", "scope": "Cluster", "names": {"kind": "ClusterPolicy"}, "versions": [{"name": "v1"}]}})]);
        let mut deployment = json!({"kind": "Deployment", "metadata": {"name": "a"}});
        let mut policy = json!({"kind": "ClusterPolicy", "metadata": {"name": "p"}});
        let mut role = json!({"kind": "ClusterRole", "metadata": {"name": "r"}});
        for doc in [&mut deployment, &mut policy, &mut role] {
            scopes.default_namespace(doc, "apps");
        }
        assert_eq!(deployment["metadata"]["namespace"], "apps");
        assert!(policy["metadata"]["namespace"].is_null() && role["metadata"]["namespace"].is_null());
        assert!(scopes.api_versions().contains(&"kyverno.io/v1/ClusterPolicy".to_string()));
    }
}

//! Admission as the cluster does it, before the policies judge a pod:
//! Istio's sidecar injector mutates every pod template that asks for a
//! sidecar (its namespace, or the pod itself), with the configuration the
//! environment's istiod is rendered with (`istioctl kube-inject` and the
//! istio-sidecar-injector and istio ConfigMaps of the render). Kyverno and
//! the Pod Security levels then see the pods as they would be created.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cmd;
use crate::flux::{Environment, documents_of, to_yaml_stream};

/// Kinds `istioctl kube-inject` mutates (it passes anything else through).
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"];

/// Injects sidecars into `env` in place; returns how many workloads were injected.
pub fn inject_sidecars(istioctl: &Path, env: &mut Environment, scratch: &Path) -> Result<usize> {
    let docs: Vec<&Value> = env.docs().collect();
    let injection_namespaces = namespace_labels(&docs);
    let wanted: Vec<Value> = docs
        .iter()
        .filter(|d| WORKLOADS.contains(&d["kind"].as_str().unwrap_or_default()))
        .filter(|d| wants_sidecar(d, &injection_namespaces))
        .map(|d| (*d).clone())
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let config = |name: &str, key: &str| -> Result<String> {
        docs.iter()
            .find(|d| {
                d["kind"] == "ConfigMap"
                    && d["metadata"]["name"] == name
                    && d["metadata"]["namespace"] == "istio-system"
            })
            .and_then(|d| d["data"][key].as_str())
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "{}: pods ask for a sidecar but no istio-system/{name} ConfigMap with `{key}` is applied",
                    env.name
                )
            })
    };
    let dir = scratch.join(&env.name);
    fs::create_dir_all(&dir)?;
    let files = [
        ("inject.yaml", config("istio-sidecar-injector", "config")?),
        ("values.json", config("istio-sidecar-injector", "values")?),
        ("mesh.yaml", config("istio", "mesh")?),
    ];
    for (file, text) in &files {
        fs::write(dir.join(file), text)?;
    }
    let input = dir.join("workloads.yaml");
    fs::write(&input, to_yaml_stream(&wanted)?)?;
    let mut inject = Command::new(istioctl);
    // An explicit revision: without one, istioctl asks a cluster which
    // revision is the default (and waits for one forever).
    inject
        .args(["kube-inject", "--revision", "default"])
        .arg("--filename")
        .arg(&input)
        .arg("--injectConfigFile")
        .arg(dir.join("inject.yaml"))
        .arg("--valuesFile")
        .arg(dir.join("values.json"))
        .arg("--meshConfigFile")
        .arg(dir.join("mesh.yaml"));
    // istiod decides native sidecars from its environment; kube-inject
    // from its own.
    if let Some(value) = istiod_env(&docs, "ENABLE_NATIVE_SIDECARS") {
        inject.env("ENABLE_NATIVE_SIDECARS", value);
    }
    let output = cmd::run(&mut inject).with_context(|| format!("{}: istioctl kube-inject failed", env.name))?;
    let injected = documents_of(&String::from_utf8(output.stdout)?)?;
    let mut by_id: BTreeMap<String, Value> = injected.into_iter().map(|d| (identity(&d), d)).collect();
    if by_id.len() != wanted.len() {
        bail!("{}: istioctl kube-inject returned {} objects for {} workloads", env.name, by_id.len(), wanted.len());
    }
    for unit in &mut env.units {
        for doc in &mut unit.docs {
            if let Some(mut injected) = by_id.remove(&identity(doc)) {
                default_volumes(&mut injected);
                *doc = injected;
            }
        }
    }
    Ok(wanted.len())
}

/// The API server's defaulting of a volume that names no source: an
/// emptyDir (Istio's template writes `emptyDir:` with no value, which
/// kube-inject prints as a volume with a name only).
fn default_volumes(doc: &mut Value) {
    let volumes = match doc["kind"].as_str() {
        Some("Pod") => doc.pointer_mut("/spec/volumes"),
        Some("CronJob") => doc.pointer_mut("/spec/jobTemplate/spec/template/spec/volumes"),
        _ => doc.pointer_mut("/spec/template/spec/volumes"),
    };
    for volume in volumes.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(fields) = volume.as_object_mut()
            && fields.len() == 1
            && fields.contains_key("name")
        {
            fields.insert("emptyDir".into(), json!({}));
        }
    }
}

fn identity(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["namespace"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Namespace name → its labels.
fn namespace_labels(docs: &[&Value]) -> BTreeMap<String, Value> {
    docs.iter()
        .filter(|d| d["apiVersion"] == "v1" && d["kind"] == "Namespace")
        .map(|d| (d["metadata"]["name"].as_str().unwrap_or_default().to_string(), d["metadata"]["labels"].clone()))
        .collect()
}

/// istiod's default injection webhooks: a namespace labelled
/// `istio-injection=enabled` (or with a revision label) injects every pod
/// that does not opt out; elsewhere, a pod labelled
/// `sidecar.istio.io/inject=true` opts in.
fn wants_sidecar(doc: &Value, namespaces: &BTreeMap<String, Value>) -> bool {
    let template = match doc["kind"].as_str() {
        Some("Pod") => &doc["metadata"],
        Some("CronJob") => &doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
        _ => &doc["spec"]["template"]["metadata"],
    };
    let pod_says = template["labels"]["sidecar.istio.io/inject"]
        .as_str()
        .or_else(|| template["annotations"]["sidecar.istio.io/inject"].as_str());
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let labels = namespaces.get(namespace).cloned().unwrap_or(Value::Null);
    let namespace_says = match labels["istio-injection"].as_str() {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => labels["istio.io/rev"].as_str().map(|_| true),
    };
    match (namespace_says, pod_says) {
        (Some(false), _) => false,
        (Some(true), Some("false")) => false,
        (Some(true), _) => true,
        (None, Some("true")) => true,
        (None, _) => false,
    }
}

/// Pod Security Admission as the API server enforces it: one Kyverno rule
/// per level (`podSecurity`, which runs the upstream pod-security-admission
/// checks) over the namespaces labelled `pod-security.kubernetes.io/enforce`
/// with it. `None` when no namespace enforces a level.
pub fn pod_security_policy(env: &str, namespaces: &[Value]) -> Option<Value> {
    let mut by_level: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ns in namespaces {
        let labels = &ns["metadata"]["labels"];
        let Some(level) = labels["pod-security.kubernetes.io/enforce"].as_str() else { continue };
        if level != "privileged" {
            let name = ns["metadata"]["name"].as_str().unwrap_or_default().to_string();
            by_level.entry(level.to_string()).or_default().push(name);
        }
    }
    if by_level.is_empty() {
        return None;
    }
    let rules: Vec<Value> = by_level
        .iter()
        .map(|(level, namespaces)| {
            json!({
                "name": format!("pod-security-{level}"),
                "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": namespaces}}]},
                "validate": {
                    "message": format!("refused by Pod Security Admission: the namespace enforces `{level}`"),
                    "podSecurity": {"level": level, "version": "latest"},
                },
            })
        })
        .collect();
    Some(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "pod-security-admission",
            "annotations": {"policies.kyverno.io/description":
                format!("{env}: the Pod Security level each namespace enforces (its pod-security.kubernetes.io/enforce label), as the API server applies it")},
        },
        "spec": {"validationFailureAction": "Enforce", "background": true, "rules": rules},
    }))
}

/// A variable of the istiod container, as rendered.
fn istiod_env(docs: &[&Value], name: &str) -> Option<String> {
    let istiod = docs.iter().find(|d| {
        d["kind"] == "Deployment" && d["metadata"]["namespace"] == "istio-system" && d["metadata"]["name"] == "istiod"
    })?;
    istiod["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(namespace: &str, inject: Option<&str>) -> Value {
        let labels = inject.map(|v| json!({"sidecar.istio.io/inject": v})).unwrap_or(json!({}));
        json!({"kind": "Deployment", "metadata": {"name": "a", "namespace": namespace},
               "spec": {"template": {"metadata": {"labels": labels}}}})
    }

    #[test]
    fn a_volume_without_a_source_is_defaulted_to_an_empty_dir() {
        let mut pod =
            json!({"kind": "Pod", "spec": {"volumes": [{"name": "a"}, {"name": "b", "secret": {"secretName": "s"}}]}});
        default_volumes(&mut pod);
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "a", "emptyDir": {}}, {"name": "b", "secret": {"secretName": "s"}}])
        );
    }

    #[test]
    fn injection_follows_the_namespace_then_the_pod() {
        let meshed = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "labels": {"istio-injection": "enabled"}}});
        let plain = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}});
        let namespaces = namespace_labels(&[&meshed, &plain]);
        assert!(wants_sidecar(&deployment("app", None), &namespaces));
        assert!(!wants_sidecar(&deployment("app", Some("false")), &namespaces));
        assert!(!wants_sidecar(&deployment("ops", None), &namespaces));
        assert!(wants_sidecar(&deployment("ops", Some("true")), &namespaces));
    }

    #[test]
    fn pod_security_rules_follow_each_namespace_s_enforced_level() {
        let ns = |name: &str, level: &str| json!({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}});
        let policy =
            pod_security_policy("dev", &[ns("a", "restricted"), ns("b", "baseline"), ns("c", "privileged")]).unwrap();
        let rules = policy["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["validate"]["podSecurity"]["level"], "baseline");
        assert_eq!(rules[1]["match"]["any"][0]["resources"]["namespaces"], json!(["a"]));
        assert!(pod_security_policy("dev", &[ns("c", "privileged")]).is_none());
    }
}

//! Every Secret and ConfigMap that something needs exists: a pod's volumes,
//! environment and `envFrom`, a Flux Kustomization's `decryption.secretRef`
//! (HelmRelease `valuesFrom` and `postBuild.substituteFrom` already fail
//! the render). Each must be rendered in the environment, created by a
//! controller from something rendered (a CloudNativePG Cluster's app
//! credentials, a webhook certificate Job's Secret, istiod's root
//! certificate), or created by the bootstrap (`BOOTSTRAP`, which also
//! checks that the bootstrap code really creates it). A pod whose reference
//! resolves to nothing would hang in ContainerCreating.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::Outcome;
use crate::flux::Environment;

/// What the bootstrap creates: (kind, namespace, name, environments, the
/// file that creates it, the text in that file that does).
type Created = (&'static str, &'static str, &'static str, &'static [&'static str], &'static str, &'static str);
const BOOTSTRAP: &[Created] = &[
    (
        "Secret",
        "flux-system",
        "flux-system",
        &["dev", "staging", "production"],
        "infra/modules/flux-bootstrap/main.tf",
        "resource \"flux_bootstrap_git\"",
    ),
    (
        "Secret",
        "flux-system",
        "sops-age",
        &["staging", "production"],
        "infra/modules/flux-bootstrap/main.tf",
        "name      = \"sops-age\"",
    ),
];

type Key = (String, String, String);

fn key(kind: &str, namespace: &str, name: &str) -> Key {
    (kind.to_string(), namespace.to_string(), name.to_string())
}

pub fn check(root: &Path, environments: &[Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for (kind, namespace, name, _, file, evidence) in BOOTSTRAP {
        let text = fs::read_to_string(root.join(file)).unwrap_or_default();
        if !text.contains(evidence) {
            outcome.failures.push(format!(
                "{kind} {namespace}/{name} is said to be created by {file}, which no longer has `{evidence}`"
            ));
        }
    }
    for env in environments {
        let docs: Vec<&Value> = env.docs().collect();
        let existing = existing(&env.name, &docs);
        for doc in &docs {
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            for (kind, name) in references(doc) {
                outcome.checked += 1;
                let wanted = key(kind, namespace, &name);
                let everywhere = key(kind, "*", &name);
                if !existing.contains(&wanted) && !existing.contains(&everywhere) {
                    outcome.failures.push(format!(
                        "{}: {} {namespace}/{} needs {kind} {namespace}/{name}, which nothing creates: \
                         render it, or have the bootstrap create it (docs/bootstrap.md)",
                        env.name,
                        doc["kind"].as_str().unwrap_or("?"),
                        doc["metadata"]["name"].as_str().unwrap_or("?"),
                    ));
                }
            }
        }
    }
    Ok(outcome)
}

/// What exists once the environment is up: rendered objects, what
/// controllers create from them, and what the bootstrap creates.
fn existing(env: &str, docs: &[&Value]) -> BTreeSet<Key> {
    let mut set = BTreeSet::new();
    set.insert(key("ConfigMap", "*", "kube-root-ca.crt")); // kube-controller-manager, every namespace
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        match kind {
            "Secret" | "ConfigMap" => {
                set.insert(key(kind, namespace, name));
            }
            // CloudNativePG: the app owner's credentials unless initdb names its own.
            "Cluster"
                if doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("postgresql.cnpg.io/"))
                    && doc["spec"]["bootstrap"]["initdb"]["secret"].is_null() =>
            {
                set.insert(key("Secret", namespace, &format!("{name}-app")));
            }
            // istiod publishes its root certificate to every namespace.
            "Deployment" if namespace == "istio-system" && name == "istiod" => {
                set.insert(key("ConfigMap", "*", "istio-ca-root-cert"));
            }
            "Prometheus" | "Alertmanager" if super::operator_pods::is_monitoring(doc, kind) => {
                for secret in super::operator_pods::monitoring_secrets(doc) {
                    set.insert(key("Secret", namespace, &secret));
                }
            }
            "Job" => {
                if let Some(secret) = certgen_secret(doc) {
                    set.insert(key("Secret", namespace, &secret));
                }
            }
            _ => {}
        }
    }
    for (kind, namespace, name, environments, ..) in BOOTSTRAP {
        if environments.contains(&env) {
            set.insert(key(kind, namespace, name));
        }
    }
    set
}

/// A kube-webhook-certgen `create` Job writes the Secret named by `--secret-name`.
fn certgen_secret(job: &Value) -> Option<String> {
    let containers = job["spec"]["template"]["spec"]["containers"].as_array()?;
    containers.iter().find_map(|c| {
        let image = c["image"].as_str()?;
        let args: Vec<&str> = c["args"].as_array()?.iter().filter_map(Value::as_str).collect();
        if !image.contains("kube-webhook-certgen") || args.first() != Some(&"create") {
            return None;
        }
        args.iter().find_map(|a| a.strip_prefix("--secret-name=").map(str::to_string))
    })
}

/// (kind, name) of every required Secret or ConfigMap the object refers to.
fn references(doc: &Value) -> Vec<(&'static str, String)> {
    let mut refs = Vec::new();
    let mut add = |kind: &'static str, reference: &Value, name_field: &str| {
        if reference["optional"] != true
            && let Some(name) = reference[name_field].as_str()
        {
            refs.push((kind, name.to_string()));
        }
    };
    if doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io/")) {
        add("Secret", &doc["spec"]["decryption"]["secretRef"], "name");
    }
    let Some(pod) = pod_spec(doc) else { return refs };
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        add("Secret", &volume["secret"], "secretName");
        add("ConfigMap", &volume["configMap"], "name");
        for source in volume["projected"]["sources"].as_array().into_iter().flatten() {
            add("Secret", &source["secret"], "name");
            add("ConfigMap", &source["configMap"], "name");
        }
    }
    let containers = ["initContainers", "containers"].into_iter().flat_map(|f| pod[f].as_array().into_iter().flatten());
    for container in containers {
        for var in container["env"].as_array().into_iter().flatten() {
            add("Secret", &var["valueFrom"]["secretKeyRef"], "name");
            add("ConfigMap", &var["valueFrom"]["configMapKeyRef"], "name");
        }
        for from in container["envFrom"].as_array().into_iter().flatten() {
            add("Secret", &from["secretRef"], "name");
            add("ConfigMap", &from["configMapRef"], "name");
        }
    }
    refs
}

/// The pod (metadata and spec) that a workload creates, or the Pod itself.
pub fn pod_template(doc: &Value) -> Option<&Value> {
    let spec = &doc["spec"];
    let template = match doc["kind"].as_str()? {
        "Pod" => doc,
        "CronJob" => &spec["jobTemplate"]["spec"]["template"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => &spec["template"],
        _ => return None,
    };
    template["spec"].is_object().then_some(template)
}

pub fn pod_spec(doc: &Value) -> Option<&Value> {
    pod_template(doc).map(|t| &t["spec"])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reference_resolves_to_a_rendered_or_controller_created_object_only() {
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "app"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db-app", "key": "uri"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "maybe", "key": "x", "optional": true}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "kube-root-ca.crt"}}]}}}});
        assert_eq!(
            references(&deployment),
            vec![("ConfigMap", "kube-root-ca.crt".into()), ("Secret", "db-app".into())]
        );
        let cluster = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                             "metadata": {"name": "db", "namespace": "app"}, "spec": {}});
        let set = existing("dev", &[&cluster]);
        assert!(set.contains(&key("Secret", "app", "db-app")));
        assert!(set.contains(&key("ConfigMap", "*", "kube-root-ca.crt")));
        assert!(!set.contains(&key("Secret", "flux-system", "sops-age")), "dev's bootstrap creates no sops-age");
    }

    #[test]
    fn the_committed_environments_reference_only_what_exists() {
        let project = crate::project::Project::discover().unwrap();
        let environments = crate::flux::snapshot::load_all(&project.root);
        let outcome = check(&project.root, &environments).unwrap();
        assert!(outcome.checked > 0);
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
}

//! What a kubelet checks before it starts a container, and kwok does not:
//! every Secret, ConfigMap and PersistentVolumeClaim a pod names exists
//! (and the keys it picks are in them), unless the reference is optional.
//! On a real node a missing one leaves the pod in `CreateContainerConfigError`
//! or `ContainerCreating` for good; here the pod would be Ready regardless,
//! so it is checked against the API server's objects.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The objects pods may refer to, by `namespace/name`.
#[derive(Default)]
pub struct Objects {
    /// Secrets and ConfigMaps with the keys of their data.
    pub secrets: BTreeMap<String, BTreeSet<String>>,
    pub config_maps: BTreeMap<String, BTreeSet<String>>,
    pub claims: BTreeSet<String>,
}

impl Objects {
    /// Indexes `kubectl get -A` items of Secrets, ConfigMaps and PVCs.
    pub fn new(secrets: &[Value], config_maps: &[Value], claims: &[Value]) -> Self {
        let key = |o: &Value| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        };
        let with_keys = |items: &[Value]| {
            items
                .iter()
                .map(|o| {
                    let keys = ["data", "binaryData", "stringData"]
                        .iter()
                        .filter_map(|field| o[*field].as_object())
                        .flat_map(|m| m.keys().cloned())
                        .collect();
                    (key(o), keys)
                })
                .collect()
        };
        Objects {
            secrets: with_keys(secrets),
            config_maps: with_keys(config_maps),
            claims: claims.iter().map(key).collect(),
        }
    }
}

/// What in this pod a kubelet could not resolve, one line each.
pub fn unresolved(pod: &Value, objects: &Objects) -> Vec<String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let spec = &pod["spec"];
    let mut missing = Vec::new();
    for field in ["initContainers", "containers"] {
        for container in spec[field].as_array().into_iter().flatten() {
            let container_name = container["name"].as_str().unwrap_or_default();
            for variable in container["env"].as_array().into_iter().flatten() {
                let what = format!("container {container_name} env {}", variable["name"].as_str().unwrap_or_default());
                for (kind, source) in [(Kind::Secret, "secretKeyRef"), (Kind::ConfigMap, "configMapKeyRef")] {
                    let reference = &variable["valueFrom"][source];
                    missing.extend(objects.lookup(
                        kind,
                        namespace,
                        reference,
                        "name",
                        reference["key"].as_str(),
                        &what,
                    ));
                }
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                let what = format!("container {container_name} envFrom");
                missing.extend(objects.lookup(Kind::Secret, namespace, &from["secretRef"], "name", None, &what));
                missing.extend(objects.lookup(Kind::ConfigMap, namespace, &from["configMapRef"], "name", None, &what));
            }
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let what = format!("volume {}", volume["name"].as_str().unwrap_or_default());
        let mut sources =
            vec![(Kind::Secret, &volume["secret"], "secretName"), (Kind::ConfigMap, &volume["configMap"], "name")];
        for source in volume["projected"]["sources"].as_array().into_iter().flatten() {
            sources.push((Kind::Secret, &source["secret"], "name"));
            sources.push((Kind::ConfigMap, &source["configMap"], "name"));
        }
        for (kind, source, name_field) in sources {
            missing.extend(objects.lookup(kind, namespace, source, name_field, None, &what));
            for key in source["items"].as_array().into_iter().flatten().filter_map(|i| i["key"].as_str()) {
                missing.extend(objects.lookup(kind, namespace, source, name_field, Some(key), &what));
            }
        }
        if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str()
            && !objects.claims.contains(&format!("{namespace}/{claim}"))
        {
            missing.push(format!("{what}: PersistentVolumeClaim {namespace}/{claim} does not exist"));
        }
    }
    missing.dedup();
    missing
}

#[derive(Clone, Copy)]
enum Kind {
    Secret,
    ConfigMap,
}

impl Objects {
    /// Why a (non-optional) reference to a Secret or ConfigMap, and to one
    /// of its keys, cannot be resolved; None if it can.
    fn lookup(
        &self,
        kind: Kind,
        namespace: &str,
        reference: &Value,
        name_field: &str,
        key: Option<&str>,
        what: &str,
    ) -> Option<String> {
        if reference["optional"] == true {
            return None;
        }
        let name = reference[name_field].as_str()?;
        let (index, kind) = match kind {
            Kind::Secret => (&self.secrets, "Secret"),
            Kind::ConfigMap => (&self.config_maps, "ConfigMap"),
        };
        match index.get(&format!("{namespace}/{name}")) {
            None => Some(format!("{what}: {kind} {namespace}/{name} does not exist")),
            Some(keys) => key
                .filter(|k| !keys.contains(*k))
                .map(|key| format!("{what}: {kind} {namespace}/{name} has no key {key}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn objects() -> Objects {
        Objects::new(
            &[json!({"metadata": {"namespace": "app", "name": "db-app"}, "data": {"uri": "x"}})],
            &[json!({"metadata": {"namespace": "app", "name": "config"}, "data": {"LEVEL": "info"}})],
            &[json!({"metadata": {"namespace": "app", "name": "data"}})],
        )
    }

    fn pod(env: Value, volumes: Value) -> Value {
        json!({"metadata": {"namespace": "app", "name": "p"},
               "spec": {"containers": [{"name": "app", "env": env}], "volumes": volumes}})
    }

    #[test]
    fn resolvable_references_pass() {
        let env = json!([
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db-app", "key": "uri"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "config", "key": "LEVEL"}}},
            {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "PLAIN", "value": "v"},
        ]);
        let volumes = json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "certs", "secret": {"secretName": "db-app", "items": [{"key": "uri", "path": "u"}]}},
        ]);
        assert_eq!(unresolved(&pod(env, volumes), &objects()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_secret_key_or_claim_is_named() {
        let env = json!([
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "db-app", "key": "password"}}},
            {"name": "OTHER", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "uri"}}},
        ]);
        let volumes = json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "other"}},
            {"name": "conf", "projected": {"sources": [{"configMap": {"name": "config", "items": [{"key": "NOPE", "path": "n"}]}}]}},
        ]);
        assert_eq!(
            unresolved(&pod(env, volumes), &objects()),
            [
                "container app env URL: Secret app/db-app has no key password",
                "container app env OTHER: Secret app/absent does not exist",
                "volume data: PersistentVolumeClaim app/other does not exist",
                "volume conf: ConfigMap app/config has no key NOPE",
            ]
        );
    }
}

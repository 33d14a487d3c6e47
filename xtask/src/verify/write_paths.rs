//! A container whose root filesystem is read-only can write only to its
//! volumes: every path it writes must be at or below a `volumeMount`. What
//! a container writes comes from its own configuration where it says so
//! (the directories named in the ConfigMaps mounted into it: Loki's
//! `path_prefix` and `*_directory`, Jaeger's Badger `directories`, a
//! Collector's `file_storage` directory), from the variables that name a
//! data folder, and from `WRITES` for what an image writes regardless of
//! its configuration. Otherwise the process fails at its first write with
//! "read-only file system", usually only once it is under load.

use std::collections::BTreeSet;

use anyhow::Result;
use serde_json::Value;

use super::Outcome;
use super::references::pod_spec;
use crate::flux::Environment;

/// (image repository, paths it always writes).
const WRITES: &[(&str, &[&str])] = &[
    // SQLite's journal and temporary files, next to the --data-path database.
    ("ghcr.io/example/demo-app", &["/tmp"]),
    ("docker.io/grafana/loki", &["/tmp"]),
    // Plugin downloads and the controller's scratch space.
    ("quay.io/argoproj/argo-rollouts", &["/tmp", "/home/argo-rollouts/plugin-bin"]),
    // The sigstore TUF cache of image verification.
    ("reg.kyverno.io/kyverno/kyverno", &["/.sigstore"]),
];

/// Variables whose value is a folder the process writes.
const DATA_VARIABLES: &[&str] = &["DEMO_APP_DATA_PATH"];

/// Configuration keys whose value is a folder the process writes.
fn is_directory_key(key: &str) -> bool {
    matches!(key, "path_prefix" | "directory" | "dir" | "keys" | "values" | "working_directory")
        || key.ends_with("_directory")
}

pub fn check(environments: &[Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for env in environments {
        let docs: Vec<&Value> = env.docs().collect();
        for doc in &docs {
            let Some(pod) = pod_spec(doc) else { continue };
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            let containers =
                ["initContainers", "containers"].into_iter().flat_map(|f| pod[f].as_array().into_iter().flatten());
            for container in containers {
                if container["securityContext"]["readOnlyRootFilesystem"] != true {
                    continue;
                }
                outcome.checked += 1;
                let mounts: Vec<&str> = container["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["readOnly"] != true)
                    .filter_map(|m| m["mountPath"].as_str())
                    .collect();
                for path in writes(container, pod, namespace, &docs) {
                    let covered =
                        mounts.iter().any(|m| path == *m || path.starts_with(&format!("{}/", m.trim_end_matches('/'))));
                    if !covered {
                        outcome.failures.push(format!(
                            "{}: {} {namespace}/{} container {}: writes {path} but its root filesystem is read-only \
                             and no writable volume is mounted there; mount an emptyDir or a volume at {path}",
                            env.name,
                            doc["kind"].as_str().unwrap_or("?"),
                            doc["metadata"]["name"].as_str().unwrap_or("?"),
                            container["name"].as_str().unwrap_or("?"),
                        ));
                    }
                }
            }
        }
    }
    Ok(outcome)
}

/// Every absolute path the container writes, as far as its image and its
/// configuration say.
fn writes(container: &Value, pod: &Value, namespace: &str, docs: &[&Value]) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let image = container["image"].as_str().unwrap_or_default();
    let repository = image.rsplit_once(':').map_or(image, |(repo, tag)| if tag.contains('/') { image } else { repo });
    for (known, fixed) in WRITES {
        if repository == *known {
            paths.extend(fixed.iter().map(|p| p.to_string()));
        }
    }
    let config_map = |name: &str| {
        docs.iter().find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["namespace"] == namespace && d["metadata"]["name"] == name
        })
    };
    for var in container["env"].as_array().into_iter().flatten() {
        if DATA_VARIABLES.contains(&var["name"].as_str().unwrap_or_default()) {
            paths.extend(var["value"].as_str().map(str::to_string));
        }
    }
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let Some(cm) = from["configMapRef"]["name"].as_str().and_then(config_map) else { continue };
        for variable in DATA_VARIABLES {
            paths.extend(cm["data"][variable].as_str().map(str::to_string));
        }
    }
    // Directories named in the configuration files mounted into the container.
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == mount["name"]);
        let Some(cm) = volume.and_then(|v| v["configMap"]["name"].as_str()).and_then(config_map) else { continue };
        for text in cm["data"].as_object().into_iter().flat_map(|d| d.values()).filter_map(Value::as_str) {
            if let Ok(config) = serde_norway::from_str::<Value>(text) {
                directories(&config, &mut paths);
            }
        }
    }
    paths.retain(|p| p.starts_with('/'));
    paths
}

fn directories(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(path) if is_directory_key(key) && path.starts_with('/') => {
                        out.insert(path.to_string());
                    }
                    _ => directories(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| directories(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_configured_directory_outside_every_mount_is_found() {
        let config = json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "o"},
            "data": {"config.yaml": "storage:\n  badger:\n    directories: {keys: /badger/keys, values: /data/values}\n"}});
        let container = json!({"name": "c", "image": "jaegertracing/jaeger:2.19.0",
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/jaeger"}, {"name": "b", "mountPath": "/badger"}]});
        let pod = json!({"volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "b", "emptyDir": {}}]});
        let found = writes(&container, &pod, "o", &[&config]);
        assert_eq!(found, BTreeSet::from(["/badger/keys".to_string(), "/data/values".to_string()]));
    }

    #[test]
    fn the_committed_environments_write_only_to_volumes() {
        let project = crate::project::Project::discover().unwrap();
        let environments = crate::flux::snapshot::load_all(&project.root);
        let outcome = check(&environments).unwrap();
        assert!(outcome.checked > 0);
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
}

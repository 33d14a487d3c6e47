//! Platform rules no schema can express, checked on everything rendered:
//! images are pinned (never `latest`), every container has requests and
//! limits, every chart a HelmRelease pulls from a repository is pinned to an
//! exact version.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::Outcome;

/// Parses every document of a multi-document YAML file as JSON values.
pub fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::flux::documents_of(&text).with_context(|| format!("{} is not YAML", path.display()))
}

pub fn check(files: &[std::path::PathBuf]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for file in files {
        for doc in documents(file)? {
            outcome.checked += 1;
            for problem in violations(&doc) {
                outcome.failures.push(format!("{}: {}: {problem}", file.display(), describe(&doc)));
            }
        }
    }
    Ok(outcome)
}

fn describe(doc: &Value) -> String {
    format!("{}/{}", doc["kind"].as_str().unwrap_or("?"), doc["metadata"]["name"].as_str().unwrap_or("?"))
}

/// Everything wrong with one document, in words.
pub fn violations(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for container in containers(doc) {
        let name = container["name"].as_str().unwrap_or("?");
        if let Some(image) = container["image"].as_str()
            && let Some(problem) = unpinned_image(image)
        {
            problems.push(format!("container {name}: {problem}"));
        }
        for (section, key) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
            if container["resources"][section][key].is_null() {
                problems.push(format!("container {name}: resources.{section}.{key} is missing"));
            }
        }
    }
    if doc["kind"] == "HelmRelease" {
        let spec = &doc["spec"]["chart"]["spec"];
        let from_repository = matches!(spec["sourceRef"]["kind"].as_str(), Some("HelmRepository"));
        if from_repository && !spec["version"].as_str().is_some_and(is_exact_version) {
            problems.push(format!("chart {} is not pinned to an exact version", spec["chart"]));
        }
    }
    if doc["kind"] == "OCIRepository" {
        let reference = &doc["spec"]["ref"];
        let pinned = reference["digest"].is_string() || reference["tag"].as_str().is_some_and(is_exact_version);
        if !pinned {
            problems.push("spec.ref must be a digest or an exact version tag".into());
        }
    }
    problems
}

/// Containers of a Pod or of any workload's pod template.
fn containers(doc: &Value) -> Vec<&Value> {
    let pod_spec = match doc["kind"].as_str() {
        Some("Pod") => &doc["spec"],
        Some("CronJob") => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job") => &doc["spec"]["template"]["spec"],
        _ => return Vec::new(),
    };
    ["initContainers", "containers"].iter().filter_map(|k| pod_spec[k].as_array()).flatten().collect()
}

fn unpinned_image(image: &str) -> Option<String> {
    if image.contains("@sha256:") {
        return None;
    }
    // The tag is after the last ':' that comes after the last '/' (a
    // registry may have a port).
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.split_once(':') {
        None => Some(format!("image {image} has no tag (means latest)")),
        Some((_, "latest")) => Some(format!("image {image} uses :latest")),
        Some(_) => None,
    }
}

fn is_exact_version(version: &str) -> bool {
    let core = version.strip_prefix('v').unwrap_or(version);
    let core = core.split_once(['-', '+']).map_or(core, |(c, _)| c);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(container: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [container]}}}})
    }

    const RESOURCES: &str = r#"{"requests": {"cpu": "10m", "memory": "1Mi"}, "limits": {"cpu": "1", "memory": "1Mi"}}"#;

    #[test]
    fn a_pinned_container_with_resources_passes() {
        let resources: Value = serde_json::from_str(RESOURCES).unwrap();
        let doc = deployment(json!({"name": "a", "image": "registry:5000/app:1.2.3", "resources": resources}));
        assert!(violations(&doc).is_empty(), "{:?}", violations(&doc));
    }

    #[test]
    fn latest_untagged_and_limitless_containers_fail() {
        let doc =
            deployment(json!({"name": "a", "image": "registry:5000/app", "resources": {"requests": {"cpu": "1"}}}));
        let problems = violations(&doc).join("\n");
        assert!(problems.contains("has no tag"), "{problems}");
        assert!(problems.contains("resources.limits.memory is missing"), "{problems}");
        let latest = deployment(json!({"name": "a", "image": "app:latest"}));
        assert!(violations(&latest).join("\n").contains(":latest"));
        let digest = json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "app@sha256:abc", "resources": serde_json::from_str::<Value>(RESOURCES).unwrap()}]}});
        assert!(violations(&digest).is_empty());
    }

    #[test]
    fn charts_from_repositories_need_exact_versions() {
        let release = |version: Value| json!({"kind": "HelmRelease", "spec": {"chart": {"spec": {"chart": "x", "version": version, "sourceRef": {"kind": "HelmRepository"}}}}});
        assert!(violations(&release(json!("1.2.3"))).is_empty());
        assert!(violations(&release(json!("v0.29.0"))).is_empty());
        for loose in [json!("1.x"), json!(">=1.0.0"), json!("*"), Value::Null] {
            assert_eq!(violations(&release(loose.clone())).len(), 1, "{loose}");
        }
        let from_git = json!({"kind": "HelmRelease", "spec": {"chart": {"spec": {"chart": "./charts/x", "sourceRef": {"kind": "GitRepository"}}}}});
        assert!(violations(&from_git).is_empty());
    }
}

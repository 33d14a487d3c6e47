//! Kubernetes schemas of the clusters' release: JSON schemas for kubeconform,
//! taken from the PyPI package `kubernetes-validate` (pinned in the Python
//! lock), and the API server's OpenAPI v3 documents for kubectl-validate,
//! taken from the Kubernetes module the control plane is built from (its
//! built-in schemas stop at 1.30).
//!
//! The package's schemas carry an `$id` on kubernetes.io and absolute `$ref`s
//! (`/api/_definitions.json#/$defs/...`), which resolve to URLs this machine
//! cannot fetch. The copy in the cache drops `$id` and makes the references
//! relative (`_definitions.json#/$defs/...`), so they resolve next to the
//! schema file, offline.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::project::{KUBERNETES_VERSION, Project};
use crate::tools::{self, fingerprint};

/// Folder name inside the package, and of the copy: strict variant only.
fn variant() -> String {
    format!("v{KUBERNETES_VERSION}-local-strict")
}

/// The converted schemas for the pinned Kubernetes version.
pub fn dir(project: &Project) -> Result<PathBuf> {
    let venv = tools::python_venv(project)?;
    // Bump the tag when the conversion changes, so the copy is rebuilt.
    let key = fingerprint(&[venv.to_string_lossy().as_bytes(), b"k8s-schemas-v2"]);
    Ok(project.schemas_dir().join(format!("k8s-{key}")).join(variant()))
}

/// Builds the converted copy if the current pin does not have one yet.
pub fn ensure(project: &Project) -> Result<PathBuf> {
    let target = dir(project)?;
    if target.join("_definitions.json").is_file() {
        return Ok(target);
    }
    let source = package_dir(&tools::python_venv(project)?)?.join(variant());
    if !source.is_dir() {
        bail!(
            "kubernetes-validate has no schemas for Kubernetes {KUBERNETES_VERSION} ({} missing); pick a version it ships",
            source.display()
        );
    }
    let staging = target.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    for entry in fs::read_dir(&source)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path)?;
            let offline = offline_schema(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            fs::write(staging.join(path.file_name().unwrap()), offline)?;
        }
    }
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target)?;
    Ok(target)
}

/// `--local-schemas` for kubectl-validate: `api/v1.json` and
/// `apis/<group>/<version>.json` from `api/openapi-spec/v3` of the pinned
/// Kubernetes module (the control plane's own release).
pub fn openapi_v3(project: &Project) -> Result<PathBuf> {
    let version = tools::KUBERNETES;
    let target = project.schemas_dir().join(format!("k8s-openapi-v3-{version}"));
    if target.join("api/v1.json").is_file() {
        return Ok(target);
    }
    let scratch = tempfile::tempdir()?;
    let module = crate::schemas::crd_sources::download("k8s.io/kubernetes", version, scratch.path())?;
    let staging = target.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    let source = module.join("api/openapi-spec/v3");
    let mut copied = 0;
    for entry in fs::read_dir(&source).with_context(|| format!("k8s.io/kubernetes@{version} has no {source:?}"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // Group-version documents only (`apis__apps__v1_openapi.json`); the
        // group lists (`apis__apps_openapi.json`) would shadow the folders.
        let Some(rel) = name.strip_suffix("_openapi.json").and_then(group_version_path) else { continue };
        let dest = staging.join(rel);
        fs::create_dir_all(dest.parent().expect("a group-version path has a folder"))?;
        fs::copy(&path, dest)?;
        copied += 1;
    }
    if copied == 0 {
        bail!("no group-version OpenAPI document in {}", source.display());
    }
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target)?;
    Ok(target)
}

/// `api__v1` -> `api/v1.json`, `apis__apps__v1` -> `apis/apps/v1.json`.
fn group_version_path(stem: &str) -> Option<String> {
    let parts: Vec<&str> = stem.split("__").collect();
    match parts.as_slice() {
        ["api", version] => Some(format!("api/{version}.json")),
        ["apis", group, version] => Some(format!("apis/{group}/{version}.json")),
        _ => None,
    }
}

fn offline_schema(schema: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(schema)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("$id");
    }
    Ok(serde_json::to_string(&value)?.replace("\"/api/_definitions.json#", "\"_definitions.json#"))
}

/// `<venv>/lib/python3.X/site-packages/kubernetes_validate/kubernetes-json-schema`.
fn package_dir(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in
        fs::read_dir(&lib).with_context(|| format!("no Python venv at {}; run `make tools`", venv.display()))?
    {
        let candidate = entry?.path().join("site-packages/kubernetes_validate/kubernetes-json-schema");
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!("kubernetes-validate is not installed in {}; run `make tools`", venv.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_group_version_documents_get_a_path() {
        assert_eq!(group_version_path("api__v1").as_deref(), Some("api/v1.json"));
        assert_eq!(group_version_path("apis__apps__v1").as_deref(), Some("apis/apps/v1.json"));
        assert_eq!(group_version_path("apis__apps"), None);
        assert_eq!(group_version_path(".well-known__openid-configuration"), None);
    }

    #[test]
    fn ids_are_dropped_and_definition_refs_become_relative() {
        let input = r#"{"$id": "https://kubernetes.io/api/x", "$ref": "/api/_definitions.json#/$defs/io.k8s.api.apps.v1.DeploymentSpec", "description": "see /api/_definitions.json"}"#;
        let output: serde_json::Value = serde_json::from_str(&offline_schema(input).unwrap()).unwrap();
        assert_eq!(
            output,
            serde_json::json!({"$ref": "_definitions.json#/$defs/io.k8s.api.apps.v1.DeploymentSpec", "description": "see /api/_definitions.json"})
        );
    }
}

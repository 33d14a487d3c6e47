//! Kubernetes JSON schemas for kubeconform, taken from the PyPI package
//! `kubernetes-validate` (pinned in the Python lock).
//!
//! The package's `$ref`s are absolute (`/api/_definitions.json#/$defs/...`)
//! while kubeconform resolves references next to the schema file, so the copy
//! in the cache has them made relative (`_definitions.json#/$defs/...`).

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
    let key = fingerprint(&[venv.to_string_lossy().as_bytes()]);
    Ok(project
        .schemas_dir()
        .join(format!("k8s-{key}"))
        .join(variant()))
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
            fs::write(
                staging.join(path.file_name().unwrap()),
                relative_refs(&text),
            )?;
        }
    }
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target)?;
    Ok(target)
}

fn relative_refs(schema: &str) -> String {
    schema.replace("\"/api/_definitions.json#", "\"_definitions.json#")
}

/// `<venv>/lib/python3.X/site-packages/kubernetes_validate/kubernetes-json-schema`.
fn package_dir(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in fs::read_dir(&lib)
        .with_context(|| format!("no Python venv at {}; run `make tools`", venv.display()))?
    {
        let candidate = entry?
            .path()
            .join("site-packages/kubernetes_validate/kubernetes-json-schema");
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!(
        "kubernetes-validate is not installed in {}; run `make tools`",
        venv.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_definition_refs_become_relative_and_nothing_else_changes() {
        let input = r#"{"$ref": "/api/_definitions.json#/$defs/io.k8s.api.apps.v1.DeploymentSpec", "description": "see /api/_definitions.json"}"#;
        assert_eq!(
            relative_refs(input),
            r#"{"$ref": "_definitions.json#/$defs/io.k8s.api.apps.v1.DeploymentSpec", "description": "see /api/_definitions.json"}"#
        );
    }
}

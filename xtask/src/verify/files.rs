//! Finding what to verify in the checkout.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Folders that never hold project manifests.
/// `snapshots` holds renders that verify compares as a whole.
pub const SKIPPED_DIRS: &[&str] = &[".git", "target", ".data", "node_modules", "tools", "snapshots"];

/// Every YAML file of the project that yamllint should read: Helm templates
/// (any chart's `templates/`) are Go templates, not YAML, and fixtures are
/// checked on their own.
pub fn yaml_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root).sort_by_file_name().into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        !(e.file_type().is_dir()
            && (SKIPPED_DIRS.contains(&name.as_ref())
                || name == "templates" && e.path().parent().is_some_and(|chart| chart.join("Chart.yaml").is_file())
                || rel == Path::new("tests/fixtures")))
    });
    for entry in walker {
        let entry = entry?;
        if entry.file_type().is_file() && is_yaml(entry.path()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

pub fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// What the Kubernetes validators get.
#[derive(Default)]
pub struct ManifestSet {
    /// Plain manifest files outside any kustomization.
    pub files: Vec<PathBuf>,
    /// Folders with a `kustomization.yaml`, validated through `kustomize build`.
    pub kustomizations: Vec<PathBuf>,
}

/// Sorts YAML files into manifests (every document has `apiVersion` and
/// `kind`) and kustomization roots; anything else (values, configs) is not a
/// Kubernetes object. A file inside a kustomization is validated through the
/// rendered kustomization only, since patches there are partial objects.
pub fn manifests(root: &Path, yaml_files: &[PathBuf]) -> Result<ManifestSet> {
    let mut set = ManifestSet::default();
    for file in yaml_files {
        let name = file.file_name().unwrap_or_default();
        if name == "kustomization.yaml" || name == "kustomization.yml" {
            set.kustomizations.push(file.parent().unwrap().to_path_buf());
        }
    }
    for file in yaml_files {
        let inside_kustomization = set.kustomizations.iter().any(|k| file.starts_with(k));
        if !inside_kustomization && is_manifest(file)? && !file.starts_with(root.join(".github")) {
            set.files.push(file.clone());
        }
    }
    Ok(set)
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: Option<serde_norway::Value>,
    kind: Option<serde_norway::Value>,
}

/// True when the file has at least one document and each has apiVersion and
/// kind; false when none has both (values, configs). A file where some
/// documents have both and others do not is an error: one broken document
/// must not turn a whole multi-document manifest into "not Kubernetes".
pub fn is_manifest(path: &Path) -> Result<bool> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut typed, mut untyped) = (0, Vec::new());
    for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let Ok(value) = serde_norway::Value::deserialize(doc) else {
            // Unparseable YAML is yamllint's to report, not ours to guess.
            return Ok(false);
        };
        if value.is_null() {
            continue;
        }
        match serde_norway::from_value::<TypeMeta>(value) {
            Ok(TypeMeta { api_version: Some(_), kind: Some(_) }) => typed += 1,
            _ => untyped.push(i + 1),
        }
    }
    if typed > 0 && !untyped.is_empty() {
        bail!(
            "{}: document(s) {untyped:?} lack apiVersion or kind while {typed} other(s) have both; \
             a manifest's every document needs them",
            path.display()
        );
    }
    Ok(typed > 0)
}

/// GitHub Actions workflows.
pub fn workflows(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(".github/workflows");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| is_yaml(p));
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn sorts_manifests_kustomizations_and_other_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let deploy =
            write(root, "deploy/app.yaml", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\n");
        write(root, "deploy/k/kustomization.yaml", "resources: [cm.yaml]\n");
        write(root, "deploy/k/cm.yaml", "apiVersion: v1\nkind: ConfigMap\n");
        write(root, "deploy/k/patch.yaml", "kind: ConfigMap\n");
        write(root, "charts/demo/values.yaml", "replicas: 1\n");
        write(root, "charts/demo/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n");
        write(root, "charts/demo/templates/deploy.yaml", "{{ .Values.x }}\n");
        write(root, "target/debug/x.yaml", "apiVersion: v1\nkind: ConfigMap\n");
        let yaml = yaml_files(root).unwrap();
        assert_eq!(yaml.len(), 6, "{yaml:?}");
        let set = manifests(root, &yaml).unwrap();
        assert_eq!(set.files, vec![deploy]);
        assert_eq!(set.kustomizations, vec![root.join("deploy/k")]);
    }

    #[test]
    fn a_manifest_with_one_untyped_document_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "m.yaml", "apiVersion: v1\nkind: ConfigMap\n---\nmetadata: {name: x}\n");
        let err = is_manifest(&file).unwrap_err().to_string();
        assert!(err.contains("document(s) [2] lack apiVersion or kind"), "{err}");
        let values = write(dir.path(), "v.yaml", "replicas: 1\n---\nimage: x\n");
        assert!(!is_manifest(&values).unwrap());
    }
}

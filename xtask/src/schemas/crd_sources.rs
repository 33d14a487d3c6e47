//! Where the upstream CRDs come from without `CRD_DIR`: `tools/crds.yaml`
//! names each set by module and version, and `go mod download` (the module
//! proxy the tools come from) brings it; only the listed paths are kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd;
use crate::project::Project;
use crate::tools::fingerprint;

pub const SOURCES: &str = "tools/crds.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdSet {
    /// Folder of the assembled tree (the layout of the offline mirror).
    pub folder: String,
    pub module: String,
    pub version: String,
    /// Files or folders inside the module; folders give their CRD files.
    pub paths: Vec<String>,
}

pub fn sets(project: &Project) -> Result<Vec<CrdSet>> {
    let path = project.root.join(SOURCES);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let sets: Vec<CrdSet> =
        serde_norway::from_str(&text).with_context(|| format!("{SOURCES} is not a list of sets"))?;
    if sets.is_empty() {
        bail!("{SOURCES} names no CRD set");
    }
    Ok(sets)
}

/// The CRDs of every set in one tree under the cache, fetched once per
/// content of `tools/crds.yaml`.
pub fn fetch(project: &Project) -> Result<PathBuf> {
    let text = fs::read(project.root.join(SOURCES))?;
    let root = project.schemas_dir().join(format!("crd-sources-{}", fingerprint(&[&text])));
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    let staging = root.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    let scratch = tempfile::tempdir()?;
    for set in sets(project)? {
        let module = download(&set.module, &set.version, scratch.path())?;
        let dest = staging.join(&set.folder);
        fs::create_dir_all(&dest)?;
        let mut taken = 0;
        for rel in &set.paths {
            let source = module.join(rel);
            let files: Vec<PathBuf> = if source.is_dir() {
                let mut files: Vec<PathBuf> =
                    fs::read_dir(&source)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
                files.sort();
                files
            } else if source.is_file() {
                vec![source.clone()]
            } else {
                bail!("{SOURCES}: {}@{} has no {rel}", set.module, set.version);
            };
            for file in files {
                let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
                // Kustomizations and READMEs sit beside the CRDs upstream.
                if !is_yaml || !fs::read_to_string(&file)?.contains("kind: CustomResourceDefinition") {
                    continue;
                }
                fs::copy(&file, dest.join(file.file_name().expect("a file has a name")))?;
                taken += 1;
            }
        }
        if taken == 0 {
            bail!("{SOURCES}: {}@{} {:?} hold no CustomResourceDefinition", set.module, set.version, set.paths);
        }
    }
    fs::write(staging.join(".complete"), b"")?;
    let _ = fs::remove_dir_all(&root);
    fs::rename(&staging, &root)?;
    Ok(root)
}

/// `go mod download -json module@version`: the module's folder in the module
/// cache (read-only there, so files are copied out).
pub(crate) fn download(module: &str, version: &str, scratch: &Path) -> Result<PathBuf> {
    let spec = format!("{module}@{version}");
    let out = cmd::run(
        Command::new("go").current_dir(scratch).env("GOWORK", "off").args(["mod", "download", "-json", &spec]),
    )
    .with_context(|| format!("cannot fetch {spec} from the Go module proxy (or set CRD_DIR to an offline mirror)"))?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    info["Dir"].as_str().map(PathBuf::from).with_context(|| format!("`go mod download` gave no folder for {spec}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sources_file_parses_and_names_every_folder_the_mirror_layout_uses() {
        let project = Project::discover().unwrap();
        let sets = sets(&project).unwrap();
        let folders: std::collections::BTreeSet<&str> = sets.iter().map(|s| s.folder.as_str()).collect();
        for folder in ["flux", "kyverno", "istio", "argo-rollouts", "prometheus-operator", "cloudnative-pg"] {
            assert!(folders.contains(folder), "{SOURCES} has no set for {folder}");
        }
        assert!(sets.iter().all(|s| s.version.starts_with('v') && !s.paths.is_empty()));
    }

    /// Each controller the loopback cluster runs is built at the version of
    /// the CRDs the charts install with it: a controller ahead of its CRDs
    /// writes fields the API server prunes.
    #[test]
    fn crd_sets_are_the_versions_of_the_controllers_we_build() {
        // One module gives Kyverno's CLI and its controllers: v1.19.1 (CLI
        // fixes) over the chart's v1.19.0 CRDs, a patch apart.
        const PATCH_AHEAD: &[&str] = &["github.com/kyverno/kyverno"];
        let minor = |v: &str| v.rsplit_once('.').map(|(m, _)| m.to_string());
        let project = Project::discover().unwrap();
        let mut compared = 0;
        for set in sets(&project).unwrap() {
            let Some(tool) = crate::tools::GO_TOOLS.iter().find(|t| t.module == set.module) else { continue };
            compared += 1;
            if PATCH_AHEAD.contains(&tool.module) {
                assert_eq!(minor(tool.version), minor(&set.version), "{} in {SOURCES}", set.module);
            } else {
                assert_eq!(tool.version, set.version, "{} in {SOURCES}", set.module);
            }
        }
        assert_eq!(compared, 11, "every CRD set's controller is built here");
    }
}

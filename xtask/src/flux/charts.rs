//! Where an upstream chart comes from: the offline chart mirror
//! (`CHART_MIRROR`, one Helm repository folder per upstream, each with an
//! `index.yaml`), or, without a mirror, the HelmRepository's own URL through
//! `helm pull --version`, cached by version. A pin that neither has is a
//! failure naming the release, the version and what to do.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;

#[derive(Clone)]
pub enum ChartSource {
    /// `CHART_MIRROR`: folders of Helm repositories (`<folder>/index.yaml`).
    Mirror { dir: PathBuf, indexes: Vec<(PathBuf, Value)> },
    /// Each HelmRepository's URL, charts kept under `cache`.
    Upstream { helm: PathBuf, cache: PathBuf },
}

impl ChartSource {
    pub fn mirror(dir: &Path) -> Result<Self> {
        let mut indexes = Vec::new();
        for entry in fs::read_dir(dir).with_context(|| format!("CHART_MIRROR={} cannot be read", dir.display()))? {
            let folder = entry?.path();
            let index = folder.join("index.yaml");
            if !index.is_file() {
                continue;
            }
            let text = fs::read_to_string(&index)?;
            let value: Value =
                serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", index.display()))?;
            indexes.push((folder, value));
        }
        if indexes.is_empty() {
            bail!("CHART_MIRROR={} holds no Helm repository (no <folder>/index.yaml)", dir.display());
        }
        indexes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self::Mirror { dir: dir.to_path_buf(), indexes })
    }

    /// Every version of `chart` the source is known to have (the mirror's
    /// indexes; upstream is only known by asking it).
    fn mirrored_versions(indexes: &[(PathBuf, Value)], chart: &str) -> Vec<String> {
        let mut versions: Vec<String> = indexes
            .iter()
            .flat_map(|(_, index)| index["entries"][chart].as_array().cloned().unwrap_or_default())
            .filter_map(|entry| entry["version"].as_str().map(str::to_string))
            .collect();
        versions.sort();
        versions.dedup();
        versions
    }

    /// The packaged chart `name` at exactly `version` from the repository
    /// at `url`, for the HelmRelease `release` (named in every error).
    pub fn locate(&self, release: &str, url: &str, name: &str, version: &str) -> Result<PathBuf> {
        match self {
            ChartSource::Mirror { dir, indexes } => {
                let found: Vec<(&PathBuf, &Value)> = indexes
                    .iter()
                    .flat_map(|(folder, index)| {
                        index["entries"][name].as_array().into_iter().flatten().map(move |entry| (folder, entry))
                    })
                    .filter(|(_, entry)| entry["version"] == version)
                    .collect();
                let [(folder, entry)] = found.as_slice() else {
                    if found.len() > 1 {
                        bail!(
                            "HelmRelease {release}: chart {name} {version} is in several mirror folders of {}",
                            dir.display()
                        );
                    }
                    let have = Self::mirrored_versions(indexes, name);
                    bail!(
                        "HelmRelease {release}: chart {name} version {version} is not in the chart mirror {} (it has: {}); \
                         pin a version the mirror has, or add the chart there first (see its SOURCES.md)",
                        dir.display(),
                        if have.is_empty() { "no version of this chart".to_string() } else { have.join(", ") }
                    );
                };
                let file = entry["urls"][0]
                    .as_str()
                    .with_context(|| format!("mirror index entry {name} {version} has no urls"))?;
                let archive = folder.join(file);
                if !archive.is_file() {
                    bail!(
                        "HelmRelease {release}: the mirror's index lists {} but the file is missing",
                        archive.display()
                    );
                }
                Ok(archive)
            }
            ChartSource::Upstream { helm, cache } => {
                let dir = cache.join(crate::tools::fingerprint(&[url.as_bytes()]));
                let archive = dir.join(format!("{name}-{version}.tgz"));
                if !archive.is_file() {
                    fs::create_dir_all(&dir)?;
                    let mut pull = Command::new(helm);
                    pull.args(["pull", name, "--repo", url, "--version", version, "--destination"]).arg(&dir);
                    cmd::run(&mut pull).with_context(|| {
                        format!(
                            "HelmRelease {release}: chart {name} version {version} cannot be fetched from {url}; \
                             check that the version exists (`helm search repo {name} --versions`), \
                             or set CHART_MIRROR to an offline chart mirror"
                        )
                    })?;
                }
                if !archive.is_file() {
                    bail!("HelmRelease {release}: `helm pull` succeeded but {} is missing", archive.display());
                }
                Ok(archive)
            }
        }
    }
}

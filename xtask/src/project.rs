//! Where things are: the checkout, the tool cache, the upstream CRDs.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Name of the cache folder under `$XDG_CACHE_HOME`.
pub const CACHE_NAME: &str = "demo-platform";

/// Kubernetes version every manifest is validated against.
pub const KUBERNETES_VERSION: &str = "1.33.0";

pub struct Project {
    /// The repository root (the workspace that holds `xtask/`).
    pub root: PathBuf,
    /// `${XDG_CACHE_HOME:-$HOME/.cache}/demo-platform`, outside the checkout.
    pub cache: PathBuf,
    /// Upstream CRDs (`CRD_DIR`); `None` makes every custom resource a failure.
    pub crd_dir: Option<PathBuf>,
    /// Offline Helm chart mirror (`CHART_MIRROR`): one Helm repository folder
    /// per upstream. `None`: charts come from each HelmRepository's URL.
    pub chart_mirror: Option<PathBuf>,
}

impl Project {
    pub fn discover() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask must live one level below the repository root")?
            .to_path_buf();
        let cache = match env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                PathBuf::from(env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?).join(".cache")
            }
        }
        .join(CACHE_NAME);
        let crd_dir = dir_from_env(&root, "CRD_DIR", "the upstream CRDs (e.g. CRD_DIR=../shared/crds)")?;
        let chart_mirror =
            dir_from_env(&root, "CHART_MIRROR", "an offline Helm chart mirror (e.g. CHART_MIRROR=../shared/charts)")?;
        Ok(Self { root, cache, crd_dir, chart_mirror })
    }

    /// Upstream charts fetched from their repositories (no `CHART_MIRROR`).
    pub fn charts_cache(&self) -> PathBuf {
        self.cache.join("charts")
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.cache.join("tools")
    }

    pub fn schemas_dir(&self) -> PathBuf {
        self.cache.join("schemas")
    }

    /// A path relative to the repository root, for messages.
    pub fn rel<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// An optional folder named by the environment variable `var`.
fn dir_from_env(root: &Path, var: &str, what: &str) -> Result<Option<PathBuf>> {
    let Some(dir) = env::var_os(var).filter(|v| !v.is_empty()) else { return Ok(None) };
    let dir = PathBuf::from(dir);
    let dir = if dir.is_relative() { root.join(dir) } else { dir };
    if !dir.is_dir() {
        bail!("{var}={} is not a directory; point it at {what}", dir.display());
    }
    Ok(Some(dir.canonicalize()?))
}

//! The pinned external toolchain: what it is, where it lives, how it gets there.
//!
//! Every tool is built or installed from a package registry into a versioned
//! folder of the cache. The folder name carries a fingerprint of the pin (go.mod
//! and go.sum, the builder manifest, the Python lock), so a changed pin means a
//! new folder and a rebuild, and an unchanged one is reused.

mod debian;
pub mod go;
mod install;
mod opentofu;
mod otelcol;
mod python;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::project::Project;

pub use go::{GO_TOOLS, KUBERNETES, module_source};
pub use python::PYTHON_TOOLS;

/// Every tool, in install order, with how to find its binary.
#[derive(Clone, Copy)]
pub enum Tool {
    Go(&'static go::GoTool),
    Otelcol,
    OpenTofu,
    Python(&'static python::PythonTool),
    Debian(&'static debian::DebianTool),
}

impl Tool {
    pub fn all() -> Vec<Tool> {
        let mut all: Vec<Tool> = GO_TOOLS.iter().map(Tool::Go).collect();
        all.push(Tool::Otelcol);
        all.push(Tool::OpenTofu);
        all.extend(PYTHON_TOOLS.iter().map(Tool::Python));
        all.extend(debian::DEBIAN_TOOLS.iter().map(Tool::Debian));
        all
    }

    pub fn name(&self) -> &'static str {
        match self {
            Tool::Go(t) => t.name,
            Tool::Otelcol => otelcol::NAME,
            Tool::OpenTofu => opentofu::NAME,
            Tool::Python(t) => t.name,
            Tool::Debian(t) => t.binary,
        }
    }

    /// The pinned version, as declared in the pin files.
    fn version(&self, project: &Project) -> Result<String> {
        match self {
            Tool::Go(t) => Ok(t.version.to_string()),
            Tool::Otelcol => otelcol::version(project),
            Tool::OpenTofu => Ok(opentofu::version()),
            Tool::Python(t) => python::version(project, t),
            Tool::Debian(t) => Ok(debian::installed_version(t).unwrap_or_else(|| "(not installed)".into())),
        }
    }

    /// Where the binary is (or would be) for the current pin.
    fn path(&self, project: &Project) -> Result<PathBuf> {
        match self {
            Tool::Go(t) => go::binary_path(project, t),
            Tool::Otelcol => otelcol::binary_path(project),
            Tool::OpenTofu => opentofu::binary_path(project),
            Tool::Python(t) => python::binary_path(project, t),
            Tool::Debian(t) => Ok(debian::binary_path(t)),
        }
    }

    fn is_installed(&self, project: &Project) -> Result<bool> {
        let present = self.path(project)?.is_file();
        Ok(match self {
            Tool::Python(_) => present && python::is_complete(project)?,
            _ => present,
        })
    }
}

/// The virtualenv that holds the Python tools (and kubeconform's Kubernetes schemas).
pub fn python_venv(project: &Project) -> Result<PathBuf> {
    python::venv_dir(project)
}

/// The path of an installed tool, or an error that says how to get it.
pub fn locate(project: &Project, name: &str) -> Result<PathBuf> {
    let tool = Tool::all()
        .into_iter()
        .find(|t| t.name() == name)
        .with_context(|| format!("`{name}` is not a tool of this project (see xtask/src/tools)"))?;
    let path = tool.path(project)?;
    if !tool.is_installed(project)? {
        bail!("{name} is not installed for the current pin (expected {}); run `make tools`", path.display());
    }
    Ok(path)
}

/// `cargo xtask tools`: install what is missing, then print the table. A tool
/// that fails does not stop the others; the failures are reported at the end.
pub fn install_all(project: &Project) -> Result<()> {
    fs::create_dir_all(project.tools_dir())?;
    let mut missing = Vec::new();
    for tool in Tool::all() {
        if !tool.is_installed(project)? {
            missing.push(tool);
        }
    }
    let state = if missing.is_empty() { "warm" } else { "cold" };
    println!("tools: {state}: {} of {} tools to install", missing.len(), Tool::all().len());
    let built = if missing.is_empty() { Vec::new() } else { install::install(project, missing, workers())? };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for tool in Tool::all() {
        let path = tool.path(project)?;
        let result = built.iter().find(|b| b.name == tool.name());
        let installed = tool.is_installed(project)?;
        if let Some(error) = result.and_then(|b| b.error.as_ref()) {
            failures.push(format!("{}: {error}", tool.name()));
        } else if !installed {
            failures.push(format!("{}: install reported success but {} is missing", tool.name(), path.display()));
        }
        if installed {
            link_into_bin(project, tool.name(), &path)?;
        }
        rows.push([
            tool.name().to_string(),
            tool.version(project)?,
            if installed { path.display().to_string() } else { "FAILED (see below)".into() },
            result.map_or("cached".into(), |b| format!("{:.0}", b.seconds)),
        ]);
    }
    print_table(&["tool", "version", "path", "build s (its job)"], &rows);
    if !failures.is_empty() {
        bail!("{} tool(s) failed to install:\n{}", failures.len(), failures.join("\n\n"));
    }
    println!("\nAll tools are in {} (add it to PATH to use them by hand).", bin_dir(project).display());
    Ok(())
}

/// Jobs at a time: `TOOLS_JOBS`, or 2 (measured best on 2 cores; see install.rs).
fn workers() -> usize {
    std::env::var("TOOLS_JOBS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(2)
}

/// `cargo xtask tools --check`: report, build nothing.
pub fn check(project: &Project) -> Result<()> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for tool in Tool::all() {
        let path = tool.path(project)?;
        let installed = tool.is_installed(project)?;
        let state = if installed { "ok" } else { "MISSING" };
        if !installed {
            missing.push(tool.name());
        }
        rows.push([tool.name().to_string(), tool.version(project)?, path.display().to_string(), state.into()]);
    }
    print_table(&["tool", "version", "path", "state"], &rows);
    if !missing.is_empty() {
        bail!("missing: {}; run `make tools`", missing.join(", "));
    }
    Ok(())
}

/// Stable `bin/` folder of symlinks to the current pins, for humans and scripts.
pub fn bin_dir(project: &Project) -> PathBuf {
    project.tools_dir().join("bin")
}

fn link_into_bin(project: &Project, name: &str, target: &Path) -> Result<()> {
    let dir = bin_dir(project);
    fs::create_dir_all(&dir)?;
    let link = dir.join(name);
    if fs::read_link(&link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).with_context(|| format!("cannot link {}", link.display()))
}

/// Short hex digest naming one pinned build.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read pin file {}", path.display()))
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_any_part_and_with_part_boundaries() {
        let a = fingerprint(&[b"go.mod", b"go.sum"]);
        assert_eq!(a.len(), 12);
        assert_eq!(a, fingerprint(&[b"go.mod", b"go.sum"]));
        assert_ne!(a, fingerprint(&[b"go.mod", b"go.sun"]));
        assert_ne!(a, fingerprint(&[b"go.modgo", b".sum"]));
    }

    #[test]
    fn tool_names_are_unique() {
        let mut names: Vec<_> = Tool::all().iter().map(Tool::name).collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
    }
}

//! Python tools, in one virtualenv built from PyPI with the exact set in
//! `tools/python/requirements.lock` (installed with `--no-deps`, so nothing
//! outside the lock can slip in).

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use super::{fingerprint, read};
use crate::cmd;
use crate::project::Project;

pub struct PythonTool {
    pub name: &'static str,
    /// Distribution name in the lock file.
    pub dist: &'static str,
}

pub const PYTHON_TOOLS: &[PythonTool] = &[
    PythonTool { name: "kubernetes-validate", dist: "kubernetes-validate" },
    PythonTool { name: "yamllint", dist: "yamllint" },
    PythonTool { name: "checkov", dist: "checkov" },
    PythonTool { name: "zizmor", dist: "zizmor" },
    PythonTool { name: "schemathesis", dist: "schemathesis" },
];

const PYTHON: &str = "python3";

fn lock_file(project: &Project) -> PathBuf {
    project.root.join("tools/python/requirements.lock")
}

pub fn venv_dir(project: &Project) -> Result<PathBuf> {
    let python = cmd::run(Command::new(PYTHON).arg("--version"))
        .context("Python 3.11 is required; install it and put `python3` on PATH")?;
    let key = fingerprint(&[&read(&lock_file(project))?, cmd::first_line(&python).as_bytes()]);
    Ok(project.tools_dir().join(format!("python-{key}")))
}

pub fn binary_path(project: &Project, tool: &PythonTool) -> Result<PathBuf> {
    Ok(venv_dir(project)?.join("bin").join(tool.name))
}

pub fn version(project: &Project, tool: &PythonTool) -> Result<String> {
    let lock = fs::read_to_string(lock_file(project))?;
    lock.lines()
        .find_map(|l| l.strip_prefix(tool.dist)?.strip_prefix("=="))
        .map(str::to_string)
        .with_context(|| format!("{} is not pinned in tools/python/requirements.lock", tool.dist))
}

/// Written last: a venv without it is a half-finished install.
const COMPLETE_MARKER: &str = ".installed";

pub fn is_complete(project: &Project) -> Result<bool> {
    Ok(venv_dir(project)?.join(COMPLETE_MARKER).is_file())
}

/// Builds the whole venv once; every Python tool lives in it. A venv hard-codes
/// its own path in its scripts, so it is built in place, not renamed.
pub fn install_venv(project: &Project) -> Result<()> {
    let venv = venv_dir(project)?;
    if is_complete(project)? {
        return Ok(());
    }
    let _ = fs::remove_dir_all(&venv);
    let result = cmd::run(Command::new(PYTHON).args(["-m", "venv"]).arg(&venv)).and_then(|_| {
        cmd::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--no-deps", "--disable-pip-version-check", "-r"])
                .arg(lock_file(project)),
        )
    });
    if let Err(err) = result {
        let _ = fs::remove_dir_all(&venv);
        return Err(err);
    }
    fs::write(venv.join(COMPLETE_MARKER), b"")?;
    Ok(())
}

//! The Python baseline's virtualenv: built from PyPI with exactly the set in
//! `bench/baselines/python/requirements.lock` (`--no-deps`), in a folder of
//! the tool cache named after the lock's fingerprint.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;
use crate::project::Project;
use crate::tools::fingerprint;

pub const APP_DIR: &str = "bench/baselines/python";
const PYTHON: &str = "python3";
/// Written last: a venv without it is a half-finished install.
const COMPLETE_MARKER: &str = ".installed";

fn lock_text(project: &Project) -> Result<Vec<u8>> {
    let lock = project.root.join(APP_DIR).join("requirements.lock");
    fs::read(&lock).with_context(|| format!("cannot read {}", lock.display()))
}

fn venv_dir(project: &Project) -> Result<PathBuf> {
    let python = cmd::run(Command::new(PYTHON).arg("--version"))
        .context("Python 3.11 is required for the baseline; install it and put `python3` on PATH")?;
    let key = fingerprint(&[&lock_text(project)?, cmd::first_line(&python).as_bytes()]);
    Ok(project.tools_dir().join(format!("bench-python-{key}")))
}

/// The venv's interpreter (a link to the real binary, not a pyenv shim, so
/// the pid we start is the server's) and the folder holding `app.py`; builds
/// the venv when missing.
pub fn ensure(project: &Project) -> Result<(PathBuf, PathBuf)> {
    let venv = venv_dir(project)?;
    if !venv.join(COMPLETE_MARKER).is_file() {
        println!("building the Python baseline venv in {} ...", venv.display());
        let _ = fs::remove_dir_all(&venv);
        let lock = project.root.join(APP_DIR).join("requirements.lock");
        let result = cmd::run(Command::new(PYTHON).args(["-m", "venv"]).arg(&venv)).and_then(|_| {
            cmd::run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--no-deps", "--disable-pip-version-check", "-r"])
                    .arg(&lock),
            )
        });
        if let Err(err) = result {
            let _ = fs::remove_dir_all(&venv);
            return Err(err).context("installing the Python baseline's lock");
        }
        fs::write(venv.join(COMPLETE_MARKER), b"")?;
    }
    // The venv's own `bin/python` (a symlink to the real interpreter, never
    // resolved: Python finds its venv through the path it was started by).
    Ok((venv.join("bin/python"), project.root.join(APP_DIR)))
}

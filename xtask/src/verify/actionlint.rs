//! actionlint over GitHub workflows, with shellcheck for `run:` scripts.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use super::{Outcome, Validators};
use crate::cmd;

pub fn check(v: &Validators, files: &[PathBuf]) -> Result<Outcome> {
    if files.is_empty() {
        return Ok(Outcome::default());
    }
    let output = cmd::capture(
        Command::new(&v.actionlint).args(["-no-color", "-oneline", "-shellcheck"]).arg(&v.shellcheck).args(files),
    )?;
    Ok(Outcome::from_lines("actionlint", files.len(), &output))
}

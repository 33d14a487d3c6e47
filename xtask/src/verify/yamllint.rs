//! yamllint with the repository's `.yamllint.yaml`.

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
        Command::new(&v.yamllint)
            .arg("--strict")
            .args(["--format", "parsable", "--config-file"])
            .arg(&v.yamllint_config)
            .args(files),
    )?;
    Ok(Outcome::from_lines("yamllint", files.len(), &output))
}

//! The Collector's own `validate` over the platform's pipeline: the base
//! configuration (local stack) and base + cluster layer.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::{Outcome, Validators};
use crate::cmd;

pub const CONFIG_DIR: &str = "deploy/observability/otel-collector";

/// Each variant is the list of files given to one Collector, in order.
pub fn variants(root: &Path) -> Vec<Vec<PathBuf>> {
    let dir = root.join(CONFIG_DIR);
    let base = dir.join("config.yaml");
    vec![vec![base.clone()], vec![base, dir.join("config.k8s.yaml")]]
}

pub fn check(v: &Validators, variants: &[Vec<PathBuf>]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for files in variants {
        outcome.checked += 1;
        if let Some(failure) = validate(v, files)? {
            outcome.failures.push(failure);
        }
    }
    Ok(outcome)
}

/// `None` when the Collector accepts the configuration.
pub fn validate(v: &Validators, files: &[PathBuf]) -> Result<Option<String>> {
    let mut validate = Command::new(&v.otelcol);
    validate.arg("validate");
    for file in files {
        validate.arg("--config").arg(file);
    }
    let output = cmd::capture(&mut validate)?;
    Ok((!output.status.success()).then(|| {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!("otelcol validate {}: {}", names.join(" + "), cmd::tail(&output.stderr, &output.stdout, 10))
    }))
}

//! kubectl-validate: the API server's own validation code (OpenAPI, CEL
//! rules, structural schemas), run offline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Outcome, Validators};
use crate::cmd;

/// Newest Kubernetes whose schemas kubectl-validate v0.0.4 embeds; without a
/// cluster or the network it can validate native kinds only against these.
pub const KUBERNETES_VERSION: &str = "1.30";

#[derive(Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    message: String,
}

pub fn check(v: &Validators, files: &[PathBuf]) -> Result<Outcome> {
    if files.is_empty() {
        return Ok(Outcome::default());
    }
    let mut run = Command::new(&v.kubectl_validate);
    run.args(["--output", "json", "--version", KUBERNETES_VERSION]);
    if let Some(crds) = &v.crds {
        run.arg("--local-crds").arg(&crds.crd_dir);
    }
    run.args(files);
    let output = cmd::capture(&mut run)?;
    let report: BTreeMap<String, Vec<Status>> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!("kubectl-validate printed no report:\n{}", cmd::tail(&output.stderr, &output.stdout, 20))
    })?;
    let mut outcome = Outcome::default();
    for (file, statuses) in report {
        for status in statuses {
            outcome.checked += 1;
            if status.status != "Success" {
                let msg = if status.message.contains("failed to retrieve validator") && v.crds.is_none() {
                    format!("schema missing for a custom resource, set CRD_DIR ({})", status.message)
                } else {
                    status.message
                };
                outcome.failures.push(format!("{file}: {msg}"));
            }
        }
    }
    Ok(outcome)
}

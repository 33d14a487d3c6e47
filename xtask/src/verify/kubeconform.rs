//! kubeconform: strict JSON-schema validation against the pinned Kubernetes
//! version and the upstream CRDs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Outcome, Validators};
use crate::cmd;
use crate::project::KUBERNETES_VERSION;

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    resources: Vec<Resource>,
    summary: Summary,
}

#[derive(Deserialize)]
struct Resource {
    filename: String,
    kind: String,
    name: String,
    status: String,
    msg: String,
}

#[derive(Deserialize)]
struct Summary {
    valid: usize,
    invalid: usize,
    errors: usize,
    skipped: usize,
}

pub fn check(v: &Validators, files: &[PathBuf]) -> Result<Outcome> {
    if files.is_empty() {
        return Ok(Outcome::default());
    }
    let mut run = Command::new(&v.kubeconform);
    run.args(["-strict", "-summary", "-output", "json", "-kubernetes-version", KUBERNETES_VERSION])
        .arg("-schema-location")
        .arg(format!("{}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", v.k8s_schemas.display()));
    run.arg("-schema-location").arg(v.crds.kubeconform_location());
    run.args(files);
    let output = cmd::capture(&mut run)?;
    let report: Report = serde_json::from_slice(&output.stdout).with_context(|| {
        format!("kubeconform printed no report:\n{}", cmd::tail(&output.stderr, &output.stdout, 20))
    })?;
    let failures = report
        .resources
        .iter()
        .filter(|r| r.status != "statusValid")
        .map(|r| {
            let msg = if r.msg.contains("could not find schema") {
                format!("no schema for {} (add its CRD set to tools/crds.yaml)", r.kind)
            } else {
                r.msg.clone()
            };
            format!("{}: {}/{}: {msg}", r.filename, r.kind, r.name)
        })
        .collect();
    let s = report.summary;
    Ok(Outcome { checked: s.valid + s.invalid + s.errors + s.skipped, failures })
}

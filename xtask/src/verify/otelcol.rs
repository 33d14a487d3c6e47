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

/// Jaeger v2 is a Collector distribution too: the configuration each
/// environment gives it (the `userconfig` of its HelmRelease, after the
/// overlay's patches) goes through the `jaeger` binary's own `validate`.
/// Returns (where it came from, the configuration).
pub fn jaeger_configs(manifests: &[(String, PathBuf)]) -> Result<Vec<(String, serde_json::Value)>> {
    let mut configs = Vec::new();
    for (env, file) in manifests {
        for doc in super::rules::documents(file)? {
            let is_jaeger = doc["kind"] == "HelmRelease" && doc["spec"]["chart"]["spec"]["chart"] == "jaeger";
            let config = &doc["spec"]["values"]["userconfig"];
            if is_jaeger && !config.is_null() {
                configs.push((format!("{env} ({})", file.display()), config.clone()));
            }
        }
    }
    Ok(configs)
}

/// `jaeger validate` of each configuration, written to `scratch` (emptied first).
pub fn check_jaeger(jaeger: &Path, configs: &[(String, serde_json::Value)], scratch: &Path) -> Result<Outcome> {
    if configs.is_empty() {
        anyhow::bail!("no HelmRelease of the `jaeger` chart with values.userconfig found");
    }
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)?;
    let mut outcome = Outcome::default();
    for (i, (origin, config)) in configs.iter().enumerate() {
        outcome.checked += 1;
        let file = scratch.join(format!("jaeger-{i}.yaml"));
        std::fs::write(&file, serde_norway::to_string(config)?)?;
        let output = cmd::capture(Command::new(jaeger).arg("validate").arg("--config").arg(&file))?;
        if !output.status.success() {
            outcome.failures.push(format!(
                "jaeger validate, userconfig of {origin}: {}",
                cmd::tail(&output.stderr, &output.stdout, 10)
            ));
        }
    }
    Ok(outcome)
}

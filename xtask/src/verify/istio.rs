//! `istioctl analyze --use-kube=false` on what each environment's cluster
//! would hold (everything Flux applies there, upstream releases included),
//! with the mesh config istiod is given (the istiod HelmRelease's
//! `values.meshConfig`). Every message, Info included,
//! fails unless `ALLOWED` lists it with the reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use serde_json::Value;

use super::{Outcome, rules};
use crate::cmd;
use crate::project::Project;

pub use crate::flux::ENVIRONMENTS;

/// (message code, resource as istioctl names it, why it is acceptable).
/// Empty: every environment analyses clean.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// Each environment of `manifests` (environment, file).
pub fn check(project: &Project, manifests: &[(String, PathBuf)]) -> Result<Outcome> {
    let istioctl = crate::tools::locate(project, "istioctl")?;
    let mut outcome = Outcome::default();
    for env in ENVIRONMENTS {
        let files: Vec<PathBuf> = manifests.iter().filter(|(e, _)| e == env).map(|(_, f)| f.clone()).collect();
        if files.is_empty() {
            outcome.failures.push(format!("{env}: nothing rendered to analyse"));
            continue;
        }
        let mesh_config = mesh_config(&files, &project.cache.join("verify").join(env))?;
        for message in analyze(&istioctl, &files, Some(&mesh_config))? {
            if !allowed(&message) {
                outcome.failures.push(format!("{env}: {}", describe(&message)));
            }
        }
        outcome.checked += 1;
    }
    Ok(outcome)
}

/// One run of `istioctl analyze` over `files`, all namespaces: its messages.
pub fn analyze(istioctl: &Path, files: &[PathBuf], mesh_config: Option<&Path>) -> Result<Vec<Value>> {
    let mut analyze = Command::new(istioctl);
    analyze.args(["analyze", "--use-kube=false", "--all-namespaces", "--output", "json"]);
    analyze.args(["--failure-threshold", "Info", "--output-threshold", "Info"]);
    if let Some(config) = mesh_config {
        analyze.arg("--meshConfigFile").arg(config);
    }
    analyze.args(files);
    let output = cmd::capture(&mut analyze)?;
    // The exit status says nothing with `--output json` (0 with errors
    // found); the JSON array of messages is the answer. A clean run prints
    // `[]`, then a human line, which is why only the first value is read.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = serde_json::Deserializer::from_str(stdout.trim()).into_iter::<Vec<Value>>().next();
    match parsed {
        Some(Ok(messages)) => Ok(messages),
        _ => bail!("istioctl analyze printed no JSON list: {}", cmd::tail(&output.stderr, &output.stdout, 15)),
    }
}

fn allowed(message: &Value) -> bool {
    let code = message["code"].as_str().unwrap_or_default();
    let resource = message["origin"].as_str().unwrap_or_default();
    ALLOWED.iter().any(|(c, r, _)| *c == code && *r == resource)
}

fn describe(message: &Value) -> String {
    format!(
        "{} [{}] ({}) {}",
        message["level"].as_str().unwrap_or("?"),
        message["code"].as_str().unwrap_or("?"),
        message["origin"].as_str().unwrap_or("?"),
        message["message"].as_str().unwrap_or("?")
    )
}

/// The istiod HelmRelease's `values.meshConfig`, as a file for `--meshConfigFile`.
fn mesh_config(layers: &[PathBuf], dir: &Path) -> Result<PathBuf> {
    for file in layers {
        for doc in rules::documents(file)? {
            if doc["kind"] == "HelmRelease" && doc["metadata"]["name"] == "istiod" {
                let config = &doc["spec"]["values"]["meshConfig"];
                if !config.is_object() {
                    bail!("the istiod HelmRelease sets no values.meshConfig");
                }
                fs::create_dir_all(dir)?;
                let path = dir.join("istio-mesh-config.yaml");
                fs::write(&path, serde_norway::to_string(config)?)?;
                return Ok(path);
            }
        }
    }
    bail!("no HelmRelease named istiod is applied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_message_says_why() {
        for (code, resource, why) in ALLOWED {
            assert!(code.starts_with("IST") && !resource.is_empty() && why.len() > 20, "{code} {resource}: {why}");
        }
    }
}

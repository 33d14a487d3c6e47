//! kubectl-validate: the API server's own validation code (OpenAPI, CEL
//! rules, structural schemas), run offline. Native kinds are checked against
//! the OpenAPI documents of the clusters' Kubernetes release
//! (`schemas::k8s::openapi_v3`), not the tool's built-in 1.30 ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Outcome, Validators};
use crate::cmd;

/// kubectl-validate validates RBAC object names as DNS subdomains, where the
/// API server only refuses path-unsafe names: `kyverno:admission-controller`
/// is a valid ClusterRole (kubernetes-sigs/kubectl-validate#115). Exactly
/// that message, on exactly these kinds, is not a finding; every other one is.
fn is_rbac_name_false_positive(message: &str) -> bool {
    const RBAC: &[&str] = &["ClusterRole.", "ClusterRoleBinding.", "Role.", "RoleBinding."];
    let rbac =
        RBAC.iter().any(|k| message.starts_with(k) && message[k.len()..].starts_with("rbac.authorization.k8s.io \""));
    let name_only = message.matches("is invalid: ").count() == 1
        && message.contains("is invalid: metadata.name: Invalid value: ")
        && message.contains("a lowercase RFC 1123 subdomain must consist of")
        && !message.contains(", metadata.")
        && !message.contains(", spec.");
    let name = message.split('"').nth(1).unwrap_or_default();
    rbac && name_only && name.contains(':') && !name.contains('/') && !name.contains('%')
}

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
    run.args(["--output", "json"]).arg("--local-schemas").arg(&v.k8s_openapi);
    run.arg("--local-crds").arg(&v.crds.crd_dir);
    run.args(files);
    let output = cmd::capture(&mut run)?;
    let report: BTreeMap<String, Vec<Status>> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!("kubectl-validate printed no report:\n{}", cmd::tail(&output.stderr, &output.stdout, 20))
    })?;
    let mut outcome = Outcome::default();
    for (file, statuses) in report {
        for status in statuses {
            outcome.checked += 1;
            if status.status != "Success" && !is_rbac_name_false_positive(&status.message) {
                let msg = if status.message.contains("failed to retrieve validator") {
                    format!("no schema for a custom resource; add its CRD set to tools/crds.yaml ({})", status.message)
                } else {
                    status.message
                };
                outcome.failures.push(format!("{file}: {msg}"));
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rbac_colon_name_message_is_ignored() {
        let rbac = r#"ClusterRole.rbac.authorization.k8s.io "kyverno:admission-controller" is invalid: metadata.name: Invalid value: "kyverno:admission-controller": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"#;
        assert!(is_rbac_name_false_positive(rbac));
        let deployment = rbac.replace("ClusterRole.rbac.authorization.k8s.io", "Deployment.apps");
        assert!(!is_rbac_name_false_positive(&deployment));
        let uppercase = rbac.replace("kyverno:admission-controller", "Kyverno-Admission");
        assert!(!is_rbac_name_false_positive(&uppercase));
    }
}

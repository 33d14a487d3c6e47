//! Objects admitted while their webhook did not answer. A webhook with
//! `failurePolicy: Ignore` lets a request through when its server is down,
//! as it is here (and on a cluster) while the controller behind it starts:
//! kube-prometheus-stack's own PrometheusRules are created in the same
//! install as the operator that validates them; istiod's validator is
//! Ignore until istiod serves, then Fail. So once Flux is done, every
//! object covered by a webhook whose Service refused calls is sent through
//! admission again (a server-side dry-run update, which calls the webhook
//! and stores nothing) and must be admitted; and a broken object must be
//! refused, so that "none refused" is known to mean the webhook validated
//! them.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde_json::Value;

use super::control_plane::ControlPlane;
use super::network::Routes;

/// The annotation the dry-run update sets (never stored).
const MARK: &str = "loopback.demo-platform.dev/readmitted=true";

/// What was sent through admission again: `resource.group` names, the
/// objects counted per webhook configuration.
pub struct Readmitted {
    pub configuration: String,
    pub resources: Vec<String>,
    pub objects: usize,
}

/// Every validating webhook configuration whose Service refused calls during
/// the run and is served now: its objects admitted again. Fails naming each
/// object a webhook refuses.
pub fn readmit(plane: &ControlPlane, routes: &Routes) -> Result<Vec<Readmitted>> {
    let mut done = Vec::new();
    let mut refusals = Vec::new();
    for configuration in plane.admin.list("validatingwebhookconfigurations")? {
        let name = configuration["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let resources = covered_resources(&configuration, |namespace, service| {
            routes.was_refused(namespace, service) && routes.serves(namespace, service)
        });
        if resources.is_empty() {
            continue;
        }
        let resources = expand(plane, resources)?;
        let mut objects = 0;
        for resource in &resources {
            let (annotated, refused) = admit_again(plane, resource)?;
            objects += annotated;
            refusals.extend(refused);
        }
        done.push(Readmitted { configuration: name, resources: resources.into_iter().collect(), objects });
    }
    if !refusals.is_empty() {
        bail!(
            "{} object(s) admitted while their webhook was down are refused by it now:\n  {}",
            refusals.len(),
            refusals.join("\n  ")
        );
    }
    Ok(done)
}

/// Every object of `resource` through a server-side dry run of an
/// annotation: how many were admitted, and each refusal. `Warning:` lines
/// are the API server's notes, not refusals; a webhook call that timed out
/// (a busy machine) is asked again, twice, as a controller would retry.
fn admit_again(plane: &ControlPlane, resource: &str) -> Result<(usize, Vec<String>)> {
    let args = ["annotate", resource, "--all", "-A", MARK, "--overwrite", "--dry-run=server"];
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = plane.admin.command().args(args).output()?;
        let annotated = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("annotated")).count();
        let refused = refusals(&String::from_utf8_lossy(&out.stderr));
        if attempts < 3 && !refused.is_empty() && refused.iter().all(|l| timed_out(l)) {
            continue;
        }
        return Ok((annotated, refused));
    }
}

fn refusals(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("Warning:")).map(str::to_string).collect()
}

fn timed_out(line: &str) -> bool {
    ["context deadline exceeded", "i/o timeout", "Client.Timeout"].iter().any(|t| line.contains(t))
}

/// `*.group` entries (istiod's validator covers whole groups) as every
/// resource of the group that can be updated, from the API server.
fn expand(plane: &ControlPlane, resources: BTreeSet<String>) -> Result<BTreeSet<String>> {
    let mut expanded = BTreeSet::new();
    for resource in resources {
        match resource.strip_prefix("*.") {
            Some(group) => {
                let names =
                    plane.admin.run(&["api-resources", "--api-group", group, "--verbs=update", "-o", "name"])?;
                expanded.extend(names.lines().filter(|l| !l.is_empty()).map(str::to_string));
            }
            None => {
                expanded.insert(resource);
            }
        }
    }
    Ok(expanded)
}

/// `resource.group` of every rule of a webhook that checks updates, in a
/// configuration whose Service `served` accepts (`*.group`
/// for all of a group's). A wildcard group and subresources are left out:
/// they name no list to re-send.
fn covered_resources(configuration: &Value, served: impl Fn(&str, &str) -> bool) -> BTreeSet<String> {
    let mut resources = BTreeSet::new();
    for webhook in configuration["webhooks"].as_array().into_iter().flatten() {
        let service = &webhook["clientConfig"]["service"];
        let (Some(namespace), Some(name)) = (service["namespace"].as_str(), service["name"].as_str()) else {
            continue;
        };
        // Whatever its failurePolicy says now: istiod turns its validator's
        // from Ignore to Fail once it serves, after letting through what
        // came before.
        if !served(namespace, name) {
            continue;
        }
        for rule in webhook["rules"].as_array().into_iter().flatten() {
            let strings = |field: &str| -> Vec<&str> {
                rule[field].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
            };
            if !strings("operations").iter().any(|op| matches!(*op, "UPDATE" | "*")) {
                continue;
            }
            for group in strings("apiGroups").into_iter().filter(|g| *g != "*") {
                let named = |r: &&str| !(r.contains('/') || (*r == "*" && group.is_empty()));
                for resource in strings("resources").into_iter().filter(named) {
                    resources.insert(if group.is_empty() {
                        resource.to_string()
                    } else {
                        format!("{resource}.{group}")
                    });
                }
            }
        }
    }
    resources
}

/// A PrometheusRule whose expression does not parse, sent as a server-side
/// dry-run: the Prometheus Operator's webhook must refuse it for its
/// expression. Proves that the readmission above was validated.
pub fn broken_rule_is_refused(plane: &ControlPlane, namespace: &str) -> Result<String> {
    let rule = serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "loopback-broken-rule", "namespace": namespace},
        "spec": {"groups": [{"name": "broken", "rules": [{"alert": "Broken", "expr": "sum(rate(up[5m])"}]}]},
    });
    match plane.admin.stdin(&["create", "--dry-run=server", "-f", "-"], &rule.to_string()) {
        Ok(_) => bail!("a PrometheusRule with an unparsable expression was admitted: its webhook does not validate"),
        Err(err) => {
            let message = format!("{err:#}");
            // The CRD's schema does not parse PromQL: only the operator says this.
            if message.contains("\"prometheusrules\" is invalid") && message.contains("could not parse expression") {
                Ok(message)
            } else {
                bail!("a broken PrometheusRule was refused, but not by its webhook's rule check: {message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn warnings_are_not_refusals_and_only_timeouts_are_asked_again() {
        let stderr = "Warning: monitoring.coreos.com/v1alpha1 is deprecated\n\n\
            Error from server (Forbidden): admission webhook \"prometheusrulemutate.monitoring.coreos.com\" denied the request: rule is invalid\n";
        let refused = refusals(stderr);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("denied the request"));
        assert!(!timed_out(&refused[0]), "a denial is final");
        assert!(timed_out(
            "Error from server (InternalError): Internal error occurred: failed calling webhook \"x\": context deadline exceeded"
        ));
    }

    #[test]
    fn only_rules_that_check_updates_of_named_resources_are_sent_again() {
        let configuration = json!({"webhooks": [
            {
                "failurePolicy": "Ignore",
                "clientConfig": {"service": {"namespace": "monitoring", "name": "operator"}},
                "rules": [
                    {"apiGroups": ["monitoring.coreos.com"], "operations": ["CREATE", "UPDATE"],
                     "resources": ["prometheusrules", "prometheusrules/status"]},
                    {"apiGroups": ["*"], "operations": ["*"], "resources": ["*"]},
                    {"apiGroups": ["networking.istio.io"], "operations": ["*"], "resources": ["*"]},
                    {"apiGroups": [""], "operations": ["CREATE"], "resources": ["pods"]},
                ],
            },
            {
                "failurePolicy": "Fail",
                "clientConfig": {"service": {"namespace": "monitoring", "name": "operator"}},
                "rules": [{"apiGroups": ["apps"], "operations": ["UPDATE"], "resources": ["deployments"]}],
            },
            {
                "failurePolicy": "Ignore",
                "clientConfig": {"service": {"namespace": "other", "name": "down"}},
                "rules": [{"apiGroups": ["apps"], "operations": ["UPDATE"], "resources": ["statefulsets"]}],
            },
        ]});
        let found = covered_resources(&configuration, |namespace, _| namespace == "monitoring");
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["*.networking.istio.io", "deployments.apps", "prometheusrules.monitoring.coreos.com"]
        );
    }
}

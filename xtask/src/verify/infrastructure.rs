//! What each environment's infrastructure (infra/, OpenTofu) must provide
//! for the render to run, read from the OpenTofu code itself:
//! - every volume claim (PersistentVolumeClaims, StatefulSet templates,
//!   Prometheus and Alertmanager storage, CloudNativePG instances) gets a
//!   StorageClass that exists: the one it names, or the default;
//! - every admission webhook the render registers is reachable from the
//!   control plane: its pod port is open in the environment's firewall.
//!
//! A claim without a class bound to nothing stays Pending forever; a
//! webhook the API server cannot reach fails every request it covers.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::Outcome;
use crate::flux::Environment;

/// Per environment: the OpenTofu file that provides its storage, the text
/// that proves it, the StorageClasses it provides and which is the default.
struct Provided {
    envs: &'static [&'static str],
    file: &'static str,
    evidence: &'static str,
    classes: &'static [&'static str],
    default: &'static str,
    /// Ports the control plane reaches on the nodes; None: no firewall.
    webhook_ports: Option<&'static [u16]>,
}

const INFRASTRUCTURE: &[Provided] = &[
    // kind ships local-path-provisioner as the default class `standard`;
    // its nodes share one Docker network with the control plane.
    Provided {
        envs: &["dev"],
        file: "infra/modules/kind-cluster/main.tf",
        evidence: "resource \"kind_cluster\"",
        classes: &["standard"],
        default: "standard",
        webhook_ports: None,
    },
    // EKS: the gp3 class of infra/envs/aws, and the node security group
    // rules of terraform-aws-modules/eks 20.x (its recommended rules) plus
    // the additional rules of infra/envs/aws/main.tf, read from that file.
    Provided {
        envs: &["staging", "production"],
        file: "infra/envs/aws/main.tf",
        evidence: "resource \"kubernetes_storage_class_v1\" \"gp3\"",
        classes: &["gp3"],
        default: "gp3",
        webhook_ports: Some(&[443, 4443, 6443, 8443, 9443, 10250]),
    },
];

pub fn check(root: &Path, environments: &[Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for env in environments {
        let provided = INFRASTRUCTURE
            .iter()
            .find(|p| p.envs.contains(&env.name.as_str()))
            .with_context(|| format!("{}: no infrastructure is described for this environment", env.name))?;
        let tf =
            fs::read_to_string(root.join(provided.file)).with_context(|| format!("cannot read {}", provided.file))?;
        if !tf.contains(provided.evidence) {
            outcome.failures.push(format!(
                "{}: {} no longer has `{}`, which provides the StorageClass {}",
                env.name, provided.file, provided.evidence, provided.default
            ));
        }
        if provided.default == "gp3" && !tf.contains("\"storageclass.kubernetes.io/is-default-class\" = \"true\"") {
            outcome.failures.push(format!("{}: {} marks no StorageClass as the default", env.name, provided.file));
        }
        let docs: Vec<&Value> = env.docs().collect();
        for (owner, class) in claims(&docs) {
            outcome.checked += 1;
            let class = class.unwrap_or(provided.default);
            if !provided.classes.contains(&class) {
                outcome.failures.push(format!(
                    "{}: {owner} claims a volume of StorageClass `{class}`, which {} does not provide (it has: {})",
                    env.name,
                    provided.file,
                    provided.classes.join(", ")
                ));
            }
        }
        let Some(base_ports) = provided.webhook_ports else { continue };
        let mut open: BTreeSet<u16> = base_ports.iter().copied().collect();
        open.extend(additional_node_ports(&tf)?);
        for (webhook, port) in webhook_ports(&docs)? {
            outcome.checked += 1;
            if !open.contains(&port) {
                outcome.failures.push(format!(
                    "{}: webhook {webhook} is served on pod port {port}, which the control plane cannot reach: \
                     add it to node_security_group_additional_rules in {}",
                    env.name, provided.file
                ));
            }
        }
    }
    Ok(outcome)
}

/// (owner, StorageClass or None for the default) of every volume claim.
fn claims<'a>(docs: &[&'a Value]) -> Vec<(String, Option<&'a str>)> {
    let mut claims = Vec::new();
    for doc in docs {
        let owner = format!(
            "{} {}/{}",
            doc["kind"].as_str().unwrap_or("?"),
            doc["metadata"]["namespace"].as_str().unwrap_or("-"),
            doc["metadata"]["name"].as_str().unwrap_or("?")
        );
        let class = |spec: &'a Value| spec["storageClassName"].as_str().filter(|c| !c.is_empty());
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        match doc["kind"].as_str().unwrap_or_default() {
            "PersistentVolumeClaim" => claims.push((owner, class(&doc["spec"]))),
            "StatefulSet" => {
                for template in doc["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
                    claims.push((owner.clone(), class(&template["spec"])));
                }
            }
            "Prometheus" | "Alertmanager" if api.starts_with("monitoring.coreos.com/") => {
                let template = &doc["spec"]["storage"]["volumeClaimTemplate"];
                if template.is_object() {
                    claims.push((owner, class(&template["spec"])));
                }
            }
            "Cluster" if api.starts_with("postgresql.cnpg.io/") => {
                claims.push((owner.clone(), doc["spec"]["storage"]["storageClass"].as_str().filter(|c| !c.is_empty())));
            }
            _ => {}
        }
    }
    claims
}

/// `from_port`s of the rules in `node_security_group_additional_rules`.
fn additional_node_ports(tf: &str) -> Result<Vec<u16>> {
    let Some(start) = tf.find("node_security_group_additional_rules = {") else { return Ok(Vec::new()) };
    let block = &tf[start..];
    let end = block.find("\n  }\n").unwrap_or(block.len());
    let mut ports = Vec::new();
    for line in block[..end].lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("from_port") {
            let value = value.trim_start_matches([' ', '=']).trim();
            ports.push(value.parse().with_context(|| format!("from_port `{value}` is not a port number"))?);
        }
    }
    Ok(ports)
}

/// (webhook, the pod port its Service forwards to) of every rendered
/// admission webhook served by a Service.
fn webhook_ports(docs: &[&Value]) -> Result<Vec<(String, u16)>> {
    let mut found = Vec::new();
    let configurations = docs.iter().filter(|d| {
        matches!(d["kind"].as_str(), Some("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"))
    });
    for configuration in configurations {
        for webhook in configuration["webhooks"].as_array().into_iter().flatten() {
            let service = &webhook["clientConfig"]["service"];
            let (Some(namespace), Some(name)) = (service["namespace"].as_str(), service["name"].as_str()) else {
                continue;
            };
            let port = service["port"].as_u64().unwrap_or(443);
            let label = format!("{} ({namespace}/{name}:{port})", webhook["name"].as_str().unwrap_or("?"));
            let svc = docs.iter().find(|d| {
                d["kind"] == "Service" && d["metadata"]["namespace"] == namespace && d["metadata"]["name"] == name
            });
            let Some(svc) = svc else { bail!("webhook {label}: its Service is not rendered") };
            let entry =
                svc["spec"]["ports"].as_array().into_iter().flatten().find(|p| p["port"].as_u64() == Some(port));
            let Some(entry) = entry else { bail!("webhook {label}: the Service has no port {port}") };
            let target = match &entry["targetPort"] {
                Value::Number(n) => n.as_u64(),
                Value::String(named) => named_port(docs, svc, named),
                _ => Some(port),
            };
            let target =
                target.with_context(|| format!("webhook {label}: its target port resolves to no container port"))?;
            found.push((label, u16::try_from(target)?));
        }
    }
    Ok(found)
}

/// The number of the container port `name` of the pods `service` selects.
fn named_port(docs: &[&Value], service: &Value, name: &str) -> Option<u64> {
    let selector = service["spec"]["selector"].as_object()?;
    docs.iter()
        .filter(|d| d["metadata"]["namespace"] == service["metadata"]["namespace"])
        .filter_map(|d| super::references::pod_template(d))
        .filter(|t| selector.iter().all(|(k, v)| t["metadata"]["labels"][k] == *v))
        .flat_map(|t| t["spec"]["containers"].as_array().into_iter().flatten())
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_rules_are_read_from_the_module_block() {
        let tf = "module \"eks\" {\n  node_security_group_additional_rules = {\n    a = {\n      from_port = 15017\n      to_port = 15017\n    }\n  }\n}\n";
        assert_eq!(additional_node_ports(tf).unwrap(), vec![15017]);
        assert!(additional_node_ports("module \"eks\" {}").unwrap().is_empty());
    }

    #[test]
    fn the_committed_environments_have_their_storage_and_webhook_ports() {
        let project = crate::project::Project::discover().unwrap();
        let environments = crate::flux::snapshot::load_all(&project.root);
        let outcome = check(&project.root, &environments).unwrap();
        assert!(outcome.checked > 0);
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
}

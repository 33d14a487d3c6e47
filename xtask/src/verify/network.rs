//! Every pod can reach what it needs, and be reached by what needs it,
//! under the NetworkPolicies in force: the rendered ones and the ones
//! Kyverno generates (`kyverno apply` of the GeneratingPolicies over the
//! environment's Namespaces). What a pod needs is read from the render:
//! DNS for every pod; istiod for every pod with a sidecar; the Services
//! its environment names by URL (the Collector, the backend); the
//! PostgreSQL instances whose credentials it mounts; and, for those
//! instances (the pods of operator_pods.rs), the API server, their operator
//! and each other. A connection
//! a policy blocks is a pod that starts and then fails at its first call.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Outcome;
use super::references::pod_template;
use crate::cmd;
use crate::flux::{Environment, documents_of, to_yaml_stream};

/// A pod as NetworkPolicies see it.
#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    namespace: String,
    labels: Value,
    /// (name, number, protocol) of its container ports.
    ports: Vec<(String, u64, String)>,
    /// Outside the pod network (the API server): reached through ipBlocks only.
    external: bool,
}

/// One connection that must work.
#[derive(Debug)]
struct Need {
    from: usize,
    to: usize,
    port: u64,
    protocol: &'static str,
    why: String,
}

pub fn check(kyverno: &Path, policies_dir: &Path, environments: &[Environment], scratch: &Path) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for env in environments {
        let docs: Vec<Value> = env.docs().cloned().collect();
        let mut policies: Vec<Value> = docs.iter().filter(|d| d["kind"] == "NetworkPolicy").cloned().collect();
        policies.extend(generated(kyverno, policies_dir, &docs, &scratch.join(&env.name))?);
        let namespaces: BTreeMap<String, Value> = docs
            .iter()
            .filter(|d| d["apiVersion"] == "v1" && d["kind"] == "Namespace")
            .map(|d| {
                let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let mut labels = d["metadata"]["labels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                labels["kubernetes.io/metadata.name"] = json!(name);
                (name, labels)
            })
            .collect();
        let endpoints = endpoints(&docs);
        for need in needs(&docs, &endpoints) {
            // Only namespaces where a policy applies can refuse anything.
            let (from, to) = (&endpoints[need.from], &endpoints[need.to]);
            outcome.checked += 1;
            if let Err(blocked) = allowed(&policies, &namespaces, from, to, need.port, need.protocol) {
                outcome.failures.push(format!(
                    "{}: {}/{} cannot reach {}/{} on {}/{} ({}): {blocked}",
                    env.name, from.namespace, from.name, to.namespace, to.name, need.port, need.protocol, need.why
                ));
            }
        }
    }
    if outcome.checked == 0 {
        outcome.failures.push("no connection was checked: the render has no pods".into());
    }
    Ok(outcome)
}

/// What Kyverno's GeneratingPolicies create from the Namespaces.
fn generated(kyverno: &Path, policies_dir: &Path, docs: &[Value], scratch: &Path) -> Result<Vec<Value>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(policies_dir).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "policy.yaml")
            && !path.components().any(|c| c.as_os_str() == ".kyverno-test")
        {
            let text = std::fs::read_to_string(path)?;
            if documents_of(&text)?.iter().any(|d| d["kind"] == "GeneratingPolicy") {
                files.push(path.to_path_buf());
            }
        }
    }
    let namespaces: Vec<Value> =
        docs.iter().filter(|d| d["apiVersion"] == "v1" && d["kind"] == "Namespace").cloned().collect();
    if files.is_empty() || namespaces.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(scratch)?;
    let resources = scratch.join("namespaces.yaml");
    std::fs::write(&resources, to_yaml_stream(&namespaces)?)?;
    let mut apply = Command::new(kyverno);
    apply.arg("apply").args(&files).arg("--resource").arg(&resources).arg("--remove-color");
    let output = cmd::run(&mut apply).context("kyverno apply of the GeneratingPolicies failed")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Each generated object follows "policy <name> applied to <resource>:"
    // and ends at a line `---`.
    let mut generated = Vec::new();
    for section in stdout.split("\npolicy ").skip(1) {
        let Some((_, body)) = section.split_once(":\n") else { continue };
        let body = body.split("\n---").next().unwrap_or_default();
        generated.extend(
            documents_of(body)
                .with_context(|| format!("kyverno printed a generated object that is not YAML:\n{body}"))?,
        );
    }
    Ok(generated.into_iter().filter(|d| d["kind"] == "NetworkPolicy").collect())
}

fn endpoints(docs: &[Value]) -> Vec<Endpoint> {
    let mut endpoints = vec![
        Endpoint {
            name: "kube-dns".into(),
            namespace: "kube-system".into(),
            labels: json!({"k8s-app": "kube-dns"}),
            ports: vec![("dns".into(), 53, "UDP".into()), ("dns-tcp".into(), 53, "TCP".into())],
            external: false,
        },
        Endpoint {
            name: "kube-apiserver".into(),
            namespace: "-".into(),
            labels: json!({}),
            ports: vec![("https".into(), 443, "TCP".into())],
            external: true,
        },
    ];
    for doc in docs {
        let Some(template) = pod_template(doc) else { continue };
        let ports = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default().to_string();
                (name, p["containerPort"].as_u64().unwrap_or(0), p["protocol"].as_str().unwrap_or("TCP").to_string())
            })
            .collect();
        endpoints.push(Endpoint {
            name: format!(
                "{} {}",
                doc["kind"].as_str().unwrap_or("?"),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            ),
            namespace: doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string(),
            labels: template["metadata"]["labels"].clone(),
            ports,
            external: false,
        });
    }
    endpoints
}

fn needs(docs: &[Value], endpoints: &[Endpoint]) -> Vec<Need> {
    let mut needs = Vec::new();
    let find = |pred: &dyn Fn(&Endpoint) -> bool| endpoints.iter().position(pred);
    let istiod = find(&|e| e.namespace == "istio-system" && e.labels["app"] == "istiod");
    let operator = find(&|e| e.namespace == "cnpg-system" && e.labels["app.kubernetes.io/name"] == "cloudnative-pg");
    let workloads: Vec<(usize, &Value)> = docs
        .iter()
        .filter(|d| pod_template(d).is_some())
        .enumerate()
        .map(|(i, d)| (i + 2, d)) // after kube-dns and the API server
        .collect();
    for (index, doc) in &workloads {
        let template = pod_template(doc).unwrap_or(&Value::Null);
        let spec = &template["spec"];
        let containers: Vec<&Value> =
            ["initContainers", "containers"].iter().flat_map(|f| spec[*f].as_array().into_iter().flatten()).collect();
        needs.push(Need { from: *index, to: 0, port: 53, protocol: "UDP", why: "DNS".into() });
        if containers.iter().any(|c| c["name"] == "istio-proxy")
            && let Some(istiod) = istiod
        {
            needs.push(Need {
                from: *index,
                to: istiod,
                port: 15012,
                protocol: "TCP",
                why: "the sidecar's configuration and certificates from istiod".into(),
            });
        }
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        for container in &containers {
            for var in container["env"].as_array().into_iter().flatten() {
                if let Some(value) = var["value"].as_str()
                    && let Some((to, port)) = service_target(docs, endpoints, value, namespace)
                {
                    needs.push(Need {
                        from: *index,
                        to,
                        port,
                        protocol: "TCP",
                        why: format!("{} = {value}", var["name"].as_str().unwrap_or("?")),
                    });
                }
                let secret = var["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap_or_default();
                if let Some(cluster) = secret.strip_suffix("-app")
                    && let Some(db) =
                        find(&|e| e.labels["cnpg.io/cluster"] == cluster && e.labels["cnpg.io/podRole"] == "instance")
                {
                    needs.push(Need {
                        from: *index,
                        to: db,
                        port: 5432,
                        protocol: "TCP",
                        why: format!("PostgreSQL credentials {secret}"),
                    });
                }
            }
        }
    }
    for (index, endpoint) in endpoints.iter().enumerate().filter(|(_, e)| e.labels["cnpg.io/podRole"] == "instance") {
        needs.push(Need { from: index, to: 0, port: 53, protocol: "UDP", why: "DNS".into() });
        needs.push(Need {
            from: index,
            to: 1,
            port: 443,
            protocol: "TCP",
            why: "the instance manager watches its Cluster".into(),
        });
        needs.push(Need {
            from: index,
            to: index,
            port: 5432,
            protocol: "TCP",
            why: "replication between instances".into(),
        });
        if let Some(operator) = operator {
            needs.push(Need {
                from: operator,
                to: index,
                port: 8000,
                protocol: "TCP",
                why: format!("the operator polls {}'s status", endpoint.name),
            });
        }
    }
    needs
}

/// The pod endpoint and port a URL or `host:port` value names, when its
/// host is a rendered Service (`name[.namespace[.svc[.cluster.local]]]`).
fn service_target(docs: &[Value], endpoints: &[Endpoint], value: &str, namespace: &str) -> Option<(usize, u64)> {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u64 = port.parse().ok()?;
    let mut parts = host.split('.');
    let name = parts.next()?;
    let ns = parts.next().unwrap_or(namespace);
    if parts.next().is_some_and(|p| p != "svc") {
        return None;
    }
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name && d["metadata"]["namespace"] == ns)?;
    let selector = service["spec"]["selector"].as_object()?;
    let entry = service["spec"]["ports"].as_array()?.iter().find(|p| p["port"].as_u64() == Some(port))?;
    let to = endpoints
        .iter()
        .position(|e| e.namespace == ns && !e.external && selector.iter().all(|(k, v)| e.labels[k] == *v))?;
    let target = match &entry["targetPort"] {
        Value::Number(n) => n.as_u64()?,
        Value::String(named) => endpoints[to].ports.iter().find(|(n, ..)| n == named)?.1,
        _ => port,
    };
    Some((to, target))
}

/// Ok when the policies let `from` reach `to` on `port`; else why not.
fn allowed(
    policies: &[Value],
    namespaces: &BTreeMap<String, Value>,
    from: &Endpoint,
    to: &Endpoint,
    port: u64,
    protocol: &str,
) -> Result<(), String> {
    let selecting = |endpoint: &Endpoint, direction: &str| -> Vec<&Value> {
        policies
            .iter()
            .filter(|p| p["metadata"]["namespace"].as_str() == Some(endpoint.namespace.as_str()) && !endpoint.external)
            .filter(|p| selects(&p["spec"]["podSelector"], &endpoint.labels))
            .filter(|p| policy_types(p).contains(&direction))
            .collect()
    };
    let egress = selecting(from, "Egress");
    if !egress.is_empty() {
        let ok = egress.iter().any(|p| {
            p["spec"]["egress"].as_array().into_iter().flatten().any(|rule| {
                ports_match(&rule["ports"], to, port, protocol) && peers_match(&rule["to"], p, namespaces, to)
            })
        });
        if !ok {
            let names: Vec<&str> = egress.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
            return Err(format!("no egress rule of {} allows it", names.join(", ")));
        }
    }
    let ingress = selecting(to, "Ingress");
    if !ingress.is_empty() {
        let ok = ingress.iter().any(|p| {
            p["spec"]["ingress"].as_array().into_iter().flatten().any(|rule| {
                ports_match(&rule["ports"], to, port, protocol) && peers_match(&rule["from"], p, namespaces, from)
            })
        });
        if !ok {
            let names: Vec<&str> = ingress.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
            return Err(format!("no ingress rule of {} allows it", names.join(", ")));
        }
    }
    Ok(())
}

fn policy_types(policy: &Value) -> Vec<&str> {
    match policy["spec"]["policyTypes"].as_array() {
        Some(types) => types.iter().filter_map(Value::as_str).collect(),
        None if policy["spec"]["egress"].is_array() => vec!["Ingress", "Egress"],
        None => vec!["Ingress"],
    }
}

/// A rule's `ports` (absent: every port).
fn ports_match(ports: &Value, to: &Endpoint, port: u64, protocol: &str) -> bool {
    let Some(ports) = ports.as_array() else { return true };
    ports.is_empty()
        || ports.iter().any(|p| {
            let same_protocol = p["protocol"].as_str().unwrap_or("TCP") == protocol;
            let number = match &p["port"] {
                Value::Number(n) => n.as_u64(),
                Value::String(name) => to.ports.iter().find(|(n, ..)| n == name).map(|(_, number, _)| *number),
                _ => None,
            };
            let end = p["endPort"].as_u64();
            same_protocol
                && match (number, end) {
                    (None, _) => p["port"].is_null(),
                    (Some(start), Some(end)) => (start..=end).contains(&port),
                    (Some(number), None) => number == port,
                }
        })
}

/// A rule's peers (`to` or `from`; absent: everyone).
fn peers_match(peers: &Value, policy: &Value, namespaces: &BTreeMap<String, Value>, endpoint: &Endpoint) -> bool {
    let Some(peers) = peers.as_array() else { return true };
    peers.is_empty()
        || peers.iter().any(|peer| {
            if !peer["ipBlock"].is_null() {
                // The API server (and anything outside the pod network) is
                // reached by address; pod addresses are not modelled.
                return endpoint.external;
            }
            if endpoint.external {
                return false;
            }
            let namespace_ok = match &peer["namespaceSelector"] {
                Value::Null => Some(endpoint.namespace.as_str()) == policy["metadata"]["namespace"].as_str(),
                selector => {
                    namespaces.get(&endpoint.namespace).is_some_and(|labels| selects(selector, labels))
                        || (endpoint.namespace == "kube-system"
                            && selects(selector, &json!({"kubernetes.io/metadata.name": "kube-system"})))
                }
            };
            let pod_ok = match &peer["podSelector"] {
                Value::Null => true,
                selector => selects(selector, &endpoint.labels),
            };
            namespace_ok && pod_ok
        })
}

/// A label selector against labels (`{}` selects everything).
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels[key].as_str();
    let by_labels = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str() {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => !label(key).is_some_and(|v| values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, namespace: &str, labels: Value) -> Endpoint {
        Endpoint {
            name: name.into(),
            namespace: namespace.into(),
            labels,
            ports: vec![("pg".into(), 5432, "TCP".into())],
            external: false,
        }
    }

    #[test]
    fn default_deny_blocks_until_a_rule_allows_both_directions() {
        let deny = json!({"metadata": {"name": "default-deny", "namespace": "app"},
                          "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
        let backend = pod("backend", "app", json!({"role": "backend"}));
        let db = pod("db", "app", json!({"cnpg.io/cluster": "db"}));
        let namespaces = BTreeMap::from([("app".to_string(), json!({"kubernetes.io/metadata.name": "app"}))]);
        let err = allowed(std::slice::from_ref(&deny), &namespaces, &backend, &db, 5432, "TCP").unwrap_err();
        assert!(err.contains("no egress rule of default-deny"), "{err}");
        let egress = json!({"metadata": {"name": "backend", "namespace": "app"}, "spec": {
            "podSelector": {"matchLabels": {"role": "backend"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "db"}}}], "ports": [{"port": 5432}]}]}});
        let err = allowed(&[deny.clone(), egress.clone()], &namespaces, &backend, &db, 5432, "TCP").unwrap_err();
        assert!(err.contains("no ingress rule of default-deny"), "{err}");
        let ingress = json!({"metadata": {"name": "db", "namespace": "app"}, "spec": {
            "podSelector": {"matchLabels": {"cnpg.io/cluster": "db"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "backend"}}}], "ports": [{"port": "pg"}]}]}});
        assert!(allowed(&[deny, egress, ingress], &namespaces, &backend, &db, 5432, "TCP").is_ok());
    }

    #[test]
    fn urls_resolve_to_the_service_s_pods_and_target_port() {
        let docs = vec![json!({"kind": "Service", "metadata": {"name": "otel", "namespace": "obs"},
            "spec": {"selector": {"app": "otel"}, "ports": [{"port": 4317, "targetPort": "pg"}]}})];
        let endpoints = vec![pod("collector", "obs", json!({"app": "otel"}))];
        assert_eq!(service_target(&docs, &endpoints, "http://otel.obs.svc:4317", "app"), Some((0, 5432)));
        assert_eq!(service_target(&docs, &endpoints, "http://example.com:4317", "app"), None);
    }
}

//! Invariants of the rendered mesh objects that no schema and no istioctl
//! analyzer states, per environment:
//!
//! - every HTTP route's destination weights sum to 100;
//! - every subset a VirtualService names exists in a DestinationRule of its host;
//! - every DestinationRule (and each of its port and subset policies) uses
//!   `tls.mode: ISTIO_MUTUAL`;
//! - each Rollout's Istio routing is consistent (its VirtualService routes
//!   exist and split between its DestinationRule's stable and canary
//!   subsets), and at every step of the release, with Argo Rollouts' managed
//!   routes placed above the VirtualService's own (as the controller does),
//!   the header route precedes every weighted route and weights sum to 100;
//! - the reachability computed from the AuthorizationPolicies (who may call
//!   which component, on which ports, methods and paths) is exactly the
//!   matrix documented in docs/mesh-access.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Outcome, istio::ENVIRONMENTS, rules};
use crate::project::Project;

/// The documented matrix, between these markers.
pub const MATRIX_DOC: &str = "docs/mesh-access.md";
const BEGIN: &str = "<!-- reachability:begin -->";
const END: &str = "<!-- reachability:end -->";

/// The header that sends a request to the canary.
const CANARY_HEADER: &str = "canary";

/// One allowed call: who, to which component, on what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    pub caller: String,
    pub callee: String,
    pub ports: String,
    pub methods: String,
    pub paths: String,
    pub not_paths: String,
}

impl std::fmt::Display for Allow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} |",
            self.caller, self.callee, self.ports, self.methods, self.paths, self.not_paths
        )
    }
}

/// Every environment rendered by verify.
pub fn check(project: &Project, manifests: &[(String, PathBuf)]) -> Result<Outcome> {
    let matrix = documented_matrix(&project.root)?;
    let mut outcome = Outcome::default();
    for env in ENVIRONMENTS {
        let mut docs = Vec::new();
        for (_, file) in manifests.iter().filter(|(e, _)| e == env) {
            docs.extend(rules::documents(file)?);
        }
        if let Ok(allowed) = reachability(&docs) {
            println!("    {env}: reachability computed from the AuthorizationPolicies");
            for row in &allowed {
                println!("      {row}");
            }
        }
        let found = violations(&docs, &matrix, true);
        outcome.failures.extend(found.into_iter().map(|f| format!("{env}: {f}")));
        outcome.checked += 1;
    }
    Ok(outcome)
}

/// A fixture file: every invariant, and no allowed call beyond the matrix.
pub fn check_file(project: &Project, file: &Path) -> Result<Outcome> {
    let matrix = documented_matrix(&project.root)?;
    let docs = rules::documents(file)?;
    Ok(Outcome { checked: 1, failures: violations(&docs, &matrix, false) })
}

/// The rows of the reachability table in docs/mesh-access.md.
pub fn documented_matrix(root: &Path) -> Result<BTreeSet<Allow>> {
    let path = root.join(MATRIX_DOC);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let start = text.find(BEGIN).with_context(|| format!("{MATRIX_DOC} has no {BEGIN} marker"))?;
    let end = text.find(END).with_context(|| format!("{MATRIX_DOC} has no {END} marker"))?;
    let mut rows = BTreeSet::new();
    for line in text[start + BEGIN.len()..end].lines().map(str::trim).filter(|l| l.starts_with('|')) {
        let cells: Vec<String> =
            line.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_string()).collect();
        if cells.len() != 6 {
            bail!("{MATRIX_DOC}: a reachability row needs 6 cells: {line}");
        }
        if cells[0] == "caller" || cells[0].starts_with("---") {
            continue;
        }
        rows.insert(Allow {
            caller: cells[0].clone(),
            callee: cells[1].clone(),
            ports: normalize_list(&cells[2]),
            methods: normalize_list(&cells[3]),
            paths: normalize_list(&cells[4]),
            not_paths: normalize_list(&cells[5]),
        });
    }
    if rows.is_empty() {
        bail!("{MATRIX_DOC}: the reachability table is empty");
    }
    Ok(rows)
}

/// "a, b" or "b,a" → "a, b"; "" and "-" → "-"; "*" stays.
fn normalize_list(cell: &str) -> String {
    let mut items: Vec<&str> = cell.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "-").collect();
    items.sort_unstable();
    items.dedup();
    if items.is_empty() { "-".into() } else { items.join(", ") }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

fn name(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["namespace"].as_str().unwrap_or("-"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// A Service host as Istio resolves it from a resource in `namespace`.
fn fqdn(host: &str, namespace: &str) -> String {
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.svc.cluster.local"),
        1 => format!("{host}.svc.cluster.local"),
        _ if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_string(),
    }
}

/// Every invariant over one environment's documents. `complete`: the
/// documents are a whole environment, so a documented call that the
/// policies do not allow is a failure too (a fixture only shows extras).
pub fn violations(docs: &[Value], matrix: &BTreeSet<Allow>, complete: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let of_kind = |kind: &'static str| docs.iter().filter(move |d| d["kind"] == kind);

    // DestinationRules: mutual TLS everywhere; their subsets per host.
    let mut subsets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dr in of_kind("DestinationRule") {
        let ns = dr["metadata"]["namespace"].as_str().unwrap_or("default");
        let host = fqdn(dr["spec"]["host"].as_str().unwrap_or_default(), ns);
        let mut policies = vec![("trafficPolicy".to_string(), &dr["spec"]["trafficPolicy"])];
        for (i, port) in dr["spec"]["trafficPolicy"]["portLevelSettings"].as_array().into_iter().flatten().enumerate() {
            if port.get("tls").is_some() {
                policies.push((format!("portLevelSettings[{i}]"), port));
            }
        }
        for subset in dr["spec"]["subsets"].as_array().into_iter().flatten() {
            let subset_name = subset["name"].as_str().unwrap_or_default().to_string();
            if subset["trafficPolicy"].get("tls").is_some() {
                policies.push((format!("subset {subset_name}"), &subset["trafficPolicy"]));
            }
            subsets.entry(host.clone()).or_default().insert(subset_name);
        }
        for (where_, policy) in policies {
            let mode = policy["tls"]["mode"].as_str().unwrap_or("unset");
            if mode != "ISTIO_MUTUAL" {
                failures.push(format!("{}: {where_} tls.mode is {mode}, not ISTIO_MUTUAL", name(dr)));
            }
        }
    }

    // VirtualServices: weights and subsets.
    let mut services: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for vs in of_kind("VirtualService") {
        let ns = vs["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        services.insert((ns.clone(), vs["metadata"]["name"].as_str().unwrap_or_default().to_string()), vs);
        let routes: Vec<Value> = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
        failures.extend(route_violations(&name(vs), &routes, &ns, &subsets));
    }

    // Rollouts: their routing, and every step of a release.
    for rollout in of_kind("Rollout") {
        failures.extend(rollout_violations(rollout, &services, &subsets));
    }

    // AuthorizationPolicies: reachability against the documented matrix.
    match reachability(docs) {
        Ok(allowed) => {
            for extra in allowed.difference(matrix) {
                failures.push(format!("allowed by the AuthorizationPolicies but not in {MATRIX_DOC}: {extra}"));
            }
            if complete {
                for missing in matrix.difference(&allowed) {
                    failures.push(format!("documented in {MATRIX_DOC} but not allowed by the policies: {missing}"));
                }
            }
        }
        Err(err) => failures.push(format!("{err:#}")),
    }
    failures
}

/// Weights, subsets and header-route order of one list of HTTP routes.
fn route_violations(
    what: &str,
    routes: &[Value],
    ns: &str,
    subsets: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut first_weighted = None;
    for (i, route) in routes.iter().enumerate() {
        let label = route["name"].as_str().map_or_else(|| format!("http[{i}]"), |n| format!("route {n}"));
        let destinations = route["route"].as_array().cloned().unwrap_or_default();
        let sum: i64 = if destinations.len() == 1 && destinations[0].get("weight").is_none() {
            100
        } else {
            destinations.iter().map(|d| d["weight"].as_i64().unwrap_or(0)).sum()
        };
        if !destinations.is_empty() && sum != 100 {
            failures.push(format!("{what}: {label}: weights sum to {sum}, not 100"));
        }
        for d in &destinations {
            let host = fqdn(d["destination"]["host"].as_str().unwrap_or_default(), ns);
            if let Some(subset) = d["destination"]["subset"].as_str()
                && !subsets.get(&host).is_some_and(|s| s.contains(subset))
            {
                failures.push(format!("{what}: {label}: subset {subset} of {host} is in no DestinationRule"));
            }
        }
        let weighted = destinations.len() > 1;
        if weighted && first_weighted.is_none() {
            first_weighted = Some(label.clone());
        }
        let header_route =
            route["match"].as_array().into_iter().flatten().any(|m| m["headers"].get(CANARY_HEADER).is_some());
        if header_route && let Some(before) = &first_weighted {
            failures.push(format!("{what}: {label} (header {CANARY_HEADER}) comes after the weighted {before}"));
        }
    }
    failures
}

fn rollout_violations(
    rollout: &Value,
    services: &BTreeMap<(String, String), &Value>,
    subsets: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let what = name(rollout);
    let ns = rollout["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
    let canary = &rollout["spec"]["strategy"]["canary"];
    let istio = &canary["trafficRouting"]["istio"];
    if istio.is_null() {
        return vec![format!("{what}: no Istio traffic routing (strategy.canary.trafficRouting.istio)")];
    }
    let vs_name = istio["virtualService"]["name"].as_str().unwrap_or_default().to_string();
    let Some(vs) = services.get(&(ns.clone(), vs_name.clone())) else {
        return vec![format!("{what}: VirtualService {vs_name} is not rendered")];
    };
    let dr = &istio["destinationRule"];
    let (stable, canary_subset) =
        (dr["stableSubsetName"].as_str().unwrap_or_default(), dr["canarySubsetName"].as_str().unwrap_or_default());
    let mut failures = Vec::new();
    let weighted: Vec<String> = strings(&istio["virtualService"]["routes"]);
    let vs_routes: Vec<Value> = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    for route in &vs_routes {
        let route_name = route["name"].as_str().unwrap_or("(unnamed)");
        let subsets_used: BTreeSet<&str> = route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["destination"]["subset"].as_str())
            .collect();
        let splits = subsets_used == BTreeSet::from([stable, canary_subset]);
        match (weighted.iter().any(|w| w == route_name), splits) {
            (true, false) => failures.push(format!(
                "{what}: route {route_name} of {vs_name} does not split between subsets {stable} and {canary_subset}"
            )),
            (false, true) => failures.push(format!(
                "{what}: route {route_name} of {vs_name} splits {stable}/{canary_subset} but is not in the Rollout's \
                 routes: it would stay on stable during a release"
            )),
            _ => {}
        }
    }
    for w in &weighted {
        if !vs_routes.iter().any(|r| r["name"] == w.as_str()) {
            failures.push(format!("{what}: route {w} is not in VirtualService {vs_name}"));
        }
    }
    // Every step: managed routes (header routes set so far) above the
    // VirtualService's routes, in the order of managedRoutes.
    let managed: Vec<String> = canary["trafficRouting"]["managedRoutes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    let mut headers: BTreeMap<String, Value> = BTreeMap::new();
    let mut weight = 0i64;
    let mut saw_header_route = false;
    for (i, step) in canary["steps"].as_array().into_iter().flatten().enumerate() {
        if let Some(set) = step.get("setHeaderRoute") {
            let route_name = set["name"].as_str().unwrap_or_default().to_string();
            if !managed.contains(&route_name) {
                failures.push(format!("{what}: step {i}: header route {route_name} is not in managedRoutes"));
            }
            let matches: Vec<Value> = set["match"].as_array().cloned().unwrap_or_default();
            let headers_match: serde_json::Map<String, Value> = matches
                .iter()
                .filter_map(|m| Some((m["headerName"].as_str()?.to_string(), m["headerValue"].clone())))
                .collect();
            saw_header_route |= headers_match.get(CANARY_HEADER).is_some_and(|v| v["exact"] == "true");
            headers.insert(
                route_name,
                serde_json::json!({
                    "name": set["name"],
                    "match": [{"headers": headers_match}],
                    "route": [{"destination": {"host": vs["spec"]["hosts"][0], "subset": canary_subset}, "weight": 100}]
                }),
            );
        }
        if let Some(w) = step.get("setWeight") {
            let w = w.as_i64().unwrap_or(-1);
            if !(0..=100).contains(&w) || w < weight {
                failures.push(format!("{what}: step {i}: setWeight {w} (after {weight}) must grow within 0..=100"));
            }
            weight = w;
        }
        let mut effective: Vec<Value> = managed.iter().filter_map(|m| headers.get(m).cloned()).collect();
        for route in &vs_routes {
            let mut route = route.clone();
            if weighted.iter().any(|w| route["name"] == w.as_str()) {
                for d in route["route"].as_array_mut().into_iter().flatten() {
                    let subset = d["destination"]["subset"].as_str().unwrap_or_default().to_string();
                    d["weight"] = Value::from(if subset == canary_subset { weight } else { 100 - weight });
                }
            }
            effective.push(route);
        }
        for failure in route_violations(&format!("{what} at step {i}"), &effective, &ns, subsets) {
            failures.push(failure);
        }
    }
    if !saw_header_route {
        failures.push(format!("{what}: no setHeaderRoute step sends `{CANARY_HEADER}: \"true\"` to the canary"));
    }
    if weight != 100 {
        failures.push(format!("{what}: the last setWeight is {weight}, not 100"));
    }
    failures
}

/// Who may call which workload, from the ALLOW policies, in the namespaces
/// that have AuthorizationPolicies (the app's: docs/mesh-access.md is their
/// matrix). A workload there that no ALLOW policy selects is open to anyone
/// (caller `*`).
fn reachability(docs: &[Value]) -> Result<BTreeSet<Allow>> {
    let guarded: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "AuthorizationPolicy")
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .collect();
    let in_guarded = |d: &&Value| guarded.contains(d["metadata"]["namespace"].as_str().unwrap_or("default"));
    // The app's ServiceAccounts, by principal suffix "ns/<ns>/sa/<name>": their component.
    let mut roles: BTreeMap<String, String> = BTreeMap::new();
    for sa in docs.iter().filter(|d| d["kind"] == "ServiceAccount").filter(in_guarded) {
        if let Some(component) = sa["metadata"]["labels"]["app.kubernetes.io/component"].as_str() {
            let key = format!(
                "ns/{}/sa/{}",
                sa["metadata"]["namespace"].as_str().unwrap_or("default"),
                sa["metadata"]["name"].as_str().unwrap_or_default()
            );
            roles.insert(key, component.to_string());
        }
    }
    let role = |principal: &str| -> String {
        let suffix = principal.split_once("/ns/").map_or(principal.to_string(), |(_, rest)| format!("ns/{rest}"));
        roles.get(&suffix).cloned().unwrap_or_else(|| match suffix.strip_prefix("ns/") {
            Some(rest) => rest.replacen("/sa/", "/", 1),
            None => principal.to_string(),
        })
    };
    let mut allowed = BTreeSet::new();
    let policies: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "AuthorizationPolicy").collect();
    for policy in &policies {
        let action = policy["spec"]["action"].as_str().unwrap_or("ALLOW");
        if action != "ALLOW" {
            bail!("{}: action {action} is not modelled by the reachability check; use ALLOW rules", name(policy));
        }
    }
    for workload in docs.iter().filter(|d| d["kind"] == "Deployment").filter(in_guarded) {
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        let ns = workload["metadata"]["namespace"].as_str().unwrap_or("default");
        let callee = labels["app.kubernetes.io/component"].as_str().unwrap_or("?").to_string();
        let applicable: Vec<&&Value> = policies
            .iter()
            .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns))
            .filter(|p| {
                p["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .is_none_or(|wanted| wanted.iter().all(|(k, v)| &labels[k] == v))
            })
            .collect();
        if applicable.is_empty() {
            allowed.insert(Allow {
                caller: "*".into(),
                callee: callee.clone(),
                ports: "*".into(),
                methods: "*".into(),
                paths: "*".into(),
                not_paths: "-".into(),
            });
        }
        for policy in applicable {
            for rule in policy["spec"]["rules"].as_array().into_iter().flatten() {
                if rule.get("when").is_some() {
                    bail!("{}: `when` conditions are not modelled by the reachability check", name(policy));
                }
                let mut callers = Vec::new();
                for from in rule["from"].as_array().into_iter().flatten() {
                    let source = from["source"].as_object().context("a `from` without source")?;
                    if let Some(other) = source.keys().find(|k| *k != "principals") {
                        bail!("{}: source.{other} is not modelled; name callers by principals", name(policy));
                    }
                    callers.extend(strings(&from["source"]["principals"]).iter().map(|p| role(p)));
                }
                if rule.get("from").is_none() {
                    callers.push("*".into());
                }
                let mut operations = Vec::new();
                for to in rule["to"].as_array().into_iter().flatten() {
                    let op = to["operation"].as_object().context("a `to` without operation")?;
                    if let Some(other) =
                        op.keys().find(|k| !["ports", "methods", "paths", "notPaths"].contains(&k.as_str()))
                    {
                        bail!("{}: operation.{other} is not modelled by the reachability check", name(policy));
                    }
                    operations.push(&to["operation"]);
                }
                let any = Value::Null;
                if operations.is_empty() {
                    operations.push(&any);
                }
                let list = |v: &Value| {
                    let items = strings(v);
                    if items.is_empty() { "*".to_string() } else { normalize_list(&items.join(",")) }
                };
                for caller in &callers {
                    for op in &operations {
                        allowed.insert(Allow {
                            caller: caller.clone(),
                            callee: callee.clone(),
                            ports: list(&op["ports"]),
                            methods: list(&op["methods"]),
                            paths: list(&op["paths"]),
                            not_paths: normalize_list(&strings(&op["notPaths"]).join(",")),
                        });
                    }
                }
            }
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_like_istio() {
        assert_eq!(fqdn("backend", "app"), "backend.app.svc.cluster.local");
        assert_eq!(fqdn("backend.other", "app"), "backend.other.svc.cluster.local");
        assert_eq!(fqdn("backend.other.svc", "app"), "backend.other.svc.cluster.local");
        assert_eq!(fqdn("demo.example.com", "app"), "demo.example.com");
    }

    /// The committed renders of every environment (`snapshots/<env>.yaml`,
    /// which verify keeps current) hold every invariant, with the matrix of
    /// docs/mesh-access.md exactly.
    #[test]
    fn the_rendered_environments_hold_every_invariant() {
        let project = Project::discover().unwrap();
        let matrix = documented_matrix(&project.root).unwrap();
        for env in ENVIRONMENTS {
            let text = fs::read_to_string(crate::flux::snapshot::path(&project.root, env)).unwrap();
            let docs = crate::flux::documents_of(&text).unwrap();
            assert!(docs.iter().any(|d| d["kind"] == "AuthorizationPolicy"), "{env}: no AuthorizationPolicy rendered");
            let failures = violations(&docs, &matrix, true);
            assert!(failures.is_empty(), "{env}: {failures:#?}");
        }
    }

    #[test]
    fn a_release_step_that_leaves_a_split_route_on_stable_is_caught() {
        let docs: Vec<Value> = serde_norway::Deserializer::from_str(
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: n}
spec:
  host: b
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets: [{name: stable}, {name: canary}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: n}
spec:
  hosts: [b]
  http:
    - name: writes
      route: [{destination: {host: b, subset: stable}, weight: 100}, {destination: {host: b, subset: canary}, weight: 0}]
    - name: primary
      route: [{destination: {host: b, subset: stable}, weight: 100}, {destination: {host: b, subset: canary}, weight: 0}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: b, namespace: n}
spec:
  strategy:
    canary:
      trafficRouting:
        managedRoutes: [{name: canary-header}]
        istio:
          virtualService: {name: b, routes: [primary]}
          destinationRule: {name: b, stableSubsetName: stable, canarySubsetName: canary}
      steps:
        - setHeaderRoute: {name: canary-header, match: [{headerName: canary, headerValue: {exact: "true"}}]}
        - setWeight: 50
"#,
        )
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
        let failures = violations(&docs, &BTreeSet::new(), false);
        assert!(
            failures
                .iter()
                .any(|f| f.contains("route writes of b splits stable/canary but is not in the Rollout's routes")),
            "{failures:#?}"
        );
        assert!(failures.iter().any(|f| f.contains("the last setWeight is 50, not 100")), "{failures:#?}");
        assert_eq!(failures.len(), 2, "{failures:#?}");
    }

    #[test]
    fn the_documented_matrix_parses() {
        let project = Project::discover().unwrap();
        let matrix = documented_matrix(&project.root).unwrap();
        assert!(matrix.iter().any(|a| a.caller == "frontend" && a.callee == "backend"), "{matrix:?}");
        assert!(matrix.iter().all(|a| a.caller != "*"), "the matrix must not open a component to anyone");
    }
}

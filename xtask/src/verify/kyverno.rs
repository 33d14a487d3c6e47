//! Kyverno, through its CLI: the policies' own tests (`kyverno test`), then
//! every policy applied to what each environment renders (`kyverno apply`),
//! where any result other than pass or skip is a failure naming the file, the
//! resource, the policy, the rule and Kyverno's message.
//!
//! Offline limits, by design:
//! - ImageValidatingPolicies are not applied: verifying a signature needs the
//!   registry and Sigstore. Their CLI tests still run (see
//!   deploy/policies/verify-image-signatures).
//! - Lookups (`resource.get`, `resource.list`) are answered from a context
//!   built from the environment's own rendered objects plus the non-policy
//!   objects of the policies' kustomization (the registry allow-list), that
//!   is, the cluster as Flux would leave it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Outcome, compliance, rules};
use crate::cmd;

/// Kinds the policies read with `resource.get()`/`resource.list()`. The CLI
/// serves lookups from a context file whose objects it must map to built-in
/// resources, so the context holds these kinds only.
const LOOKUP_KINDS: &[(&str, &str)] =
    &[("v1", "ConfigMap"), ("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler")];

/// Where the context's placeholder objects live (see `placeholders`).
const PLACEHOLDER_NAMESPACE: &str = "xtask-kyverno-placeholder";

/// What Kyverno generates pod rules for when a policy matches pods (autogen).
const POD_CONTROLLERS: &[&str] = &["deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"];

/// Policy kinds that cannot be evaluated offline.
const ONLINE_ONLY_KINDS: &[&str] = &["ImageValidatingPolicy", "NamespacedImageValidatingPolicy"];

/// `kyverno test <policies_dir>`: every `kyverno-test.yaml` below it. One
/// check per result row; a failing row, a run that fails without rows, and
/// an expected non-skip result whose resource the policy never evaluated
/// (the CLI reports those as passes) are failures.
pub fn test_policies(kyverno: &Path, policies_dir: &Path) -> Result<Outcome> {
    let mut run = Command::new(kyverno);
    run.arg("test").arg(policies_dir).args(["--remove-color", "--detailed-results", "--output-format", "json"]);
    let output = cmd::capture(&mut run)?;
    let rows = parse_test_output(&String::from_utf8_lossy(&output.stdout))?;
    let mut failures: Vec<String> = rows.iter().filter(|r| r.result != "Pass").map(TestRow::describe).collect();
    for file in test_files(policies_dir)? {
        let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let test: TestFile =
            serde_norway::from_str(&text).with_context(|| format!("{} is not a Kyverno test", file.display()))?;
        let own: Vec<&TestRow> = rows.iter().filter(|r| Path::new(&r.test) == file).collect();
        failures.extend(unevaluated(&file, &test, &own));
    }
    if failures.is_empty() && (!output.status.success() || rows.is_empty()) {
        failures.push(format!(
            "`{}` gave {} result(s) and {}:\n{}",
            cmd::display(&run),
            rows.len(),
            output.status,
            cmd::tail(&output.stderr, &output.stdout, 20)
        ));
    }
    Ok(Outcome { checked: rows.len(), failures })
}

/// `kyverno apply` of every policy in `policies_dir`'s kustomization to the
/// rendered `manifests`, one run per environment label and `Group`. `checked` counts the
/// policy results; every result other than pass or skip, in Audit as in
/// Deny mode, is a failure: our own manifests must comply with everything.
/// The same results, per environment, make the compliance report.
pub fn apply(
    kyverno: &Path,
    policies_dir: &Path,
    manifests: &[(String, PathBuf)],
) -> Result<(Outcome, Vec<compliance::Environment>)> {
    let policies = Policies::load(policies_dir)?;
    if policies.groups.is_empty() {
        bail!("{}: its kustomization lists no policy that can be applied offline", policies_dir.display());
    }
    let mut environments: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
    for (env, file) in manifests {
        environments.entry(env.as_str()).or_default().push(file.as_path());
    }
    // Its own folder: the fixtures apply policies at the same time.
    let scratch_dir = tempfile::Builder::new().prefix("xtask-kyverno-").tempdir()?;
    let scratch = scratch_dir.path();
    let results: Vec<Result<(Outcome, compliance::Environment)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = environments
            .iter()
            .enumerate()
            .map(|(i, (env, files))| {
                let dir = scratch.join(i.to_string());
                let policies = &policies;
                scope.spawn(move || apply_environment(kyverno, policies, env, files, &dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("kyverno apply panicked"))))
            .collect()
    });
    let mut outcome = Outcome::default();
    let mut report = Vec::new();
    for result in results {
        let (env, found) = result?;
        outcome.checked += env.checked;
        outcome.failures.extend(env.failures);
        report.push(found);
    }
    Ok((outcome, report))
}

// ---------------------------------------------------------------------------
// kyverno test

/// One row of `kyverno test --output-format json`, with the test it came from.
#[derive(Debug, Deserialize)]
pub(super) struct TestRow {
    #[serde(skip)]
    test: String,
    #[serde(rename = "POLICY")]
    policy: String,
    #[serde(rename = "RULE", default)]
    rule: String,
    #[serde(rename = "RESOURCE")]
    pub(super) resource: String,
    #[serde(rename = "RESULT")]
    pub(super) result: String,
    #[serde(rename = "REASON", default)]
    reason: String,
    #[serde(rename = "Message", default)]
    pub(super) message: String,
}

impl TestRow {
    fn describe(&self) -> String {
        let rule = if self.rule.is_empty() { String::new() } else { format!(", rule {}", self.rule) };
        format!(
            "{}: policy {}{rule}, resource {}: {} ({})",
            self.test, self.policy, self.resource, self.reason, self.message
        )
    }

    /// (kind, namespace, name) from `group/version/Kind/namespace/name`.
    fn kind_namespace_name(&self) -> (&str, &str, &str) {
        let mut parts = self.resource.rsplit('/');
        let name = parts.next().unwrap_or_default();
        let namespace = parts.next().unwrap_or_default();
        let kind = parts.next().unwrap_or_default();
        (kind, namespace, name)
    }
}

/// The CLI prints, per test file, `Loading test ( <file> ) ...`, progress
/// lines and a JSON array of rows (its first and last lines unindented).
pub(super) fn parse_test_output(stdout: &str) -> Result<Vec<TestRow>> {
    let mut rows = Vec::new();
    let mut test = String::new();
    let mut array: Option<String> = None;
    for line in stdout.lines() {
        if let Some(buffer) = array.as_mut() {
            buffer.push_str(line);
            buffer.push('\n');
            if line == "]" {
                let parsed: Vec<TestRow> = serde_json::from_str(buffer)
                    .with_context(|| format!("kyverno test printed rows that are not JSON for {test}"))?;
                rows.extend(parsed.into_iter().map(|row| TestRow { test: test.clone(), ..row }));
                array = None;
            }
        } else if let Some(rest) = line.strip_prefix("Loading test") {
            test =
                rest.trim().trim_start_matches('(').trim_end_matches("...").trim().trim_end_matches(')').trim().into();
        } else if line == "[" {
            array = Some(String::from("[\n"));
        }
    }
    if array.is_some() {
        bail!("kyverno test output ends inside the results of {test}");
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    results: Vec<Expectation>,
}

#[derive(Deserialize)]
struct Expectation {
    policy: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    result: String,
    #[serde(rename = "generatedResource")]
    generated_resource: Option<String>,
    #[serde(rename = "patchedResources")]
    patched_resources: Option<String>,
}

/// Expected results (other than skip) whose resource has no evaluated row:
/// `kyverno test` turns "the policy did not match" into a pass, so a test
/// expecting `fail` on a resource the policy excludes would pass silently.
/// Generate and mutate results are compared with a resource file instead,
/// which fails by itself when nothing is produced.
fn unevaluated(file: &Path, test: &TestFile, rows: &[&TestRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for expected in &test.results {
        if expected.result == "skip" || expected.generated_resource.is_some() || expected.patched_resources.is_some() {
            continue;
        }
        let policy = expected.policy.rsplit('/').next().unwrap_or_default();
        for resource in &expected.resources {
            let (namespace, name) = match resource.split_once('/') {
                Some((namespace, name)) => (Some(namespace), name),
                None => (None, resource.as_str()),
            };
            let evaluated = rows.iter().any(|row| {
                let (kind, ns, n) = row.kind_namespace_name();
                row.policy == policy
                    && row.reason != "Excluded"
                    && n == name
                    && namespace.is_none_or(|namespace| namespace == ns)
                    && (expected.kind.is_empty() || expected.kind == kind)
            });
            if !evaluated {
                problems.push(format!(
                    "{}: policy {policy} expects {} for {} {resource}, but never evaluated it \
                     (kyverno test counts an excluded or missing resource as a pass)",
                    file.display(),
                    expected.result,
                    if expected.kind.is_empty() { "resource" } else { &expected.kind },
                ));
            }
        }
    }
    problems
}

fn test_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry?;
        if entry.file_type().is_file() && entry.file_name() == "kyverno-test.yaml" {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

// ---------------------------------------------------------------------------
// kyverno apply

/// What the policies' kustomization holds.
struct Policies {
    /// Files with at least one policy that can run offline, by the resources
    /// they match.
    groups: Vec<Group>,
    /// PolicyExceptions, reviewed in Git: they apply offline as in the cluster.
    exceptions: Vec<PathBuf>,
    /// Objects the policies look up (the registry allow-list ConfigMap).
    context: Vec<Value>,
}

/// Policy files that match the same resources, applied in one CLI run to the
/// documents of those resources only. The CLI compiles every policy it was
/// given once per document (v1.19: a new `vpolengine` provider per resource),
/// so one run of everything cost documents × policies: 42 s for dev, where
/// the pod policies' run on its 25 pods and controllers and the RBAC policy's
/// on its 43 roles cost a third of it.
#[derive(Clone, Debug, PartialEq)]
struct Group {
    files: Vec<PathBuf>,
    /// Resources (plural, lowercase), pod controllers included when pods are
    /// (autogen).
    resources: Vec<String>,
}

impl Group {
    fn matches(&self, doc: &Value) -> bool {
        let resource = resource_of(doc["kind"].as_str().unwrap_or_default());
        self.resources.iter().any(|r| r == "*" || *r == resource)
    }
}

/// Files grouped by the resources their policies match, in a stable order.
fn grouped(files: Vec<(Vec<String>, PathBuf)>) -> Vec<Group> {
    let mut by_resources: BTreeMap<Vec<String>, Vec<PathBuf>> = BTreeMap::new();
    for (resources, file) in files {
        by_resources.entry(resources).or_default().push(file);
    }
    by_resources.into_iter().map(|(resources, files)| Group { files, resources }).collect()
}

/// The resources the policies of one file match, or an error naming the
/// policy whose match cannot be read.
fn file_resources(file: &Path, policies: &[&Value]) -> Result<Vec<String>> {
    let mut resources = Vec::new();
    for doc in policies {
        let matched = matched_resources(doc);
        if matched.is_empty() {
            bail!(
                "{}: cannot tell which resources policy {} matches (neither \
                 spec.matchConstraints.resourceRules nor spec.rules[].match resources.kinds)",
                file.display(),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
        }
        for resource in matched {
            if resource == "pods" {
                resources.extend(POD_CONTROLLERS.iter().map(|r| r.to_string()));
            }
            resources.push(resource);
        }
    }
    resources.sort();
    resources.dedup();
    Ok(resources)
}

impl Policies {
    fn load(dir: &Path) -> Result<Self> {
        let mut policies = Self { groups: Vec::new(), exceptions: Vec::new(), context: Vec::new() };
        let mut files = Vec::new();
        for file in kustomization_files(dir)? {
            let docs = flatten(rules::documents(&file)?);
            let is_policy = |d: &Value| {
                let api = d["apiVersion"].as_str().unwrap_or_default();
                api.starts_with("policies.kyverno.io/") || api.starts_with("kyverno.io/")
            };
            let online_only = |d: &Value| ONLINE_ONLY_KINDS.contains(&d["kind"].as_str().unwrap_or_default());
            if docs.iter().any(online_only) {
                // Skipping a whole file must never hide an offline policy.
                if !docs.iter().all(online_only) {
                    bail!(
                        "{}: holds an ImageValidatingPolicy and other documents; keep image policies in a file \
                         of their own, so the others are applied offline",
                        file.display()
                    );
                }
                continue;
            }
            if !docs.is_empty() && docs.iter().all(|d| d["kind"] == "PolicyException") {
                policies.exceptions.push(file);
                continue;
            }
            let own: Vec<&Value> = docs.iter().filter(|d| is_policy(d)).collect();
            if own.is_empty() {
                policies.context.extend(docs.into_iter().filter(is_lookup_kind));
            } else {
                files.push((file_resources(&file, &own)?, file));
            }
        }
        policies.groups = grouped(files);
        Ok(policies)
    }
}

/// The resources a policy matches: CEL policies' `matchConstraints`, or a
/// ClusterPolicy's (kyverno.io/v1) `match` kinds (`Pod`, `apps/v1/Deployment`)
/// in `any`, `all` or directly.
fn matched_resources(policy: &Value) -> Vec<String> {
    let spec = &policy["spec"];
    let rules = spec["matchConstraints"]["resourceRules"].as_array().into_iter().flatten();
    let mut found: Vec<String> = rules
        .flat_map(|r| r["resources"].as_array().into_iter().flatten())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let blocks = ["any", "all"].iter().flat_map(|k| rule["match"][*k].as_array().into_iter().flatten());
        for resources in blocks.map(|b| &b["resources"]).chain(std::iter::once(&rule["match"]["resources"])) {
            for kind in resources["kinds"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                found.push(resource_of(kind.rsplit('/').next().unwrap_or(kind)));
            }
        }
    }
    found
}

/// Kubernetes' guess of a kind's resource name (`NetworkPolicy` ->
/// `networkpolicies`), right for every kind the policies match.
fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ if lower.ends_with('s') => format!("{lower}es"),
        _ => format!("{lower}s"),
    }
}

/// The files a kustomization lists as resources.
fn kustomization_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let kustomization = dir.join("kustomization.yaml");
    let text =
        fs::read_to_string(&kustomization).with_context(|| format!("cannot read {}", kustomization.display()))?;
    let parsed: Value =
        serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", kustomization.display()))?;
    let mut files = Vec::new();
    for entry in parsed["resources"].as_array().into_iter().flatten() {
        let entry = entry.as_str().unwrap_or_default();
        let file = dir.join(entry);
        if !file.is_file() {
            bail!("{}: resource {entry} is not a file (list policy files, not folders)", kustomization.display());
        }
        files.push(file);
    }
    Ok(files)
}

/// Items of `v1` Lists in place of the Lists, as kustomize and the CLI do.
fn flatten(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .flat_map(|doc| {
            if doc["apiVersion"] == "v1" && doc["kind"] == "List" {
                doc["items"].as_array().cloned().unwrap_or_default()
            } else {
                vec![doc]
            }
        })
        .collect()
}

fn is_lookup_kind(doc: &Value) -> bool {
    LOOKUP_KINDS.iter().any(|(api, kind)| doc["apiVersion"] == *api && doc["kind"] == *kind)
}

/// The CLI's offline client answers "resource not found" when listing a kind
/// of which its context holds no object at all, where a cluster answers an
/// empty list; one object of each lookup kind in a namespace no manifest uses
/// makes it answer like a cluster.
fn placeholders() -> Vec<Value> {
    LOOKUP_KINDS
        .iter()
        .map(|(api, kind)| {
            json!({
                "apiVersion": api,
                "kind": kind,
                "metadata": { "name": "placeholder", "namespace": PLACEHOLDER_NAMESPACE },
            })
        })
        .collect()
}

/// Where each rendered object came from, to name the file of a result.
#[derive(Default)]
struct Index {
    files: HashMap<(String, String, String), PathBuf>,
}

impl Index {
    fn insert(&mut self, doc: &Value, file: &Path) {
        let key = |ns: &str| {
            (
                doc["kind"].as_str().unwrap_or_default().to_string(),
                ns.to_string(),
                doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or_default();
        self.files.entry(key(namespace)).or_insert_with(|| file.to_path_buf());
    }

    /// The CLI reports an object without a namespace in `default` (or, for a
    /// cluster-scoped one, without namespace).
    fn file(&self, kind: &str, namespace: &str, name: &str) -> Option<&Path> {
        let key = |ns: &str| (kind.to_string(), ns.to_string(), name.to_string());
        self.files
            .get(&key(namespace))
            .or_else(|| if namespace == "default" { self.files.get(&key("")) } else { None })
            .map(PathBuf::as_path)
    }
}

fn apply_environment(
    kyverno: &Path,
    policies: &Policies,
    env: &str,
    files: &[&Path],
    dir: &Path,
) -> Result<(Outcome, compliance::Environment)> {
    let mut found = compliance::Environment { name: env.to_string(), ..Default::default() };
    let mut index = Index::default();
    let mut namespaces = Vec::new();
    let mut context = placeholders();
    context.extend(policies.context.iter().cloned());
    let mut docs = Vec::new();
    for file in files {
        for mut doc in rules::documents(file)? {
            index.insert(&doc, file);
            if doc["apiVersion"] == "v1" && doc["kind"] == "Namespace" {
                // The API server labels every namespace with its name; the
                // policies' namespaceSelectors exclude platform namespaces by it.
                let name = doc["metadata"]["name"].clone();
                if !doc["metadata"]["labels"].is_object() {
                    doc["metadata"]["labels"] = json!({});
                }
                doc["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
                namespaces.push(doc.clone());
            }
            if is_lookup_kind(&doc) {
                context.push(doc.clone());
            }
            docs.push(doc);
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut groups = policies.groups.clone();
    if let Some(psa) = super::admission::pod_security_policy(env, &namespaces) {
        let file = dir.join("pod-security-admission.yaml");
        fs::write(&file, serde_norway::to_string(&psa)?)?;
        let resources = file_resources(&file, &[&psa])?;
        match groups.iter_mut().find(|g| g.resources == resources) {
            Some(group) => group.files.push(file),
            None => groups.push(Group { files: vec![file], resources }),
        }
    }
    found.matched = docs.iter().filter(|d| groups.iter().any(|g| g.matches(d))).count();
    if found.matched == 0 {
        return Ok((Outcome::default(), found));
    }
    let context_file = dir.join("context.yaml");
    let values_file = dir.join("values.yaml");
    let context = json!({
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Context",
        "metadata": { "name": "rendered" },
        "spec": { "resources": context },
    });
    let values = json!({
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Value",
        "metadata": { "name": "rendered" },
        "namespaces": namespaces,
    });
    fs::write(&context_file, serde_json::to_string_pretty(&context)?)?;
    fs::write(&values_file, serde_json::to_string_pretty(&values)?)?;

    let mut outcome = Outcome::default();
    for (i, group) in groups.iter().enumerate() {
        let mut evaluated = String::new();
        for doc in docs.iter().filter(|d| group.matches(d)) {
            evaluated.push_str("---\n");
            evaluated.push_str(&serde_norway::to_string(doc)?);
        }
        if evaluated.is_empty() {
            continue;
        }
        let resources_file = dir.join(format!("resources-{i}.yaml"));
        fs::write(&resources_file, evaluated)?;
        let mut run = Command::new(kyverno);
        run.arg("apply").args(&group.files).arg("--resource").arg(&resources_file);
        for exception in &policies.exceptions {
            run.arg("--exceptions").arg(exception);
        }
        run.arg("--context-file").arg(&context_file).arg("--values-file").arg(&values_file);
        run.args(["--policy-report", "--output-format", "json", "--remove-color"]);
        let output = cmd::capture(&mut run)?;
        let report = parse_report(&String::from_utf8_lossy(&output.stdout))?;
        // No policy produced a result (say, only platform Namespaces): no report.
        let results = match report {
            Some(report) => report.results,
            None if output.status.success() => Vec::new(),
            None => bail!(
                "{env}: `{}` printed no policy report ({}):\n{}",
                cmd::display(&run),
                output.status,
                cmd::tail(&output.stderr, &output.stdout, 20)
            ),
        };
        let failures_before = outcome.failures.len();
        outcome.checked += results.len();
        for result in results.iter().filter(|r| r.result != "pass" && r.result != "skip") {
            outcome.failures.push(result.describe(env, &index));
        }
        if outcome.failures.len() == failures_before && !output.status.success() {
            outcome.failures.push(format!(
                "{env}: `{}` failed ({}) with every result passing:\n{}",
                cmd::display(&run),
                output.status,
                cmd::tail(&output.stderr, &output.stdout, 20)
            ));
        }
        found.results.extend(results.iter().map(|r| r.entry(&index)));
    }
    Ok((outcome, found))
}

/// The `--policy-report` JSON (an openreports.io ClusterReport).
#[derive(Debug, Deserialize)]
struct Report {
    /// Required, so that no other JSON-looking text passes for a report.
    #[allow(dead_code)]
    summary: Value,
    #[serde(default)]
    results: Vec<ReportResult>,
}

#[derive(Debug, Deserialize)]
struct ReportResult {
    policy: String,
    #[serde(default)]
    rule: String,
    result: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    resources: Vec<ResourceRef>,
    #[serde(default)]
    properties: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ResourceRef {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

impl ReportResult {
    /// The rule as `describe` names it: CEL policies have no rules, so the
    /// failing validation instead; nothing when it repeats the policy.
    fn rule_name(&self) -> String {
        match (self.rule.as_str(), self.properties.get("cel.validationIndex")) {
            ("", Some(i)) => format!("validation {i}"),
            ("", None) => String::new(),
            (rule, _) if rule == self.policy => String::new(),
            (rule, _) => format!("rule {rule}"),
        }
    }

    /// The result for the compliance report, with the file of its first
    /// resource.
    fn entry(&self, index: &Index) -> compliance::Entry {
        compliance::Entry {
            policy: self.policy.clone(),
            rule: self.rule_name(),
            result: self.result.clone(),
            message: self.message.clone(),
            resources: self
                .resources
                .iter()
                .map(|r| compliance::Resource {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                })
                .collect(),
            file: self
                .resources
                .iter()
                .find_map(|r| index.file(&r.kind, &r.namespace, &r.name))
                .map(|f| f.display().to_string()),
        }
    }

    fn describe(&self, env: &str, index: &Index) -> String {
        let rule = match self.rule_name() {
            rule if rule.is_empty() => rule,
            rule => format!(", {rule}"),
        };
        let resources: Vec<String> = self
            .resources
            .iter()
            .map(|r| {
                let file = index.file(&r.kind, &r.namespace, &r.name).map_or("?".into(), |f| f.display().to_string());
                let name = if r.namespace.is_empty() { r.name.clone() } else { format!("{}/{}", r.namespace, r.name) };
                format!("{file}: {} {name}", r.kind)
            })
            .collect();
        format!("{env}: {}: policy {}{rule}: {}: {}", resources.join(", "), self.policy, self.result, self.message)
    }
}

/// The report is the JSON object that follows whatever else the CLI prints
/// (generated resources, in YAML with `{}` in them); `None` when there is none.
fn parse_report(stdout: &str) -> Result<Option<Report>> {
    let mut last_error = None;
    for (start, _) in stdout.match_indices('{') {
        let mut stream = serde_json::Deserializer::from_str(&stdout[start..]).into_iter::<Report>();
        match stream.next() {
            Some(Ok(report)) => return Ok(Some(report)),
            Some(Err(err)) if stdout[start..].starts_with("{\"kind\"") => last_error = Some(err),
            _ => {}
        }
    }
    match last_error {
        Some(err) => Err(err).context("kyverno apply printed a policy report that is not JSON"),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each CLI run gets only the policies of the documents it is given: the
    /// pod policies share one run (with the controllers autogen covers), a
    /// role policy has its own, and a Deployment goes to both that match it.
    #[test]
    fn policies_are_applied_in_groups_of_the_resources_they_match() {
        let pods = json!({"spec": {"matchConstraints": {"resourceRules": [{"resources": ["pods"]}]}}});
        let roles = json!({"spec": {"matchConstraints": {"resourceRules": [{"resources": ["roles"]}]}}});
        let pdb = json!({"spec": {"matchConstraints": {"resourceRules": [{"resources": ["deployments"]}]}}});
        let file = |name: &str, policy: &Value| (file_resources(Path::new(name), &[policy]).unwrap(), name.into());
        let groups = grouped(vec![
            file("a.yaml", &pods),
            file("roles.yaml", &roles),
            file("b.yaml", &pods),
            file("pdb.yaml", &pdb),
        ]);
        let files: Vec<Vec<PathBuf>> = groups.iter().map(|g| g.files.clone()).collect();
        let names = |n: &[&str]| n.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(files, [names(&["a.yaml", "b.yaml"]), names(&["pdb.yaml"]), names(&["roles.yaml"])]);
        let deployment = json!({"kind": "Deployment"});
        let matching: Vec<bool> = groups.iter().map(|g| g.matches(&deployment)).collect();
        assert_eq!(matching, [true, true, false]);
        assert!(!groups.iter().any(|g| g.matches(&json!({"kind": "ConfigMap"}))));
        let unreadable = file_resources(Path::new("x.yaml"), &[&json!({"metadata": {"name": "p"}, "spec": {}})]);
        assert!(format!("{:#}", unreadable.unwrap_err()).contains("cannot tell which resources policy p matches"));
    }

    #[test]
    fn cluster_policies_match_their_rules_kinds() {
        let policy = json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "spec": {"rules": [
            {"match": {"any": [{"resources": {"kinds": ["Pod", "apps/v1/Deployment"]}}]}},
            {"match": {"resources": {"kinds": ["Service"]}}}]}});
        assert_eq!(matched_resources(&policy), ["pods", "deployments", "services"]);
        let cel = json!({"spec": {"matchConstraints": {"resourceRules": [{"resources": ["pods"]}]}}});
        assert_eq!(matched_resources(&cel), ["pods"]);
        assert!(matched_resources(&json!({"spec": {}})).is_empty());
    }

    /// `kyverno test --output-format json --detailed-results` (v1.19.1) for a
    /// test expecting `fail` on a pod the policy excludes (kube-system) and
    /// on a compliant pod.
    const TEST_OUTPUT: &str = r#"Loading test  ( p/.kyverno-test/kyverno-test.yaml ) ...
  Loading values/variables ...
  Loading policies ...
  Applying 1 policy to 2 resources with 0 exceptions ...
  Checking results ...

[
  {
    "ID": 1,
    "Message": "Excluded",
    "POLICY": "require-labels",
    "REASON": "Excluded",
    "RESOURCE": "v1/Pod/kube-system/sys",
    "RESULT": "Pass",
    "RULE": ""
  },
  {
    "ID": 2,
    "Message": "success",
    "POLICY": "require-labels",
    "REASON": "Want fail, got pass",
    "RESOURCE": "v1/Pod/a/ok",
    "RESULT": "Fail",
    "RULE": ""
  }
]


Test Summary: 1 tests passed and 1 tests failed
"#;

    #[test]
    fn test_rows_carry_their_test_file_and_outcome() {
        let rows = parse_test_output(TEST_OUTPUT).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.test == "p/.kyverno-test/kyverno-test.yaml"), "{rows:?}");
        assert_eq!(rows[1].kind_namespace_name(), ("Pod", "a", "ok"));
        assert_eq!(
            rows[1].describe(),
            "p/.kyverno-test/kyverno-test.yaml: policy require-labels, resource v1/Pod/a/ok: Want fail, got pass (success)"
        );
    }

    #[test]
    fn an_expectation_on_an_excluded_resource_is_reported() {
        let rows = parse_test_output(TEST_OUTPUT).unwrap();
        let rows: Vec<&TestRow> = rows.iter().collect();
        let test: TestFile = serde_norway::from_str(
            "results:\n\
             - {policy: require-labels, kind: Pod, resources: [kube-system/sys], result: fail}\n\
             - {policy: require-labels, kind: Pod, resources: [a/ok], result: fail}\n\
             - {policy: require-labels, kind: Pod, resources: [sys], result: skip}\n\
             - {policy: gen, kind: Namespace, resources: [a], result: pass, generatedResource: np.yaml}\n",
        )
        .unwrap();
        let problems = unevaluated(Path::new("t.yaml"), &test, &rows);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("t.yaml: policy require-labels expects fail for Pod kube-system/sys"));
    }

    #[test]
    fn truncated_test_output_is_an_error() {
        let cut = &TEST_OUTPUT[..TEST_OUTPUT.find("  {\n    \"ID\": 2").unwrap()];
        assert!(parse_test_output(cut).is_err());
    }

    /// `kyverno apply --policy-report --output-format json` (v1.19.1), cut to
    /// what a GeneratingPolicy prints first, then one failure and one pass of
    /// a CEL policy.
    const APPLY_OUTPUT: &str = r#"
policy generate-default-deny applied to /Namespace/shop:
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
    name: default-deny
    namespace: shop
spec:
    podSelector: {}

---


Generate:
Generation completed successfully.{"kind":"ClusterReport","apiVersion":"openreports.io/v1alpha1","metadata":{"name":"merged"},"source":"","summary":{"pass":1,"fail":1,"warn":0,"error":0,"skip":0},"results":[{"source":"KyvernoValidatingPolicy","policy":"require-labels","timestamp":{"seconds":1795674355,"nanos":0},"result":"fail","scored":true,"resources":[{"kind":"Deployment","namespace":"shop","name":"web","apiVersion":"apps/v1"}],"message":"label(s) required on the pod (or pod template): app.kubernetes.io/version","properties":{"cel.validationIndex":"0","process":"background scan"}},{"source":"KyvernoValidatingPolicy","policy":"require-labels","timestamp":{"seconds":1795674355,"nanos":0},"result":"pass","scored":true,"resources":[{"kind":"Pod","namespace":"default","name":"ok","apiVersion":"v1"}],"message":"success","properties":{"process":"background scan"}}]}
"#;

    #[test]
    fn report_failures_name_file_resource_policy_rule_and_message() {
        let report = parse_report(APPLY_OUTPUT).unwrap().unwrap();
        assert_eq!(report.results.len(), 2);
        let mut index = Index::default();
        let web = json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        index.insert(&web, Path::new("rendered/shop.yaml"));
        let ok = json!({"kind": "Pod", "metadata": {"name": "ok"}});
        index.insert(&ok, Path::new("rendered/pod.yaml"));
        assert_eq!(
            report.results[0].describe("production", &index),
            "production: rendered/shop.yaml: Deployment shop/web: policy require-labels, validation 0: fail: \
             label(s) required on the pod (or pod template): app.kubernetes.io/version"
        );
        assert_eq!(index.file("Pod", "default", "ok"), Some(Path::new("rendered/pod.yaml")));
        let entry = report.results[0].entry(&index);
        assert_eq!(
            (entry.policy.as_str(), entry.rule.as_str(), entry.result.as_str()),
            ("require-labels", "validation 0", "fail")
        );
        assert_eq!(entry.resources[0].api_version, "apps/v1");
        assert_eq!(entry.file.as_deref(), Some("rendered/shop.yaml"));
        assert_eq!(report.results[1].entry(&index).file.as_deref(), Some("rendered/pod.yaml"));
        assert!(parse_report("Error: no policies\n").unwrap().is_none());
        assert!(parse_report("{\"kind\":\"ClusterReport\",\"summary\":").is_err());
    }

    #[test]
    fn lists_are_flattened_and_lookup_kinds_kept() {
        let docs = flatten(vec![
            json!({"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap"}, {"apiVersion": "v1", "kind": "Secret"}]}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}),
        ]);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ConfigMap", "Secret", "PodDisruptionBudget"]);
        assert_eq!(docs.iter().filter(|d| is_lookup_kind(d)).count(), 2);
    }

    /// Every policy of the repository excludes the same platform namespaces
    /// (docs/policies.md lists them), so adding one is a change to all.
    #[test]
    fn policies_exclude_the_same_platform_namespaces() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies");
        let mut lists = BTreeMap::new();
        let mut conditions = Vec::new();
        for file in kustomization_files(&dir).unwrap() {
            for doc in flatten(rules::documents(&file).unwrap()) {
                let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let selector = &doc["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"];
                for expression in selector.as_array().into_iter().flatten() {
                    if expression["key"] == "kubernetes.io/metadata.name" && expression["operator"] == "NotIn" {
                        lists.insert(name.clone(), expression["values"].clone());
                    }
                }
                for condition in doc["spec"]["matchConditions"].as_array().into_iter().flatten() {
                    conditions.push((name.clone(), condition["expression"].as_str().unwrap_or_default().to_string()));
                }
            }
        }
        assert!(lists.len() >= 10, "{lists:?}");
        let first = lists.values().next().unwrap().as_array().unwrap().clone();
        assert!(first.iter().any(|n| n == "kube-system"));
        for (name, list) in &lists {
            assert_eq!(list.as_array().unwrap(), &first, "{name} excludes other namespaces than the rest");
        }
        // Policies on Namespace objects exclude by name in a match condition.
        let (name, expression) = conditions.iter().find(|(_, e)| e.contains("'kube-system'")).unwrap();
        for namespace in &first {
            let quoted = format!("'{}'", namespace.as_str().unwrap());
            assert!(expression.contains(&quoted), "{name} does not exclude {quoted}");
        }
    }
}

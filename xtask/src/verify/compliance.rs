//! The compliance report: per environment, the resources the policies
//! checked and their results, from the same `kyverno apply` run that gates
//! `verify` (see `kyverno::apply`). Written as Markdown (`compliance.md`) and
//! JSON (`compliance.json`: a `v1` List of wgpolicyk8s.io PolicyReports, one
//! per environment) into `<cache>/verify/report/`.
//!
//! `cargo xtask policy report` (policy_report.rs) writes the same report on
//! its own.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Outcome;

/// One resource a result is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One policy result, as Kyverno reported it, with the file the resource
/// came from when known.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub policy: String,
    pub rule: String,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub result: String,
    pub message: String,
    pub resources: Vec<Resource>,
    pub file: Option<String>,
}

/// What the policies found in one environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub name: String,
    pub results: Vec<Entry>,
    /// Documents of a kind some policy matches, given to Kyverno.
    pub matched: usize,
}

/// The compliance every environment must reach: our own manifests comply
/// with every policy, in Audit as in Deny mode.
pub const TARGET_PERCENT: f64 = 100.0;

/// Failures of environments below `TARGET_PERCENT`, or whose matched
/// documents produced no result at all (the policies looked at nothing). An
/// environment with no document of a kind any policy matches (the bare Flux
/// Kustomizations of the repository) is n/a, and says so.
pub fn below_target(environments: &[Environment]) -> Vec<String> {
    let mut failures = Vec::new();
    for env in environments {
        let summary = env.summary();
        match summary.compliance() {
            Some(p) if p < TARGET_PERCENT => failures.push(format!(
                "{}: compliance {} is below the target of {TARGET_PERCENT}%",
                env.name,
                percent(Some(p))
            )),
            Some(_) => {}
            None if env.matched > 0 => failures.push(format!(
                "{}: {} document(s) of kinds the policies match, and not one scored result",
                env.name, env.matched
            )),
            None => println!("    {}: n/a, no document of a kind any policy matches", env.name),
        }
    }
    failures
}

/// PolicyReport's `summary`, counted from the results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub error: usize,
    pub skip: usize,
}

impl Summary {
    pub fn of(results: &[Entry]) -> Self {
        let mut summary = Self::default();
        for entry in results {
            match entry.result.as_str() {
                "pass" => summary.pass += 1,
                "fail" => summary.fail += 1,
                "warn" => summary.warn += 1,
                "error" => summary.error += 1,
                "skip" => summary.skip += 1,
                // Anything else Kyverno may add counts against compliance.
                _ => summary.error += 1,
            }
        }
        summary
    }

    /// passed / (passed + failed + errored), in percent; `None` when no
    /// result counts (nothing the policies judge).
    pub fn compliance(&self) -> Option<f64> {
        let scored = self.pass + self.fail + self.error;
        (scored > 0).then(|| 100.0 * self.pass as f64 / scored as f64)
    }
}

/// `100%` only when nothing failed; otherwise rounded down to one decimal,
/// so 99.96% is never shown as 100.
pub fn percent(compliance: Option<f64>) -> String {
    match compliance {
        None => "n/a".into(),
        Some(p) if p >= 100.0 => "100%".into(),
        Some(p) => format!("{:.1}%", (p * 10.0).floor() / 10.0),
    }
}

impl Environment {
    /// Distinct resources with at least one result.
    pub fn resources(&self) -> usize {
        self.results.iter().flat_map(|e| &e.resources).collect::<BTreeSet<_>>().len()
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.results)
    }

    /// The line printed for the environment.
    pub fn line(&self) -> String {
        let s = self.summary();
        format!(
            "{:<40} {:>5} resources {:>5} pass {:>4} fail {:>4} warn {:>4} error {:>4} skip  compliance {}",
            self.name,
            self.resources(),
            s.pass,
            s.fail,
            s.warn,
            s.error,
            s.skip,
            percent(s.compliance())
        )
    }

    fn policy_report(&self) -> Value {
        let s = self.summary();
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|e| {
                let mut properties = serde_json::Map::new();
                if let Some(file) = &e.file {
                    properties.insert("file".into(), json!(file));
                }
                json!({
                    "source": "kyverno",
                    "policy": e.policy,
                    "rule": e.rule,
                    "result": e.result,
                    "scored": true,
                    "message": e.message,
                    "resources": e.resources.iter().map(|r| json!({
                        "apiVersion": r.api_version,
                        "kind": r.kind,
                        "namespace": r.namespace,
                        "name": r.name,
                    })).collect::<Vec<_>>(),
                    "properties": properties,
                })
            })
            .collect();
        json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {
                "name": format!("compliance-{}", slug(&self.name)),
                "annotations": {
                    "demo-platform/environment": self.name,
                    "demo-platform/resources-checked": self.resources().to_string(),
                    "demo-platform/compliance": percent(s.compliance()),
                },
            },
            "summary": { "pass": s.pass, "fail": s.fail, "warn": s.warn, "error": s.error, "skip": s.skip },
            "results": results,
        })
    }
}

/// `chart dev` → `chart-dev`, `deploy/x` → `deploy-x`: a valid object name.
fn slug(name: &str) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-")
}

/// The JSON report: a `v1` List of one PolicyReport per environment.
pub fn to_json(environments: &[Environment]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": environments.iter().map(Environment::policy_report).collect::<Vec<_>>(),
    })
}

/// The Markdown report: one table row per environment, then every result
/// other than pass and skip.
pub fn to_markdown(title: &str, environments: &[Environment]) -> String {
    let mut md = format!("# {title}\n\n");
    md.push_str(
        "Compliance = pass / (pass + fail + error). Resources: distinct resources with at least one policy result.\n\n",
    );
    md.push_str("| environment | resources | pass | fail | warn | error | skip | compliance |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for env in environments {
        let s = env.summary();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&env.name),
            env.resources(),
            s.pass,
            s.fail,
            s.warn,
            s.error,
            s.skip,
            percent(s.compliance())
        );
    }
    let findings: Vec<(&Environment, &Entry)> = environments
        .iter()
        .flat_map(|env| env.results.iter().map(move |e| (env, e)))
        .filter(|(_, e)| e.result != "pass" && e.result != "skip")
        .collect();
    md.push_str("\n## Findings\n\n");
    if findings.is_empty() {
        md.push_str("None: every result is pass or skip.\n");
        return md;
    }
    md.push_str("| environment | result | policy | rule | resource | file | message |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for (env, e) in findings {
        let resources: Vec<String> = e
            .resources
            .iter()
            .map(|r| {
                if r.namespace.is_empty() {
                    format!("{} {}", r.kind, r.name)
                } else {
                    format!("{} {}/{}", r.kind, r.namespace, r.name)
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&env.name),
            e.result,
            cell(&e.policy),
            cell(&e.rule),
            cell(&resources.join(", ")),
            cell(e.file.as_deref().unwrap_or("")),
            cell(&e.message)
        );
    }
    md
}

/// A Markdown table cell: no pipe or line break may end it early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Writes `compliance.md` and `compliance.json` into `dir` and prints one
/// line per environment; `checked` is the number of environments.
pub fn write(dir: &Path, title: &str, environments: &[Environment]) -> Result<Outcome> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = dir.join("compliance.md");
    let json = dir.join("compliance.json");
    fs::write(&md, to_markdown(title, environments)).with_context(|| format!("cannot write {}", md.display()))?;
    fs::write(&json, serde_json::to_string_pretty(&to_json(environments))? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    for env in environments {
        println!("    {}", env.line());
    }
    println!("    report: {} and compliance.json", md.display());
    Ok(Outcome { checked: environments.len(), failures: Vec::new() })
}

/// `kyverno::apply`'s result as the gate's outcome and the report's
/// environments (none when the run itself failed).
pub fn split(applied: Result<(Outcome, Vec<Environment>)>) -> (Result<Outcome>, Vec<Environment>) {
    match applied {
        Ok((outcome, environments)) => (Ok(outcome), environments),
        Err(err) => (Err(err), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(result: &str, kind: &str, name: &str) -> Entry {
        Entry {
            policy: "require-labels".into(),
            result: result.into(),
            message: if result == "pass" { "success".into() } else { "label | missing\nhere".into() },
            resources: vec![Resource {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                namespace: "shop".into(),
                name: name.into(),
            }],
            file: Some("rendered/shop.yaml".into()),
            ..Entry::default()
        }
    }

    #[test]
    fn counts_each_result_and_distinct_resources() {
        let env = Environment {
            name: "dev".into(),
            results: vec![
                entry("pass", "Deployment", "web"),
                entry("fail", "Deployment", "web"),
                entry("skip", "Deployment", "api"),
                entry("warn", "Pod", "p"),
                entry("error", "Pod", "p"),
                entry("pass", "Pod", "q"),
            ],
            matched: 4,
        };
        assert_eq!(env.summary(), Summary { pass: 2, fail: 1, warn: 1, error: 1, skip: 1 });
        assert_eq!(env.resources(), 4);
        // 2 / (2 + 1 + 1): warnings and skips do not count.
        assert_eq!(env.summary().compliance(), Some(50.0));
    }

    #[test]
    fn percentages_never_round_up_to_full_compliance() {
        assert_eq!(percent(Summary { pass: 3, ..Summary::default() }.compliance()), "100%");
        assert_eq!(percent(Summary { pass: 2, fail: 1, ..Summary::default() }.compliance()), "66.6%");
        assert_eq!(percent(Summary { pass: 9999, fail: 1, ..Summary::default() }.compliance()), "99.9%");
        assert_eq!(percent(Summary { skip: 4, warn: 1, ..Summary::default() }.compliance()), "n/a");
        assert_eq!(percent(Summary { fail: 2, ..Summary::default() }.compliance()), "0.0%");
    }

    #[test]
    fn below_target_and_unscored_environments_fail() {
        let env = |name: &str, results: Vec<Entry>, matched| Environment { name: name.into(), results, matched };
        let envs = [
            env("ok", vec![entry("pass", "Deployment", "web")], 1),
            env("low", vec![entry("pass", "Deployment", "a"), entry("fail", "Deployment", "b")], 2),
            env("unscored", vec![entry("skip", "Deployment", "c")], 1),
            env("repo", vec![], 0),
        ];
        let failures = below_target(&envs);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("low: compliance 50.0% is below the target of 100%"), "{failures:?}");
        assert!(failures[1].starts_with("unscored: 1 document(s)"), "{failures:?}");
    }

    #[test]
    fn markdown_has_a_row_per_environment_and_the_findings() {
        let envs = [
            Environment { name: "dev".into(), results: vec![entry("pass", "Deployment", "web")], matched: 1 },
            Environment {
                name: "fixtures/require-labels".into(),
                results: vec![entry("pass", "Deployment", "ok"), entry("fail", "Deployment", "bad")],
                matched: 2,
            },
        ];
        let md = to_markdown("Compliance report", &envs);
        assert!(md.starts_with("# Compliance report\n"));
        assert!(md.contains("| dev | 1 | 1 | 0 | 0 | 0 | 0 | 100% |\n"), "{md}");
        assert!(md.contains("| fixtures/require-labels | 2 | 1 | 1 | 0 | 0 | 0 | 50.0% |\n"), "{md}");
        assert!(
            md.contains(
                "| fixtures/require-labels | fail | require-labels |  | Deployment shop/bad | rendered/shop.yaml \
                 | label \\| missing here |\n"
            ),
            "{md}"
        );
        assert_eq!(md.matches("| fail | require-labels").count(), 1, "only failures are findings");
        let clean = to_markdown("Compliance report", &envs[..1]);
        assert!(clean.ends_with("## Findings\n\nNone: every result is pass or skip.\n"), "{clean}");
    }

    #[test]
    fn json_is_a_list_of_policy_reports_with_summaries() {
        let envs = [Environment {
            name: "chart dev".into(),
            results: vec![entry("pass", "Deployment", "web"), entry("fail", "Pod", "p")],
            matched: 2,
        }];
        let json = to_json(&envs);
        assert_eq!(json["kind"], "List");
        let report = &json["items"][0];
        assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(report["kind"], "PolicyReport");
        assert_eq!(report["metadata"]["name"], "compliance-chart-dev");
        assert_eq!(report["metadata"]["annotations"]["demo-platform/compliance"], "50.0%");
        assert_eq!(report["summary"], json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
        assert_eq!(report["results"][1]["resources"][0]["kind"], "Pod");
        assert_eq!(report["results"][1]["properties"]["file"], "rendered/shop.yaml");
    }
}

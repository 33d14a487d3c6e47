//! What promtool does not check about our alerts: each one tells the person
//! it wakes what happened and what to do (`summary`, `description`, a
//! `runbook_url` to `docs/runbooks/<alert>.md` that exists, a known
//! `severity`), and each one is unit-tested both ways: a promtool test where
//! it fires and one where it stays quiet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::rules::documents;

/// Where runbooks live, relative to the repository root.
pub const RUNBOOKS_DIR: &str = "docs/runbooks";
/// Severities Alertmanager routes (deploy/infrastructure/observability).
const SEVERITIES: &[&str] = &["critical", "warning", "info"];

/// Alerts of a plain Prometheus rule file: (name, rule).
fn alerts(file: &Path) -> Result<Vec<(String, Value)>> {
    let mut found = Vec::new();
    for doc in documents(file)? {
        for group in doc["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                if let Some(name) = rule["alert"].as_str() {
                    found.push((name.to_string(), rule.clone()));
                }
            }
        }
    }
    Ok(found)
}

/// Every alert of `file` has its annotations, severity and runbook.
pub fn conventions(root: &Path, file: &Path) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for (name, rule) in alerts(file)? {
        let mut fail = |what: String| failures.push(format!("{}: alert {name}: {what}", file.display()));
        for key in ["summary", "description", "runbook_url"] {
            if rule["annotations"][key].as_str().is_none_or(|s| s.trim().is_empty()) {
                fail(format!("annotation {key} is missing"));
            }
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !SEVERITIES.contains(&severity) {
            fail(format!("label severity is {severity:?}; use one of {SEVERITIES:?}"));
        }
        if let Some(url) = rule["annotations"]["runbook_url"].as_str() {
            let runbook = format!("{RUNBOOKS_DIR}/{name}.md");
            if !url.ends_with(&runbook) {
                fail(format!("runbook_url {url:?} must end with {runbook}"));
            } else if !root.join(&runbook).is_file() {
                fail(format!("{runbook} does not exist; write it (what it means, how to check, how to fix)"));
            }
        }
    }
    Ok(failures)
}

/// For each alert of `rule_files`: an `alert_rule_test` of a test file that
/// loads it expects it firing, and another expects it quiet.
pub fn coverage(rule_files: &[PathBuf], test_files: &[PathBuf]) -> Result<Vec<String>> {
    // (rule file name, alert) -> (firing cases, quiet cases)
    let mut cases: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for file in rule_files {
        let file_name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for (alert, _) in alerts(file)? {
            cases.insert((file_name.clone(), alert), (0, 0));
        }
    }
    for test in test_files {
        for doc in documents(test)? {
            let loaded: Vec<String> = doc["rule_files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .map(|f| Path::new(f).file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect();
            for case in doc["tests"].as_array().into_iter().flatten().flat_map(|t| t["alert_rule_test"].as_array()) {
                for check in case {
                    let alert = check["alertname"].as_str().unwrap_or_default();
                    let fires = check["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                    for file_name in &loaded {
                        if let Some((firing, quiet)) = cases.get_mut(&(file_name.clone(), alert.to_string())) {
                            if fires {
                                *firing += 1;
                            } else {
                                *quiet += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut failures = Vec::new();
    for ((file, alert), (firing, quiet)) in cases {
        if firing == 0 {
            failures.push(format!(
                "{file}: alert {alert} has no unit test where it fires (alert_rule_test with exp_alerts)"
            ));
        }
        if quiet == 0 {
            failures.push(format!("{file}: alert {alert} has no unit test where it stays quiet (exp_alerts: [])"));
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const RULES: &str = r#"
groups:
  - name: g
    rules:
      - alert: Tested
        expr: up == 0
        labels: {severity: warning}
        annotations:
          summary: s
          description: d
          runbook_url: https://example.com/docs/runbooks/Tested.md
      - alert: Untested
        expr: up == 0
        labels: {severity: page}
        annotations: {summary: s}
"#;

    #[test]
    fn alerts_need_annotations_a_runbook_and_tests_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("x.rules.yaml");
        fs::write(&rules, RULES).unwrap();
        fs::create_dir_all(dir.path().join(RUNBOOKS_DIR)).unwrap();
        fs::write(dir.path().join(RUNBOOKS_DIR).join("Tested.md"), "# Tested\n").unwrap();
        let test = dir.path().join("x.rules.test.yaml");
        fs::write(
            &test,
            "rule_files: [x.rules.yaml]\ntests:\n  - alert_rule_test:\n      - {alertname: Tested, exp_alerts: [{}]}\n      \
             - {alertname: Tested, exp_alerts: []}\n      - {alertname: Untested, exp_alerts: []}\n",
        )
        .unwrap();

        let found = conventions(dir.path(), &rules).unwrap().join("\n");
        assert!(!found.contains("alert Tested"), "{found}");
        for expected in
            ["annotation description is missing", "annotation runbook_url is missing", "severity is \"page\""]
        {
            assert!(found.contains(&format!("alert Untested: {expected}")) || found.contains(expected), "{found}");
        }

        let gaps = coverage(&[rules], &[test]).unwrap();
        assert_eq!(
            gaps,
            ["x.rules.yaml: alert Untested has no unit test where it fires (alert_rule_test with exp_alerts)"]
        );
    }
}

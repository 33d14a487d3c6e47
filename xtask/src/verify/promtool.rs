//! Prometheus rules with promtool: every rule file under
//! deploy/observability/alerts (plain Prometheus rule files; the cluster gets
//! them as PrometheusRules through the platform-observability chart) passes
//! `promtool check rules` and the alert conventions (alert_rules.rs), every
//! `*.rules.test.yaml` there passes `promtool test rules`, and every alert is
//! tested firing and quiet.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use super::{Outcome, Validators, alert_rules};
use crate::cmd;

pub const ALERTS_DIR: &str = "deploy/observability/alerts";

fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?,
        Err(_) => return Ok(Vec::new()),
    };
    files.retain(|f| f.to_string_lossy().ends_with(suffix));
    files.sort();
    Ok(files)
}

/// The rule files of the repository (`*.rules.yaml`, not their tests).
pub fn rule_files(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(files_ending(&root.join(ALERTS_DIR), ".rules.yaml")?
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with(".test.yaml"))
        .collect())
}

/// Rule files: `promtool check rules` (PromQL, structure, templates), then
/// the conventions every alert follows (runbooks relative to `root`).
pub fn check_rules(v: &Validators, root: &Path, files: &[PathBuf]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for file in files {
        outcome.checked += 1;
        let output = cmd::capture(Command::new(&v.promtool).args(["check", "rules"]).arg(file))?;
        if !output.status.success() {
            outcome.failures.push(format!(
                "promtool check rules {}: {}",
                file.display(),
                cmd::tail(&output.stderr, &output.stdout, 8)
            ));
            continue;
        }
        outcome.failures.extend(alert_rules::conventions(root, file)?);
    }
    Ok(outcome)
}

pub fn check(v: &Validators, root: &Path) -> Result<Outcome> {
    let alerts = root.join(ALERTS_DIR);
    let rules = rule_files(root)?;
    if rules.is_empty() {
        bail!("no rule file in {ALERTS_DIR}");
    }
    let mut outcome = check_rules(v, root, &rules)?;
    let tests = files_ending(&alerts, ".rules.test.yaml")?;
    for test in &tests {
        outcome.checked += 1;
        // promtool resolves rule_files relative to the test file's folder.
        let output = cmd::capture(
            Command::new(&v.promtool).current_dir(&alerts).args(["test", "rules"]).arg(test.file_name().unwrap()),
        )?;
        if !output.status.success() {
            outcome.failures.push(format!(
                "promtool test rules {}: {}",
                test.display(),
                cmd::tail(&output.stdout, &output.stderr, 15)
            ));
        }
    }
    outcome.failures.extend(alert_rules::coverage(&rules, &tests)?);
    Ok(outcome)
}

/// Every PrometheusRule as Flux would apply it (the demo-app chart's, and
/// the rule files above wrapped by the platform-observability chart), its
/// spec through `promtool check rules`: no rule reaches a cluster unparsed.
/// Identical specs (the same rules in several environments) are checked once.
pub fn check_rendered(v: &Validators, manifests: &[(String, PathBuf)], scratch: &Path) -> Result<Outcome> {
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch)?;
    let mut specs: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (env, file) in manifests {
        for doc in super::rules::documents(file)? {
            if doc["kind"] == "PrometheusRule" {
                let name = doc["metadata"]["name"].as_str().unwrap_or("?");
                let spec = serde_norway::to_string(&doc["spec"])?;
                specs.entry(spec).or_insert_with(|| format!("{env}: PrometheusRule {name} ({})", file.display()));
            }
        }
    }
    let mut outcome = Outcome::default();
    for (i, (spec, origin)) in specs.iter().enumerate() {
        outcome.checked += 1;
        let file = scratch.join(format!("prometheusrule-{i}.yaml"));
        fs::write(&file, spec)?;
        let output = cmd::capture(Command::new(&v.promtool).args(["check", "rules"]).arg(&file))?;
        if !output.status.success() {
            outcome.failures.push(format!("{origin}: {}", cmd::tail(&output.stderr, &output.stdout, 8)));
        }
    }
    if outcome.checked == 0 {
        bail!("no PrometheusRule in the rendered manifests");
    }
    Ok(outcome)
}

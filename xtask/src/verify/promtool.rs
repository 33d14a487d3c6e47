//! Prometheus rules with promtool: `check rules` on every rule file and
//! `test rules` on every unit-test file under deploy/observability/alerts;
//! Grafana dashboards there must at least be JSON.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::{Outcome, Validators};
use crate::cmd;

pub const ALERTS_DIR: &str = "deploy/observability/alerts";
pub const DASHBOARDS_DIR: &str = "deploy/observability/dashboards";

fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?,
        Err(_) => return Ok(Vec::new()),
    };
    files.retain(|f| f.to_string_lossy().ends_with(suffix));
    files.sort();
    Ok(files)
}

/// Rule files (`*.rules.yaml`, not the tests), checked.
pub fn check_rules(v: &Validators, files: &[PathBuf]) -> Result<Outcome> {
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
        }
    }
    Ok(outcome)
}

pub fn check(v: &Validators, root: &Path) -> Result<Outcome> {
    let alerts = root.join(ALERTS_DIR);
    let rules: Vec<PathBuf> = files_ending(&alerts, ".rules.yaml")?
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    let mut outcome = check_rules(v, &rules)?;
    for test in files_ending(&alerts, ".rules.test.yaml")? {
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
    for dashboard in files_ending(&root.join(DASHBOARDS_DIR), ".json")? {
        outcome.checked += 1;
        if let Err(err) = serde_json::from_slice::<serde_json::Value>(&fs::read(&dashboard)?) {
            outcome.failures.push(format!("{}: not JSON: {err}", dashboard.display()));
        }
    }
    Ok(outcome)
}

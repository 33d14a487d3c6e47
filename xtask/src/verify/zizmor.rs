//! zizmor, offline, with its regular persona: the security audits of GitHub
//! Actions workflows (actions not pinned to a commit, template injection,
//! excessive permissions, credentials persisted into artifacts, cache
//! poisoning, dangerous triggers, ...). Every finding fails verify; one that
//! is accepted carries a `# zizmor: ignore[audit]` comment, with its reason,
//! in the workflow.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::Outcome;
use crate::cmd;

#[derive(Deserialize)]
struct Finding {
    ident: String,
    desc: String,
    determinations: Determinations,
    locations: Vec<Location>,
}

#[derive(Deserialize)]
struct Determinations {
    severity: String,
}

#[derive(Deserialize)]
struct Location {
    symbolic: Symbolic,
    concrete: Concrete,
}

#[derive(Deserialize)]
struct Symbolic {
    key: serde_json::Value,
    annotation: String,
}

#[derive(Deserialize)]
struct Concrete {
    location: Span,
}

#[derive(Deserialize)]
struct Span {
    start_point: Point,
}

#[derive(Deserialize)]
struct Point {
    row: usize,
}

pub fn check(zizmor: &std::path::Path, files: &[PathBuf]) -> Result<Outcome> {
    if files.is_empty() {
        return Ok(Outcome::default());
    }
    let mut run = Command::new(zizmor);
    run.args(["--offline", "--no-progress", "--format", "json"]).args(files);
    let output = cmd::capture(&mut run)?;
    // 0: clean; 10-14: findings of some severity; anything else: a broken run.
    if !matches!(output.status.code(), Some(0 | 10..=14)) {
        bail!("`{}` failed ({}): {}", cmd::display(&run), output.status, cmd::tail(&output.stderr, &output.stdout, 20));
    }
    let findings: Vec<Finding> = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("zizmor printed no JSON report: {}", cmd::tail(&output.stderr, &output.stdout, 10)))?;
    Ok(Outcome { checked: files.len(), failures: findings.iter().map(describe).collect() })
}

fn describe(finding: &Finding) -> String {
    let place = finding.locations.first().map_or_else(String::new, |l| {
        let path = l.symbolic.key["Local"]["verbatim_path"].as_str().unwrap_or("?");
        format!("{path}:{}: ", l.concrete.location.start_point.row + 1)
    });
    let note = finding.locations.first().map(|l| l.symbolic.annotation.as_str()).unwrap_or_default();
    format!("{place}{} ({}): {}: {note}", finding.ident, finding.determinations.severity, finding.desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_names_file_line_audit_and_why() {
        let json = r#"[{"ident":"unpinned-uses","desc":"unpinned action reference","url":"u",
            "determinations":{"confidence":"High","severity":"High","persona":"Regular"},
            "locations":[{"symbolic":{"key":{"Local":{"verbatim_path":"w.yml"}},"annotation":"action is not pinned to a hash",
            "route":{"route":[]},"feature_kind":"Normal","kind":"Primary"},
            "concrete":{"location":{"start_point":{"row":11,"column":8},"end_point":{"row":11,"column":33}},"feature":"uses: a/b@v5","comments":[]}}],
            "ignored":false,"fixes":[]}]"#;
        let findings: Vec<Finding> = serde_json::from_str(json).unwrap();
        assert_eq!(
            describe(&findings[0]),
            "w.yml:12: unpinned-uses (High): unpinned action reference: action is not pinned to a hash"
        );
    }
}

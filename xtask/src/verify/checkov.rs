//! checkov (offline, `--skip-download`) over the OpenTofu code, the chart and
//! every rendered manifest. A finding fails verify unless
//! `infra/checkov-skips.yaml` names it with a reason; a skip that matches
//! nothing fails too, so the file cannot rot into a blanket exemption.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::Outcome;
use crate::cmd;
use crate::project::Project;
use crate::tools;

pub const SKIP_FILE: &str = "infra/checkov-skips.yaml";

#[derive(Deserialize)]
struct SkipFile {
    skips: Vec<Skip>,
}

/// One accepted finding: a check, optionally narrowed to resources whose
/// checkov name (`Kind.namespace.name`, `aws_x.name`) matches a `*` pattern.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Skip {
    id: String,
    #[serde(default)]
    resources: Vec<String>,
    reason: String,
}

#[derive(Debug, PartialEq)]
pub struct Finding {
    pub id: String,
    pub name: String,
    pub file: String,
    pub resource: String,
}

/// What to scan, with the checkov framework that reads it.
pub fn targets(project: &Project, rendered: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (project.root.join("infra"), "terraform"),
        (project.root.join("charts/demo-app"), "helm"),
        (rendered.to_path_buf(), "kubernetes"),
        (project.root.join(".github/workflows"), "github_actions"),
    ]
}

pub fn check(project: &Project, targets: &[(PathBuf, &str)]) -> Result<Outcome> {
    let skips = load_skips(&project.root.join(SKIP_FILE))?;
    let mut outcome = Outcome::default();
    let mut used = vec![false; skips.len()];
    for (dir, framework) in targets {
        let (checked, findings) = scan(project, dir, framework, None)?;
        outcome.checked += checked;
        for finding in findings {
            match skips.iter().position(|s| matches(s, &finding)) {
                Some(i) => used[i] = true,
                None => outcome.failures.push(format!(
                    "{} {} ({}) in {}: fix it, or list it in {SKIP_FILE} with a reason",
                    finding.id, finding.resource, finding.name, finding.file
                )),
            }
        }
    }
    for (skip, used) in skips.iter().zip(used) {
        if !used {
            outcome.failures.push(format!("{SKIP_FILE}: {} matches no finding any more; remove it", skip.id));
        }
    }
    Ok(outcome)
}

/// One checkov scan, of every check or `only` one: (checks passed + failed,
/// failed findings).
pub fn scan(project: &Project, dir: &Path, framework: &str, only: Option<&str>) -> Result<(usize, Vec<Finding>)> {
    let checkov = tools::locate(project, "checkov")?;
    // The helm framework renders the chart with `helm` from PATH: ours.
    let helm_dir = tools::locate(project, "helm")?.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(helm_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let command = || {
        let mut command = Command::new(&checkov);
        command.env("PATH", &path).args([
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
            "--framework",
            framework,
        ]);
        if let Some(check) = only {
            command.args(["--check", check]);
        }
        command
    };
    if dir.is_file() {
        return run(dir, command().arg("--file").arg(dir));
    }
    if !dir.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
        return run(dir, command().arg("--directory").arg(dir));
    }
    // checkov skips every file below a hidden folder (the renders live in
    // ~/.cache): name the files instead, every one below it, in two runs
    // side by side (each file is scanned on its own, so the halves add up).
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(walkdir::DirEntry::into_path)
        .filter(|f| f.is_file() && super::files::is_yaml(f))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("nothing for checkov in {}", dir.display());
    }
    let halves: Vec<&[PathBuf]> = files.chunks(files.len().div_ceil(2)).collect();
    let results: Vec<Result<(usize, Vec<Finding>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = halves
            .iter()
            .map(|half| {
                let mut run_half = command();
                for file in *half {
                    run_half.arg("--file").arg(file);
                }
                scope.spawn(move || run(dir, &mut run_half))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("checkov panicked")))).collect()
    });
    let mut total = (0, Vec::new());
    for result in results {
        let (checked, findings) = result?;
        total.0 += checked;
        total.1.extend(findings);
    }
    Ok(total)
}

fn run(dir: &Path, command: &mut Command) -> Result<(usize, Vec<Finding>)> {
    let output = cmd::capture(command)?;
    // Exit 1 means findings; anything else, or no JSON, is a broken run.
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!("checkov failed on {}: {}", dir.display(), cmd::tail(&output.stderr, &output.stdout, 20));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("checkov on {}: {}", dir.display(), cmd::tail(&output.stderr, b"", 10)))
}

/// checkov prints one report per framework (an object, or a list of them);
/// a framework with nothing to scan prints a bare summary instead.
fn parse(json: &str) -> Result<(usize, Vec<Finding>)> {
    let mut checked = 0;
    let mut findings = Vec::new();
    for doc in serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>() {
        let doc = doc.context("checkov printed something other than JSON")?;
        let reports = match doc {
            serde_json::Value::Array(reports) => reports,
            report => vec![report],
        };
        for report in reports {
            let summary = &report["summary"];
            checked += (summary["passed"].as_u64().unwrap_or(0) + summary["failed"].as_u64().unwrap_or(0)) as usize;
            for failed in report["results"]["failed_checks"].as_array().into_iter().flatten() {
                let text = |key: &str| failed[key].as_str().unwrap_or("?").to_string();
                findings.push(Finding {
                    id: text("check_id"),
                    name: text("check_name"),
                    file: text("file_path"),
                    resource: text("resource"),
                });
            }
        }
    }
    Ok((checked, findings))
}

fn load_skips(path: &Path) -> Result<Vec<Skip>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: SkipFile = serde_norway::from_str(&text).with_context(|| format!("{} is malformed", path.display()))?;
    for skip in &file.skips {
        if skip.reason.trim().len() < 20 {
            bail!("{}: {} needs a reason a reviewer can judge", path.display(), skip.id);
        }
    }
    Ok(file.skips)
}

fn matches(skip: &Skip, finding: &Finding) -> bool {
    skip.id == finding.id && (skip.resources.is_empty() || skip.resources.iter().any(|p| glob(p, &finding.resource)))
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_literals() {
        assert!(glob("Pod.*.demo-app-test-*", "Pod.demo-app.demo-app-test-token"));
        assert!(glob("aws_x.y", "aws_x.y"));
        assert!(!glob("Pod.*.demo-app-test-*", "Deployment.demo-app.demo-app-backend"));
        assert!(!glob("a*b*c", "acb"));
    }

    #[test]
    fn parses_lists_objects_and_bare_summaries() {
        let json = r#"{"check_type":"terraform","results":{"failed_checks":[{"check_id":"CKV_1","check_name":"n","file_path":"/main.tf","resource":"aws_x.y"}]},"summary":{"passed":2,"failed":1}}
[{"check_type":"helm","results":{"failed_checks":[]},"summary":{"passed":4,"failed":0}}]
{"passed":0,"failed":0,"skipped":0,"parsing_errors":0}"#;
        let (checked, findings) = parse(json).unwrap();
        assert_eq!(checked, 7);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].resource, "aws_x.y");
    }
}

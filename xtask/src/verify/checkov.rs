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
        command.env("PATH", &path).args(["--skip-download", "--compact", "--output", "json", "--framework", framework]);
        if let Some(check) = only {
            command.args(["--check", check]);
        }
        command
    };
    if framework == KUBERNETES {
        return scan_manifests(dir, command, only.is_none());
    }
    let mut command = command();
    if dir.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
        // checkov skips every file below a hidden folder (.github): name them.
        for file in super::files::yaml_files(dir)? {
            command.arg("--file").arg(file);
        }
    } else {
        command.arg("--directory").arg(dir);
    }
    let (scanned, findings) = run(dir, &mut command)?;
    if scanned.checks == 0 {
        bail!("checkov ran no {framework} check on {}", dir.display());
    }
    Ok((scanned.checks, findings))
}

const KUBERNETES: &str = "kubernetes";

/// Kinds checkov always has checks for: a document of one of them that
/// comes back without a single result was not read.
const CHECKED_KINDS: &[&str] =
    &["Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Role", "ClusterRole"];

/// One document of a manifest file, written to a file of its own.
struct Document {
    copy: PathBuf,
    original: PathBuf,
    index: usize,
    kind: String,
    name: String,
}

/// The manifests of `target` (a file, or every YAML file below a folder),
/// scanned one document per file. checkov drops a whole file without a
/// word when one of its documents holds a Go template (`{{ .Values.`: Istio's
/// injector ConfigMap) or YAML that PyYAML cannot construct (`=` in the
/// Prometheus Operator's CRDs), so a file per document confines the loss to
/// that document, and every document of a kind checkov checks must come back
/// with results. CRDs are left out: checkov has no check for them.
///
/// With one check only (`all_checks` false), a document it does not apply
/// to has no result: only the findings count.
fn scan_manifests(target: &Path, command: impl Fn() -> Command, all_checks: bool) -> Result<(usize, Vec<Finding>)> {
    let files = if target.is_file() { vec![target.to_path_buf()] } else { super::files::yaml_files(target)? };
    let copies = tempfile::tempdir()?;
    // Per original file, so that one file's documents (a Pod and its
    // NetworkPolicy, a RoleBinding and its Role) share a run: checkov's
    // graph checks connect documents of the same run only.
    let mut per_file: Vec<Vec<Document>> = Vec::new();
    for (n, file) in files.iter().enumerate() {
        per_file.push(split(file, &copies.path().join(n.to_string()))?);
    }
    let documents: usize = per_file.iter().map(Vec::len).sum();
    if documents == 0 {
        bail!("nothing for checkov in {}", target.display());
    }
    let results: Vec<Result<(Scanned, Vec<Finding>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = halves(&per_file, documents)
            .into_iter()
            .map(|run_files| {
                let mut one_run = command();
                for document in run_files.iter().flatten() {
                    one_run.arg("--file").arg(&document.copy);
                }
                scope.spawn(move || run(target, &mut one_run))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("checkov panicked")))).collect()
    });
    let (mut total, mut findings) = (Scanned::default(), Vec::new());
    for result in results {
        let (scanned, found) = result?;
        total.checks += scanned.checks;
        total.files.extend(scanned.files);
        findings.extend(found);
    }
    let all: Vec<&Document> = per_file.iter().flatten().collect();
    let unread: Vec<String> = all
        .iter()
        .filter(|d| CHECKED_KINDS.contains(&d.kind.as_str()) && !total.files.contains(&*d.copy.to_string_lossy()))
        .map(|d| format!("{} {} (document {} of {})", d.kind, d.name, d.index + 1, d.original.display()))
        .collect();
    if all_checks && !unread.is_empty() {
        bail!(
            "checkov returned no result for {} of {documents} documents, of kinds it has checks for; it could not \
             read them (a Go template or YAML that PyYAML rejects?):\n  {}",
            unread.len(),
            unread.join("\n  ")
        );
    }
    // Findings name the original file and document, not the copy.
    for finding in &mut findings {
        if let Some(d) = all.iter().find(|d| Path::new(&finding.file) == d.copy) {
            finding.file = format!("{} (document {})", d.original.display(), d.index + 1);
        }
    }
    Ok((total.checks, findings))
}

/// The documents of `file` other than CustomResourceDefinitions, each
/// written as it is (not re-serialised: checkov must read what Flux applies)
/// to a file of its own in `dir`.
fn split(file: &Path, dir: &Path) -> Result<Vec<Document>> {
    let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    fs::create_dir_all(dir)?;
    let mut documents = Vec::new();
    for (index, source) in raw_documents(&text).into_iter().enumerate() {
        let value: serde_json::Value = serde_norway::from_str(&source)
            .with_context(|| format!("document {} of {} is not YAML", index + 1, file.display()))?;
        let Some(kind) = value["kind"].as_str() else { continue };
        if kind == "CustomResourceDefinition" {
            continue;
        }
        let copy = dir.join(format!("{index}.yaml"));
        fs::write(&copy, &source)?;
        let name = value["metadata"]["name"].as_str().unwrap_or("?").to_string();
        documents.push(Document { copy, original: file.to_path_buf(), index, kind: kind.to_string(), name });
    }
    Ok(documents)
}

/// The text of each document of a multi-document YAML stream, split at its
/// `---` lines (a block scalar's lines are indented, so none is one).
fn raw_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().expect("never empty");
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.retain(|d| !d.trim().is_empty());
    documents
}

/// Two runs side by side with about half of the documents each, whole files
/// to a run.
fn halves(per_file: &[Vec<Document>], documents: usize) -> Vec<&[Vec<Document>]> {
    let mut counted = 0;
    let split_at = per_file
        .iter()
        .position(|f| {
            counted += f.len();
            counted * 2 >= documents
        })
        .map_or(per_file.len(), |i| i + 1);
    let (first, second) = per_file.split_at(split_at);
    [first, second].into_iter().filter(|run| run.iter().any(|f| !f.is_empty())).collect()
}

/// What one checkov run reports: checks passed + failed, and the files
/// they were about (`file_abs_path`: its `file_path` is relative to the
/// working directory).
#[derive(Default)]
struct Scanned {
    checks: usize,
    files: std::collections::BTreeSet<String>,
}

fn run(dir: &Path, command: &mut Command) -> Result<(Scanned, Vec<Finding>)> {
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
fn parse(json: &str) -> Result<(Scanned, Vec<Finding>)> {
    let mut scanned = Scanned::default();
    let mut findings = Vec::new();
    for doc in serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>() {
        let doc = doc.context("checkov printed something other than JSON")?;
        let reports = match doc {
            serde_json::Value::Array(reports) => reports,
            report => vec![report],
        };
        for report in reports {
            let summary = &report["summary"];
            let count = |key: &str| summary[key].as_u64().unwrap_or(0) as usize;
            scanned.checks += count("passed") + count("failed");
            let results = &report["results"];
            for result in ["passed_checks", "failed_checks"].iter().filter_map(|k| results[*k].as_array()).flatten() {
                scanned.files.extend(result["file_abs_path"].as_str().map(str::to_string));
            }
            for failed in results["failed_checks"].as_array().into_iter().flatten() {
                let text = |key: &str| failed[key].as_str().unwrap_or("?").to_string();
                findings.push(Finding {
                    id: text("check_id"),
                    name: text("check_name"),
                    file: text("file_abs_path"),
                    resource: text("resource"),
                });
            }
        }
    }
    Ok((scanned, findings))
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
    fn documents_are_split_as_written_and_crds_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.b}\n";
        let config =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  t: |\n    ---\n    {{ .Values.x }}\n";
        fs::write(
            &file,
            format!("---\n{crd}---\n# only a comment\n---\n{config}--- \nkind: Role\nmetadata: {{name: r}}\n"),
        )
        .unwrap();
        let documents = split(&file, &dir.path().join("copies")).unwrap();
        let found: Vec<(&str, &str, usize)> =
            documents.iter().map(|d| (d.kind.as_str(), d.name.as_str(), d.index)).collect();
        assert_eq!(found, [("ConfigMap", "c", 2), ("Role", "r", 3)]);
        assert_eq!(fs::read_to_string(&documents[0].copy).unwrap(), config);
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: n\n\
        spec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: i:1\n";

    #[test]
    #[ignore = "needs checkov and helm from `make tools`; `make test` runs it"]
    fn a_document_checkov_cannot_read_fails_the_scan_and_spares_its_neighbours() {
        let project = Project::discover().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A Go template in one document made checkov drop the whole file.
        let template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndata: {t: '{{ .Values.x }}'}\n";
        fs::write(dir.path().join("a.yaml"), format!("{template}---\n{DEPLOYMENT}")).unwrap();
        let (checks, findings) = scan(&project, dir.path(), KUBERNETES, None).unwrap();
        assert!(checks > 10 && findings.iter().any(|f| f.resource == "Deployment.n.d"), "{checks} {findings:?}");

        let unreadable = DEPLOYMENT.replace("  name: d\n", "  name: d\n  annotations: {a: '{{ .Release.Name }}'}\n");
        fs::write(dir.path().join("b.yaml"), unreadable).unwrap();
        let error = scan(&project, dir.path(), KUBERNETES, None).unwrap_err().to_string();
        assert!(
            error.contains("checkov returned no result for 1 of 3 documents") && error.contains("Deployment d"),
            "{error}"
        );
    }

    #[test]
    fn parses_lists_objects_and_bare_summaries() {
        let json = r#"{"check_type":"terraform","results":{"failed_checks":[{"check_id":"CKV_1","check_name":"n","file_path":"/main.tf","file_abs_path":"/work/infra/main.tf","resource":"aws_x.y"}]},"summary":{"passed":2,"failed":1}}
[{"check_type":"helm","results":{"failed_checks":[]},"summary":{"passed":4,"failed":0}}]
{"passed":0,"failed":0,"skipped":0,"parsing_errors":0}"#;
        let (scanned, findings) = parse(json).unwrap();
        assert_eq!(scanned.checks, 7);
        assert_eq!(scanned.files.iter().collect::<Vec<_>>(), ["/work/infra/main.tf"]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].resource, "aws_x.y");
    }
}

//! `cargo xtask policy report`: renders the environments as `verify` does,
//! applies every policy and writes the compliance report (compliance.rs);
//! `--fixtures` writes it for the policies' own test resources
//! (`deploy/policies/*/.kyverno-test/`), which fail on purpose.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{compliance::write, kyverno, rules};
use crate::project::Project;
use crate::tools;

/// `cargo xtask policy report [--fixtures]`.
pub fn run(project: &Project, fixtures: bool) -> Result<()> {
    let kyverno_cli = tools::locate(project, "kyverno")?;
    let policies = project.root.join("deploy/policies");
    let dir = project.cache.join("verify/report");
    let (manifests, dir, title) = if fixtures {
        let dir = dir.join("fixtures");
        (fixture_manifests(&policies, &dir.join("resources"))?, dir, "Compliance report: policy test fixtures")
    } else {
        (super::render_environments(project)?, dir, "Compliance report")
    };
    let (outcome, environments) = kyverno::apply(&kyverno_cli, &policies, &manifests)?;
    let state = if outcome.failures.is_empty() { "ok" } else { "FAIL" };
    let name = if fixtures { "kyverno apply (fixtures)" } else { "kyverno apply" };
    println!("{name:<24} {state:<4} {:>5} results", outcome.checked);
    write(&dir, title, &environments)?;
    let md = dir.join("compliance.md");
    if fixtures {
        // The fixtures violate the policies on purpose: no failure at all
        // would mean the policies no longer reject anything.
        if outcome.failures.is_empty() {
            bail!("the policies' failing test resources produced no failure; see {}", md.display());
        }
        println!("{} finding(s) over the fixtures, as expected: {}", outcome.failures.len(), md.display());
        return Ok(());
    }
    for failure in &outcome.failures {
        println!("    {failure}");
    }
    if !outcome.failures.is_empty() {
        bail!("policy report: {} violation(s) in the environments; see {}", outcome.failures.len(), md.display());
    }
    println!("{}", md.display());
    Ok(())
}

/// One "environment" per policy test folder, `fixtures/<policy>`: its
/// resources, plus the objects its context and values files give the CLI
/// (lookups and namespaces), gathered in one file under `out`.
fn fixture_manifests(policies: &Path, out: &Path) -> Result<Vec<(String, PathBuf)>> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut manifests = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(policies)?
        .filter_map(|e| e.ok().map(|e| e.path().join(".kyverno-test")))
        .filter(|d| d.join("kyverno-test.yaml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let policy = dir.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy().into_owned();
        let test: Value = rules::documents(&dir.join("kyverno-test.yaml"))?.into_iter().next().unwrap_or_default();
        let mut docs = Vec::new();
        for resource in test["resources"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            docs.extend(rules::documents(&dir.join(resource))?);
        }
        for (key, field) in [("context", "/spec/resources"), ("variables", "/namespaces")] {
            if let Some(file) = test[key].as_str() {
                for doc in rules::documents(&dir.join(file))? {
                    docs.extend(doc.pointer(field).and_then(Value::as_array).cloned().unwrap_or_default());
                }
            }
        }
        let mut text = String::new();
        for doc in docs {
            text.push_str("---\n");
            text.push_str(&serde_norway::to_string(&doc)?);
        }
        let file = out.join(format!("{policy}.yaml"));
        fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        manifests.push((format!("fixtures/{policy}"), file));
    }
    if manifests.is_empty() {
        bail!("{}: no policy folder has a .kyverno-test/kyverno-test.yaml", policies.display());
    }
    Ok(manifests)
}

//! OpenTofu's own checks over `infra/`: `tofu fmt -check`, then `tofu init`,
//! `tofu validate` and (where a module has tests) `tofu test` of every
//! module and environment.
//!
//! Providers come from a filesystem mirror (`<cache>/tofu-providers`) by
//! default: these machines reach no provider registry, and the module proxy
//! refuses the providers' source modules. A folder whose providers or
//! registry modules cannot be installed fails, unless `infra/unvalidated.yaml`
//! names it with a reason; those are printed, with OpenTofu's own reason,
//! on every run and never counted as checked. With
//! `TOFU_PROVIDERS=registry` (GitHub CI, which has the network) providers and
//! modules come from the registries and any failure is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Outcome, Report};
use crate::cmd;
use crate::project::Project;
use crate::tools;

/// What `tofu init` printing one of these means: a provider or module could
/// not be fetched, not that the configuration is wrong.
const UNAVAILABLE: &[&str] = &[
    "Failed to query available provider packages",
    "Failed to install provider",
    "Failed to resolve provider packages",
    "Failed to download module",
    "Failed to retrieve available versions for module",
    "Module not installed",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Providers {
    /// Only the filesystem mirror; what cannot be installed is reported unvalidated.
    Mirror,
    /// The registries (needs the network); nothing may be left unvalidated.
    Registry,
}

fn providers() -> Result<Providers> {
    match std::env::var("TOFU_PROVIDERS").ok().as_deref() {
        None | Some("") | Some("mirror") => Ok(Providers::Mirror),
        Some("registry") => Ok(Providers::Registry),
        Some(other) => bail!("TOFU_PROVIDERS={other}: expected `mirror` (default) or `registry`"),
    }
}

pub enum Validation {
    /// Valid; the number of `tofu test` runs that passed.
    Valid(usize),
    /// Not validated, with OpenTofu's reason.
    Unavailable(String),
    Invalid(Vec<String>),
}

/// Folders allowed to stay unvalidated without a provider registry, and why.
pub const UNVALIDATED_FILE: &str = "infra/unvalidated.yaml";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Unvalidated {
    folders: Vec<AllowedFolder>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedFolder {
    path: String,
    reason: String,
}

fn allowed_unvalidated(project: &Project) -> Result<Vec<AllowedFolder>> {
    let path = project.root.join(UNVALIDATED_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: Unvalidated =
        serde_norway::from_str(&text).with_context(|| format!("{UNVALIDATED_FILE} is malformed"))?;
    if let Some(short) = file.folders.iter().find(|f| f.reason.trim().len() < 20) {
        bail!("{UNVALIDATED_FILE}: {} needs a reason a reviewer can judge", short.path);
    }
    Ok(file.folders)
}

/// The `verify` lines: formatting, then validation of each folder. A folder
/// that cannot be validated (providers unavailable) fails unless
/// `UNVALIDATED_FILE` names it; the allowed ones are printed every run.
pub fn report(project: &Project, report: &mut Report) {
    let infra = project.root.join("infra");
    report.line("tofu fmt", "files", tofu(project).and_then(|t| fmt_check(&t, &infra)));
    let mut test_runs = 0;
    let mut allowed_notes = Vec::new();
    let outcome = tofu(project).and_then(|t| {
        let allowed = if providers()? == Providers::Registry { Vec::new() } else { allowed_unvalidated(project)? };
        let mut outcome = Outcome::default();
        let mut used = vec![false; allowed.len()];
        for root in roots(&infra)? {
            let rel = project.rel(&root).display().to_string();
            let listed = allowed.iter().position(|a| a.path == rel);
            match validate(project, &t, &root)? {
                Validation::Valid(runs) => {
                    outcome.checked += 1;
                    test_runs += runs;
                    if listed.is_some() {
                        outcome.failures.push(format!("{rel} validates now: remove it from {UNVALIDATED_FILE}"));
                    }
                }
                Validation::Unavailable(why) => match listed {
                    Some(i) => {
                        used[i] = true;
                        allowed_notes.push(format!("{rel}: {} (OpenTofu: {why})", allowed[i].reason));
                    }
                    None => outcome.failures.push(format!(
                        "{rel}: not validated: {why}; make its providers installable, or list it in \
                         {UNVALIDATED_FILE} with a reason"
                    )),
                },
                Validation::Invalid(errors) => {
                    outcome.failures.extend(errors.into_iter().map(|e| format!("{rel}: {e}")))
                }
            }
        }
        for (folder, used) in allowed.iter().zip(used) {
            if !used && !outcome.failures.iter().any(|f| f.starts_with(&folder.path)) {
                outcome
                    .failures
                    .push(format!("{UNVALIDATED_FILE}: {} is not a folder of infra/; remove it", folder.path));
            }
        }
        Ok(outcome)
    });
    let unit = format!("folders (+{} allowed unvalidated)", allowed_notes.len());
    report.line("tofu validate/test", &unit, outcome);
    println!("    tofu test: {test_runs} run(s) passed");
    for note in allowed_notes {
        println!("    NOT VALIDATED (allowed by {UNVALIDATED_FILE}) {note}");
    }
}

fn tofu(project: &Project) -> Result<PathBuf> {
    tools::locate(project, "tofu")
}

/// `tofu fmt -check` of a folder (recursively) or one file.
pub fn fmt_check(tofu: &Path, target: &Path) -> Result<Outcome> {
    let checked = if target.is_dir() {
        walkdir::WalkDir::new(target)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && is_tofu_file(e.path()))
            .count()
    } else {
        1
    };
    let output = cmd::capture(
        Command::new(tofu)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .args(["fmt", "-check", "-recursive", "-no-color"])
            .arg(target),
    )?;
    let mut outcome = Outcome { checked, failures: Vec::new() };
    if !output.status.success() {
        let files: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect();
        let detail = if files.is_empty() { cmd::tail(&output.stderr, &output.stdout, 10) } else { files.join(", ") };
        outcome.failures.push(format!("not formatted (run `tofu fmt -recursive infra`): {detail}"));
    }
    Ok(outcome)
}

fn is_tofu_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".tf") || name.ends_with(".tftest.hcl") || name.ends_with(".tfvars")
}

/// Every folder under `infra/` that holds `.tf` files (modules and environments).
pub fn roots(infra: &Path) -> Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    for entry in walkdir::WalkDir::new(infra).sort_by_file_name() {
        let entry = entry?;
        let skip = entry.path().components().any(|c| c.as_os_str() == ".terraform");
        if !skip && entry.file_type().is_dir() && has_tf(entry.path())? {
            roots.push(entry.into_path());
        }
    }
    if roots.is_empty() {
        bail!("no OpenTofu configuration under {}", infra.display());
    }
    Ok(roots)
}

fn has_tf(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir)? {
        if entry?.path().extension().is_some_and(|e| e == "tf") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `tofu init -backend=false`, `tofu validate` and, if the folder has a
/// `tests/` folder, `tofu test`. Working files go to the cache, not the checkout.
pub fn validate(project: &Project, tofu: &Path, dir: &Path) -> Result<Validation> {
    let mode = providers()?;
    let work = project.cache.join("verify/tofu").join(flat(project.rel(dir)));
    fs::create_dir_all(&work)?;
    let config = work.join("tofurc");
    let mirror = project.cache.join("tofu-providers");
    fs::create_dir_all(&mirror)?;
    fs::write(&config, cli_config(mode, &mirror))?;
    let run = |args: &[&str]| {
        cmd::capture(
            Command::new(tofu)
                .current_dir(dir)
                .env("TF_CLI_CONFIG_FILE", &config)
                .env("TF_DATA_DIR", work.join("data"))
                .env("TF_PLUGIN_CACHE_DIR", "")
                .env("TF_IN_AUTOMATION", "1")
                .args(args),
        )
    };
    let init = run(&["init", "-backend=false", "-input=false", "-no-color"])?;
    if !init.status.success() {
        let text = String::from_utf8_lossy(&init.stderr).into_owned();
        if mode == Providers::Mirror && UNAVAILABLE.iter().any(|m| text.contains(m)) {
            return Ok(Validation::Unavailable(first_error(&text)));
        }
        return Ok(Validation::Invalid(vec![format!("tofu init: {}", cmd::tail(&init.stderr, &init.stdout, 15))]));
    }
    let validate = run(&["validate", "-no-color"])?;
    if !validate.status.success() {
        return Ok(Validation::Invalid(vec![format!(
            "tofu validate: {}",
            cmd::tail(&validate.stderr, &validate.stdout, 15)
        )]));
    }
    if !dir.join("tests").is_dir() {
        return Ok(Validation::Valid(0));
    }
    let test = run(&["test", "-no-color"])?;
    let stdout = String::from_utf8_lossy(&test.stdout);
    if !test.status.success() {
        return Ok(Validation::Invalid(vec![format!("tofu test: {}", cmd::tail(&test.stderr, &test.stdout, 20))]));
    }
    Ok(Validation::Valid(
        stdout.lines().filter(|l| l.trim_start().starts_with("run \"") && l.ends_with("pass")).count(),
    ))
}

fn cli_config(mode: Providers, mirror: &Path) -> String {
    match mode {
        Providers::Mirror => format!(
            "# Written by cargo xtask verify: providers only from the local mirror.\n\
             provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            mirror.display()
        ),
        Providers::Registry => "# Written by cargo xtask verify: providers from the registry.\n\
             provider_installation {\n  direct {}\n}\n"
            .to_string(),
    }
}

/// The first `Error:` paragraph of OpenTofu's output, on one line.
fn first_error(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_start_matches(['│', '╷', '╵', ' '])).collect();
    let start = lines.iter().position(|l| l.starts_with("Error:")).unwrap_or(0);
    let paragraph: Vec<&str> =
        lines[start..].iter().take(10).copied().filter(|l| !l.trim().is_empty()).take(6).collect();
    let line = paragraph.join(" ");
    match line.char_indices().nth(320) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

fn flat(rel: &Path) -> String {
    rel.to_string_lossy().replace('/', "__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_keeps_the_reason_on_one_line() {
        let text = "\nInitializing...\n╷\n│ Error: Failed to query available provider packages\n│ \n│ Could not retrieve the list of available versions for provider tehcyx/kind\n╵\n";
        let line = first_error(text);
        assert!(line.starts_with("Error: Failed to query available provider packages"), "{line}");
        assert!(line.contains("tehcyx/kind"), "{line}");
    }

    #[test]
    fn mirror_config_names_only_the_mirror() {
        let config = cli_config(Providers::Mirror, Path::new("/cache/tofu-providers"));
        assert!(config.contains("filesystem_mirror") && !config.contains("direct"), "{config}");
    }
}

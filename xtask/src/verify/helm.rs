//! Helm charts of this repository: `helm lint --strict` with every values
//! file, and `helm template` for each environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::{Outcome, Validators};
use crate::cmd;
use crate::project::KUBERNETES_VERSION;

pub struct Chart {
    pub dir: PathBuf,
    pub name: String,
    /// `values-<env>.yaml` files, by environment.
    pub environments: Vec<(String, PathBuf)>,
}

/// Every chart of the repository (each folder with a `Chart.yaml`, outside
/// build and tool folders): all are linted; those with `values-<env>.yaml`
/// files are also rendered per environment.
pub fn charts(root: &Path) -> Result<Vec<Chart>> {
    let mut charts = Vec::new();
    let walker = walkdir::WalkDir::new(root).into_iter().filter_entry(|e| {
        !(e.file_type().is_dir() && super::files::SKIPPED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
    });
    for entry in walker {
        let entry = entry?;
        if entry.file_name() != "Chart.yaml" {
            continue;
        }
        let dir = entry.path().parent().expect("a file has a folder").to_path_buf();
        let mut environments = Vec::new();
        for file in fs::read_dir(&dir)? {
            let path = file?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if let Some(env) = name.strip_prefix("values-").and_then(|n| n.strip_suffix(".yaml")) {
                environments.push((env.to_string(), path));
            }
        }
        environments.sort();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        charts.push(Chart { dir, name, environments });
    }
    charts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(charts)
}

/// `helm lint --strict` alone and with each environment's values.
pub fn lint(v: &Validators, chart: &Chart) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let runs = std::iter::once(None).chain(chart.environments.iter().map(|(_, f)| Some(f.as_path())));
    for values in runs {
        outcome.checked += 1;
        if let Err(failure) = lint_with(v, &chart.dir, values)? {
            outcome.failures.push(failure);
        }
    }
    Ok(outcome)
}

/// Ok(Err(message)) when helm rejects the chart with these values.
pub fn lint_with(v: &Validators, chart: &Path, values: Option<&Path>) -> Result<Result<(), String>> {
    let mut lint = Command::new(&v.helm);
    lint.args(["lint", "--strict", "--kube-version", KUBERNETES_VERSION]).arg(chart);
    if let Some(values) = values {
        lint.arg("--values").arg(values);
    }
    let output = cmd::capture(&mut lint)?;
    if output.status.success() {
        return Ok(Ok(()));
    }
    let with = values.map(|f| format!(" with {}", f.display())).unwrap_or_default();
    // The findings are helm's `[ERROR]`/`[WARNING]` lines on stdout; stderr
    // only says how many charts failed.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let findings: Vec<&str> =
        stdout.lines().map(str::trim).filter(|l| l.starts_with("[ERROR]") || l.starts_with("[WARNING]")).collect();
    let why = if findings.is_empty() { cmd::tail(&output.stderr, &output.stdout, 15) } else { findings.join("; ") };
    Ok(Err(format!("helm lint {}{with}: {why}", chart.display())))
}

/// Renders a chart the way `helm install` would, into `out`.
pub fn template(
    v: &Validators,
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &[PathBuf],
    with_tests: bool,
    out: &Path,
) -> Result<()> {
    let mut template = Command::new(&v.helm);
    template.args(["template", release]).arg(chart).args([
        "--namespace",
        namespace,
        "--kube-version",
        KUBERNETES_VERSION,
    ]);
    if !with_tests {
        template.arg("--skip-tests");
    }
    for file in values {
        template.arg("--values").arg(file);
    }
    let output = cmd::run(&mut template).with_context(|| format!("rendering {} failed", chart.display()))?;
    fs::write(out, &output.stdout)?;
    Ok(())
}

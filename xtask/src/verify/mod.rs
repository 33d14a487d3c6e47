//! `cargo xtask verify`: every manifest, kustomization and workflow in the
//! repository through the real upstream validators, then the negative
//! fixtures to prove those validators still reject bad input.

mod actionlint;
mod files;
mod fixtures;
mod kubeconform;
mod kubectl_validate;
mod yamllint;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::project::Project;
use crate::schemas::{self, crd::CrdSchemas};
use crate::tools;

/// What one check found.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Documents or files looked at.
    pub checked: usize,
    pub failures: Vec<String>,
}

impl Outcome {
    /// For linters that print one finding per line on stdout.
    fn from_lines(tool: &str, checked: usize, output: &std::process::Output) -> Self {
        let mut failures: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if !output.status.success() && failures.is_empty() {
            failures.push(format!("{tool} failed: {}", cmd::tail(&output.stderr, &output.stdout, 10)));
        }
        Self { checked, failures }
    }
}

/// Resolved tool paths and schemas, shared by every check.
pub struct Validators {
    pub kubeconform: PathBuf,
    pub kubectl_validate: PathBuf,
    pub yamllint: PathBuf,
    pub yamllint_config: PathBuf,
    pub actionlint: PathBuf,
    pub shellcheck: PathBuf,
    pub k8s_schemas: PathBuf,
    pub crds: Option<CrdSchemas>,
}

impl Validators {
    pub fn new(project: &Project) -> Result<Self> {
        let crds = match &project.crd_dir {
            Some(dir) => Some(schemas::crd::ensure(project, dir)?),
            None => {
                eprintln!("warning: CRD_DIR is not set; every custom resource will fail verification");
                None
            }
        };
        Ok(Self {
            kubeconform: tools::locate(project, "kubeconform")?,
            kubectl_validate: tools::locate(project, "kubectl-validate")?,
            yamllint: tools::locate(project, "yamllint")?,
            yamllint_config: project.root.join(".yamllint.yaml"),
            actionlint: tools::locate(project, "actionlint")?,
            shellcheck: tools::locate(project, "shellcheck")?,
            k8s_schemas: schemas::k8s::ensure(project)?,
            crds,
        })
    }
}

pub fn run(project: &Project) -> Result<()> {
    let v = Validators::new(project)?;
    if let Some(crds) = &v.crds {
        println!("{:<20} {:<4} {:>5} CRD files from CRD_DIR", "custom resources", "", crds.crd_count);
    }
    let yaml = files::yaml_files(&project.root)?;
    let set = files::manifests(&project.root, &yaml)?;
    let rendered = render_kustomizations(project, &set.kustomizations)?;
    let mut manifests = set.files.clone();
    manifests.extend(rendered);
    let workflows = files::workflows(&project.root)?;

    let mut failed = 0;
    let mut report = |name: &str, unit: &str, outcome: Result<Outcome>| {
        let outcome = outcome.unwrap_or_else(|err| Outcome { checked: 0, failures: vec![format!("{err:#}")] });
        let state = if outcome.failures.is_empty() { "ok" } else { "FAIL" };
        println!("{name:<20} {state:<4} {:>5} {unit}", outcome.checked);
        for failure in &outcome.failures {
            println!("    {failure}");
        }
        failed += outcome.failures.len();
    };
    report("yamllint", "files", yamllint::check(&v, &yaml));
    println!(
        "{:<20} {:<4} {:>5} files, {} kustomizations",
        "manifests found",
        "",
        set.files.len(),
        set.kustomizations.len()
    );
    report("kubeconform", "documents", kubeconform::check(&v, &manifests));
    report("kubectl-validate", "documents", kubectl_validate::check(&v, &manifests));
    report("actionlint", "workflows", actionlint::check(&v, &workflows));
    report("fixtures (valid)", "files accepted", fixtures::check_valid(project, &v));
    report("fixtures (invalid)", "files rejected", fixtures::check_invalid(project, &v));

    if failed > 0 {
        bail!("verify: {failed} failure(s) above");
    }
    Ok(())
}

/// `kubectl kustomize` each root into the cache; returns the rendered files.
fn render_kustomizations(project: &Project, roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let out_dir = project.cache.join("verify/kustomize");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;
    let mut rendered = Vec::new();
    for root in roots {
        let output = cmd::run(Command::new("kubectl").arg("kustomize").arg(root))
            .with_context(|| format!("kustomization {} does not build", project.rel(root).display()))?;
        let file = out_dir.join(format!("{}.yaml", flat_name(project.rel(root))));
        fs::write(&file, &output.stdout)?;
        rendered.push(file);
    }
    Ok(rendered)
}

fn flat_name(rel: &Path) -> String {
    rel.to_string_lossy().replace('/', "__")
}

//! Fixtures that keep the validators honest: a validator is trusted only while
//! it accepts `tests/fixtures/valid/` and rejects each file of
//! `tests/fixtures/invalid/` that it is meant to catch.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{
    Outcome, Validators, action_pins, actionlint, checkov, dashboards, helm, istio, kubeconform, kubectl_validate,
    mesh, otelcol, promtool, rules, secrets, tofu, yamllint,
};
use crate::project::Project;

#[derive(Clone, Copy, Debug)]
enum Validator {
    Yamllint,
    Kubeconform,
    KubectlValidate,
    Actionlint,
    /// `helm lint --strict` of charts/demo-app with the fixture as values.
    HelmValues,
    PlatformRules,
    Otelcol,
    Secrets,
    Promtool,
    /// Grafana dashboard JSON and the PromQL of its panels (dashboards.rs).
    Dashboards,
    /// `jaeger validate` of a Jaeger HelmRelease's userconfig.
    JaegerValidate,
    /// `promtool check rules` on the spec of each PrometheusRule in the file.
    PrometheusRule,
    /// `istioctl analyze --use-kube=false` of the file alone.
    IstioAnalyze,
    /// The mesh invariants of `mesh.rs` (weights, subsets, mTLS, header
    /// route order, no call beyond docs/mesh-access.md).
    MeshInvariants,
    /// `tofu fmt -check` of the file.
    TofuFmt,
    /// `tofu init` + `tofu validate` of the file as a module of its own.
    TofuValidate,
    /// Every `uses:` pinned by commit SHA with its version (action_pins.rs).
    ActionPins,
    /// checkov (offline) on the file, with no skips.
    Checkov,
}

/// Each invalid fixture, and every validator that must reject it.
const INVALID: &[(&str, &[Validator])] = &[
    ("deployment-wrong-type.yaml", &[Validator::Kubeconform, Validator::KubectlValidate]),
    ("deployment-unknown-field.yaml", &[Validator::Kubeconform, Validator::KubectlValidate]),
    ("helmrelease-bad-field.yaml", &[Validator::Kubeconform, Validator::KubectlValidate]),
    ("duplicate-key.yaml", &[Validator::Yamllint]),
    ("workflow-broken.yml", &[Validator::Actionlint]),
    ("deployment-without-limits.yaml", &[Validator::PlatformRules]),
    ("values-wrong-type.yaml", &[Validator::HelmValues]),
    ("values-unknown-key.yaml", &[Validator::HelmValues]),
    ("otelcol-undefined-exporter.yaml", &[Validator::Otelcol]),
    ("secret-plaintext.yaml", &[Validator::Secrets]),
    ("rules-bad-promql.rules.yaml", &[Validator::Promtool]),
    ("rules-alert-without-runbook.rules.yaml", &[Validator::Promtool]),
    ("dashboard-bad-query.json", &[Validator::Dashboards]),
    ("jaeger-helmrelease-bad-config.yaml", &[Validator::JaegerValidate]),
    ("prometheusrule-bad-promql.yaml", &[Validator::PrometheusRule]),
    ("mesh-unknown-subset.yaml", &[Validator::IstioAnalyze, Validator::MeshInvariants]),
    ("mesh-weights-not-100.yaml", &[Validator::MeshInvariants]),
    ("mesh-plaintext-destinationrule.yaml", &[Validator::MeshInvariants]),
    ("mesh-header-route-after-weighted.yaml", &[Validator::MeshInvariants]),
    ("mesh-undocumented-caller.yaml", &[Validator::MeshInvariants]),
    ("tofu-unformatted.tf", &[Validator::TofuFmt]),
    ("tofu-undefined-reference.tf", &[Validator::TofuValidate]),
    ("workflow-unpinned-action.yml", &[Validator::ActionPins]),
    ("checkov-privileged-container.yaml", &[Validator::Checkov]),
];

/// The chart whose values.schema.json the values fixtures exercise.
const FIXTURE_CHART: &str = "charts/demo-app";

fn run_one(project: &Project, v: &Validators, validator: Validator, file: &Path) -> Result<Outcome> {
    let files = [file.to_path_buf()];
    match validator {
        Validator::HelmValues => {
            let chart = project.root.join(FIXTURE_CHART);
            let failures = helm::lint_with(v, &chart, Some(file))?.err().into_iter().collect();
            Ok(Outcome { checked: 1, failures })
        }
        Validator::PlatformRules => rules::check(&files),
        Validator::Secrets => secrets::check(file, false),
        Validator::Promtool => promtool::check_rules(v, &project.root, &files),
        Validator::Dashboards => dashboards::check_files(v, &files, &project.cache.join("verify/fixture-dashboards")),
        Validator::JaegerValidate => {
            let configs = otelcol::jaeger_configs(&[("fixture".to_string(), file.to_path_buf())])?;
            let jaeger = crate::tools::locate(project, "jaeger")?;
            otelcol::check_jaeger(&jaeger, &configs, &project.cache.join("verify/fixture-jaeger"))
        }
        Validator::PrometheusRule => {
            let rendered = [("fixture".to_string(), file.to_path_buf())];
            promtool::check_rendered(v, &rendered, &project.cache.join("verify/fixture-prometheusrules"))
        }
        Validator::Otelcol => Ok(Outcome { checked: 1, failures: otelcol::validate(v, &files)?.into_iter().collect() }),
        Validator::Yamllint => yamllint::check(v, &files),
        Validator::Kubeconform => kubeconform::check(v, &files),
        Validator::KubectlValidate => kubectl_validate::check(v, &files),
        Validator::Actionlint => actionlint::check(v, &files),
        Validator::IstioAnalyze => {
            let istioctl = crate::tools::locate(project, "istioctl")?;
            let failures = istio::analyze(&istioctl, &files, None)?
                .iter()
                .map(|m| format!("{} {}", m["code"].as_str().unwrap_or("?"), m["message"].as_str().unwrap_or("?")))
                .collect();
            Ok(Outcome { checked: 1, failures })
        }
        Validator::MeshInvariants => mesh::check_file(project, file),
        Validator::TofuFmt => tofu::fmt_check(&crate::tools::locate(project, "tofu")?, file),
        Validator::TofuValidate => validate_tofu_fixture(project, file),
        Validator::ActionPins => action_pins::check(&files),
        Validator::Checkov => {
            let (checked, findings) = checkov::scan(project, file, "kubernetes")?;
            Ok(Outcome { checked, failures: findings.iter().map(|f| format!("{} {}", f.id, f.resource)).collect() })
        }
    }
}

/// A `.tf` fixture becomes the only file of a module folder, so that
/// `tofu validate` sees exactly it.
fn validate_tofu_fixture(project: &Project, file: &Path) -> Result<Outcome> {
    let dir = project.cache.join("verify/fixtures").join(file.file_stem().unwrap_or_default());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    fs::copy(file, dir.join("main.tf"))?;
    let tofu = crate::tools::locate(project, "tofu")?;
    match tofu::validate(project, &tofu, &dir)? {
        tofu::Validation::Valid(_) => Ok(Outcome { checked: 1, failures: Vec::new() }),
        tofu::Validation::Invalid(failures) => Ok(Outcome { checked: 1, failures }),
        tofu::Validation::Unavailable(why) => bail!("{} could not be validated: {why}", file.display()),
    }
}

fn listed(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

/// Every valid fixture passes every validator that applies to it.
pub fn check_valid(project: &Project, v: &Validators) -> Result<Outcome> {
    let dir = project.root.join("tests/fixtures/valid");
    let mut outcome = Outcome::default();
    for file in listed(&dir)? {
        let validators: &[Validator] = if file.to_string_lossy().contains("workflow") {
            &[Validator::Yamllint, Validator::Actionlint]
        } else {
            &[Validator::Yamllint, Validator::Kubeconform, Validator::KubectlValidate, Validator::PlatformRules]
        };
        for &validator in validators {
            let result = run_one(project, v, validator, &file)?;
            for failure in result.failures {
                outcome.failures.push(format!("{validator:?} rejected a valid fixture: {failure}"));
            }
        }
        outcome.checked += 1;
    }
    if outcome.checked == 0 {
        bail!("no valid fixtures in {}", dir.display());
    }
    Ok(outcome)
}

/// Every invalid fixture is rejected by each validator meant to catch it, and
/// no fixture sits in the folder without an expectation.
pub fn check_invalid(project: &Project, v: &Validators) -> Result<Outcome> {
    let dir = project.root.join("tests/fixtures/invalid");
    let mut outcome = Outcome::default();
    for file in listed(&dir)? {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, validators)) = INVALID.iter().find(|(n, _)| *n == name) else {
            outcome.failures.push(format!("{name}: no expectation in xtask/src/verify/fixtures.rs"));
            continue;
        };
        for &validator in *validators {
            let result = run_one(project, v, validator, &file)?;
            if result.failures.is_empty() {
                outcome.failures.push(format!("{validator:?} accepted invalid fixture {name}"));
            } else if let Some(wrong) = result.failures.iter().find(|f| is_missing_schema(f)) {
                // Rejected, but for lack of a schema: that proves nothing.
                outcome.failures.push(format!("{validator:?} could not check {name}: {wrong}"));
            }
        }
        outcome.checked += 1;
    }
    for (name, _) in INVALID {
        if !dir.join(name).is_file() {
            outcome.failures.push(format!("{name}: expected in {} but missing", dir.display()));
        }
    }
    Ok(outcome)
}

fn is_missing_schema(failure: &str) -> bool {
    ["could not find schema", "schema missing", "failed to retrieve validator"].iter().any(|m| failure.contains(m))
}

//! Fixtures that keep the validators honest: a validator is trusted only while
//! it accepts `tests/fixtures/valid/` and rejects each file of
//! `tests/fixtures/invalid/` that it is meant to catch, for the reason the
//! fixture is about. Each invalid fixture holds one defect; every finding a
//! validator reports on it must name that defect, so a fixture rejected for
//! another reason (a second, accidental defect; a missing schema; a crash)
//! fails verify.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{
    Outcome, Validators, actionlint, checkov, dashboards, files, helm, istio, kubeconform, kubectl_validate, kyverno,
    mesh, otelcol, promtool, rules, secrets, tofu, yamllint, zizmor,
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
    /// zizmor's security audits of a workflow (zizmor.rs).
    Zizmor,
    /// One checkov check (offline) on the file, with no skips.
    Checkov(&'static str),
    /// Manifest discovery (files.rs): is every document a Kubernetes object.
    Manifests,
    /// `kyverno apply` of deploy/policies to the file.
    KyvernoPolicies,
}

/// Each invalid fixture, every validator that must reject it, and the reason
/// (a substring every one of that validator's findings must contain).
const INVALID: &[(&str, &[(Validator, &str)])] = &[
    (
        "deployment-wrong-type.yaml",
        &[
            (Validator::Kubeconform, "/spec/replicas"),
            (Validator::KubectlValidate, "spec.replicas in body must be of type integer"),
        ],
    ),
    (
        "deployment-unknown-field.yaml",
        &[(Validator::Kubeconform, "imagePullPolicyy"), (Validator::KubectlValidate, "imagePullPolicyy")],
    ),
    ("helmrelease-bad-enum.yaml", &[(Validator::Kubeconform, "GitRepo"), (Validator::KubectlValidate, "GitRepo")]),
    (
        "helmrelease-unknown-field.yaml",
        &[(Validator::Kubeconform, "upgradeStrategy"), (Validator::KubectlValidate, "upgradeStrategy")],
    ),
    (
        "kyverno-clusterpolicy-misspelt.yaml",
        &[(Validator::Kubeconform, "patern"), (Validator::KubectlValidate, "patern")],
    ),
    (
        "imagevalidatingpolicy-misspelt.yaml",
        &[(Validator::Kubeconform, "keyles"), (Validator::KubectlValidate, "keyles")],
    ),
    ("multi-document-untyped.yaml", &[(Validator::Manifests, "document(s) [2] lack apiVersion or kind")]),
    ("duplicate-key.yaml", &[(Validator::Yamllint, "duplication of key \"name\"")]),
    ("workflow-broken.yml", &[(Validator::Actionlint, "needs job \"does-not-exist\" which does not exist")]),
    (
        "deployment-without-limits.yaml",
        &[(Validator::PlatformRules, "limits"), (Validator::KyvernoPolicies, "require-requests-limits")],
    ),
    ("values-wrong-type.yaml", &[(Validator::HelmValues, "replicaCount")]),
    ("values-unknown-key.yaml", &[(Validator::HelmValues, "replicaCountt")]),
    ("otelcol-undefined-exporter.yaml", &[(Validator::Otelcol, "otlp_grpc/jaeger")]),
    ("secret-plaintext.yaml", &[(Validator::Secrets, "stringData.password is plaintext")]),
    (
        "rules-bad-promql.rules.yaml",
        &[(
            Validator::Promtool,
            "\"Broken\": could not parse expression: 1:36: parse error: unclosed left parenthesis",
        )],
    ),
    ("rules-alert-without-runbook.rules.yaml", &[(Validator::Promtool, "annotation runbook_url is missing")]),
    ("dashboard-bad-query.json", &[(Validator::Dashboards, "target B: 1:61: parse error: unclosed left parenthesis")]),
    ("jaeger-helmrelease-bad-config.yaml", &[(Validator::JaegerValidate, "'badger' has invalid keys: directory")]),
    (
        "prometheusrule-bad-promql.yaml",
        &[(Validator::PrometheusRule, "expected type range vector in call to function \"rate\"")],
    ),
    ("mesh-unknown-subset.yaml", &[(Validator::IstioAnalyze, "IST0101"), (Validator::MeshInvariants, "canary")]),
    ("mesh-weights-not-100.yaml", &[(Validator::MeshInvariants, "weights sum to 110, not 100")]),
    (
        "mesh-plaintext-destinationrule.yaml",
        &[(Validator::MeshInvariants, "subset canary tls.mode is DISABLE, not ISTIO_MUTUAL")],
    ),
    (
        "mesh-header-route-after-weighted.yaml",
        &[(Validator::MeshInvariants, "route canary-header (header canary) comes after the weighted route primary")],
    ),
    (
        "mesh-undocumented-caller.yaml",
        &[(Validator::MeshInvariants, "not in docs/mesh-access.md: | shop/intruder | backend")],
    ),
    ("tofu-unformatted.tf", &[(Validator::TofuFmt, "not formatted")]),
    (
        "tofu-undefined-reference.tf",
        &[(Validator::TofuValidate, "An input variable with the name \"enviroment\" has not been declared")],
    ),
    ("workflow-unpinned-action.yml", &[(Validator::Zizmor, "unpinned-uses")]),
    ("checkov-privileged-container.yaml", &[(Validator::Checkov(PRIVILEGED), "CKV_K8S_16")]),
];

/// checkov's "Container should not be privileged".
const PRIVILEGED: &str = "CKV_K8S_16";

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
        Validator::Zizmor => zizmor::check(&crate::tools::locate(project, "zizmor")?, &files),
        Validator::Checkov(check) => {
            let (checked, findings) = checkov::scan(project, file, "kubernetes", Some(check))?;
            Ok(Outcome { checked, failures: findings.iter().map(|f| format!("{} {}", f.id, f.resource)).collect() })
        }
        Validator::Manifests => match files::is_manifest(file) {
            Ok(_) => Ok(Outcome { checked: 1, failures: Vec::new() }),
            Err(err) => Ok(Outcome { checked: 1, failures: vec![format!("{err:#}")] }),
        },
        Validator::KyvernoPolicies => {
            let kyverno = crate::tools::locate(project, "kyverno")?;
            let manifests = [("fixture".to_string(), file.to_path_buf())];
            Ok(kyverno::apply(&kyverno, &project.root.join("deploy/policies"), &manifests)?.0)
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

/// Every valid fixture passes every validator that applies to it, and the
/// checkov checks the invalid fixtures exercise (a check that refuses
/// everything would prove nothing).
pub fn check_valid(project: &Project, v: &Validators) -> Result<Outcome> {
    let dir = project.root.join("tests/fixtures/valid");
    let mut outcome = Outcome::default();
    for file in listed(&dir)? {
        let validators: &[Validator] = if file.to_string_lossy().contains("workflow") {
            &[Validator::Yamllint, Validator::Actionlint, Validator::Zizmor]
        } else {
            &[
                Validator::Yamllint,
                Validator::Manifests,
                Validator::Kubeconform,
                Validator::KubectlValidate,
                Validator::PlatformRules,
            ]
        };
        // A check that refuses everything would prove nothing with its fixture.
        let validators = if fs::read_to_string(&file)?.contains("kind: Deployment") {
            [validators, &[Validator::Checkov(PRIVILEGED)]].concat()
        } else {
            validators.to_vec()
        };
        for validator in validators {
            let result = run_one(project, v, validator, &file)?;
            if result.checked == 0 {
                outcome.failures.push(format!("{validator:?} checked nothing in valid fixture {}", file.display()));
            }
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

/// Every invalid fixture is rejected by each validator meant to catch it,
/// with every finding naming the fixture's reason; no fixture sits in the
/// folder without an expectation.
pub fn check_invalid(project: &Project, v: &Validators) -> Result<Outcome> {
    let dir = project.root.join("tests/fixtures/invalid");
    let mut outcome = Outcome::default();
    for file in listed(&dir)? {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, expectations)) = INVALID.iter().find(|(n, _)| *n == name) else {
            outcome.failures.push(format!("{name}: no expectation in xtask/src/verify/fixtures.rs"));
            continue;
        };
        for &(validator, reason) in *expectations {
            let result = run_one(project, v, validator, &file)?;
            outcome.failures.extend(judge(validator, &name, reason, &result.failures));
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

/// What is wrong with `validator`'s findings on an invalid fixture: none, or
/// one that does not name `reason`.
fn judge(validator: Validator, name: &str, reason: &str, findings: &[String]) -> Vec<String> {
    if findings.is_empty() {
        return vec![format!("{validator:?} accepted invalid fixture {name} (expected: {reason})")];
    }
    findings
        .iter()
        .filter(|f| !f.contains(reason))
        .map(|f| format!("{validator:?} rejected {name} for another reason than {reason:?}: {f}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_rejected_for_another_reason_fails() {
        let v = Validator::Kubeconform;
        assert!(judge(v, "f", "replicas", &["f: /spec/replicas: want integer".into()]).is_empty());
        assert_eq!(judge(v, "f", "replicas", &[]).len(), 1);
        let mixed = judge(v, "f", "replicas", &["/spec/replicas: x".into(), "could not find schema for X".into()]);
        assert_eq!(mixed.len(), 1);
        assert!(mixed[0].contains("another reason") && mixed[0].contains("could not find schema"), "{mixed:?}");
    }
}

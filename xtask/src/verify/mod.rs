//! `cargo xtask verify`: every manifest, kustomization and workflow in the
//! repository through the real upstream validators, then the negative
//! fixtures to prove those validators still reject bad input.

mod actionlint;
mod admission;
mod alert_rules;
mod checkov;
mod compliance;
mod crd_sets;
pub(crate) mod dashboards;
mod files;
mod fixtures;
mod helm;
mod image_signatures;
mod images;
mod infrastructure;
mod istio;
mod kubeconform;
mod kubectl_validate;
mod kyverno;
mod mesh;
mod network;
mod operator_pods;
mod otelcol;
pub mod policy_report;
mod promtool;
mod references;
mod render_fixtures;
mod rules;
mod secrets;
mod side_by_side;
mod tofu;
mod write_paths;
mod yamllint;
mod zizmor;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use side_by_side::Check;

use crate::cmd;
use crate::flux;
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
    pub helm: PathBuf,
    pub otelcol: PathBuf,
    pub promtool: PathBuf,
    pub kubeconform: PathBuf,
    pub kubectl_validate: PathBuf,
    pub yamllint: PathBuf,
    pub yamllint_config: PathBuf,
    pub actionlint: PathBuf,
    pub shellcheck: PathBuf,
    pub k8s_schemas: PathBuf,
    /// The API server's OpenAPI v3 documents, for kubectl-validate.
    pub k8s_openapi: PathBuf,
    pub crds: CrdSchemas,
}

impl Validators {
    pub fn new(project: &Project) -> Result<Self> {
        let crds = match &project.crd_dir {
            Some(dir) => schemas::crd::ensure(project, dir)?,
            None => schemas::crd::ensure(project, &schemas::crd_sources::fetch(project)?)?,
        };
        Ok(Self {
            helm: tools::locate(project, "helm")?,
            otelcol: tools::locate(project, "otelcol")?,
            promtool: tools::locate(project, "promtool")?,
            kubeconform: tools::locate(project, "kubeconform")?,
            kubectl_validate: tools::locate(project, "kubectl-validate")?,
            yamllint: tools::locate(project, "yamllint")?,
            yamllint_config: project.root.join(".yamllint.yaml"),
            actionlint: tools::locate(project, "actionlint")?,
            shellcheck: tools::locate(project, "shellcheck")?,
            k8s_schemas: schemas::k8s::ensure(project)?,
            k8s_openapi: schemas::k8s::openapi_v3(project)?,
            crds,
        })
    }
}

pub fn run(project: &Project, only_fixtures: bool) -> Result<()> {
    let v = Validators::new(project)?;
    if only_fixtures {
        let mut report = Report { last: Some(std::time::Instant::now()), ..Report::default() };
        report.line("fixtures (valid)", "files accepted", fixtures::check_valid(project, &v));
        report.line("fixtures (invalid)", "files rejected", fixtures::check_invalid(project, &v));
        if report.failed > 0 {
            bail!("verify --fixtures: {} failure(s) above", report.failed);
        }
        return Ok(());
    }
    let from = match &project.crd_dir {
        Some(dir) => format!("from CRD_DIR={}", dir.display()),
        None => format!("fetched by the versions in {}", schemas::crd_sources::SOURCES),
    };
    println!("{:<24} {:<4} {:>5} CRD files {from}", "custom resources", "", v.crds.crd_count);
    let out_dir = project.cache.join("verify/rendered");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;

    let yaml = files::yaml_files(&project.root)?;
    let set = files::manifests(&project.root, &yaml)?;
    let workflows = files::workflows(&project.root)?;
    let mut report = Report { last: Some(std::time::Instant::now()), ..Report::default() };
    report.line("yamllint", "files", yamllint::check(&v, &yaml));

    // Everything Kubernetes will see, with the environment it belongs to.
    let mut manifests: Vec<(String, PathBuf)> = set.files.iter().map(|f| ("repo".to_string(), f.clone())).collect();
    let charts = helm::charts(&project.root)?;
    render_charts(&v, &charts, &out_dir, true, &mut manifests, &mut report);
    let kustomized = render_kustomizations(project, &set.kustomizations, &out_dir, &mut report);
    let mut secrets = Outcome::default();
    // Every committed SOPS file (referenced or kept as an example), the plain
    // manifests, and the kustomize renders (stripped of SOPS metadata).
    let sops_files: Vec<PathBuf> =
        yaml.iter().filter(|f| f.to_string_lossy().ends_with(".sops.yaml")).cloned().collect();
    let repo_files = set.files.iter().chain(&sops_files).map(|f| (f, false));
    for (file, strip) in repo_files.chain(kustomized.iter().map(|(_, rendered)| (rendered, true))) {
        match secrets::check(file, strip) {
            Ok(found) => {
                secrets.checked += found.checked;
                secrets.failures.extend(found.failures);
            }
            Err(err) => secrets.failures.push(format!("{err:#}")),
        }
    }
    report.line("secrets in git", "Secrets (SOPS)", Ok(secrets));
    let renderer = flux::Renderer::new(project, &project.root)?;
    let mut environments = render_flux(&renderer, &mut report);
    report.line("values drift", "environments", values_drift(&charts, &environments));
    report.line("snapshots", "environments", snapshots_current(project, &environments));
    report.line("CRDs vs charts", "CRDs installed", crd_sets::check(&v.crds.crd_dir, &environments));
    report.line("operator pods", "pods", add_operator_pods(&mut environments));
    let as_flux_applies = environments.clone();
    let injected = inject_sidecars(project, &mut environments, &project.cache.join("verify/inject"));
    report.line("sidecar injection", "workloads", injected);
    report.line("references", "Secret/ConfigMap refs", references::check(&project.root, &environments));
    report.line("read-only filesystems", "containers", write_paths::check(&environments));
    report.line("image references", "containers", images::check(&environments));
    report.line("infrastructure", "claims, webhooks", infrastructure::check(&project.root, &environments));
    let network = tools::locate(project, "kyverno").and_then(|kyverno| {
        network::check(
            &kyverno,
            &project.root.join("deploy/policies"),
            &environments,
            &project.cache.join("verify/network"),
        )
    });
    report.line("network policies", "connections", network);
    write_environments(&environments, &out_dir, &mut manifests)?;
    println!(
        "{:<24} {:<4} {:>5} files, {} kustomizations, {} rendered",
        "manifests found",
        "",
        set.files.len(),
        set.kustomizations.len(),
        manifests.len() - set.files.len()
    );
    let files: Vec<PathBuf> = manifests.iter().map(|(_, f)| f.clone()).collect();
    let (kubeconform, (kubectl_validate, platform)) = std::thread::scope(|scope| {
        let kubeconform = scope.spawn(|| kubeconform::check(&v, &files));
        let rest = (kubectl_validate::check(&v, &files), rules::check(&files));
        (kubeconform.join().unwrap_or_else(|_| Err(anyhow::anyhow!("kubeconform's check panicked"))), rest)
    });
    print_environments(&manifests, [&kubeconform, &kubectl_validate, &platform])?;
    report.line("kubeconform", "documents", kubeconform);
    report.line("kubectl-validate", "documents", kubectl_validate);
    report.line("platform rules", "documents", platform);
    tofu::report(project, &mut report);

    let kyverno_cli = tools::locate(project, "kyverno")?;
    let policies = project.root.join("deploy/policies");
    let compliance_reports = Mutex::new(Vec::new());
    let checkov_targets = checkov::targets(project, &out_dir);
    let jaeger = || {
        let configs = otelcol::jaeger_configs(&manifests)?;
        otelcol::check_jaeger(&tools::locate(project, "jaeger")?, &configs, &project.cache.join("verify/jaeger"))
    };
    let renderer = &renderer;
    let as_flux_applies = &as_flux_applies;
    let (v, manifests, policies, kyverno_cli) = (&v, &manifests, &policies, &kyverno_cli);
    // Longest first (times of a warm run), so that the last to start are short.
    let checks = vec![
        Check::new("kyverno apply", "results", || {
            let (applied, reports) = compliance::split(kyverno::apply(kyverno_cli, policies, manifests));
            *compliance_reports.lock().expect("reports lock") = reports;
            applied
        }),
        Check::new("checkov", "checks", || checkov::check(project, &checkov_targets)),
        Check::new("fixtures (render)", "rejected for their reason", || {
            render_fixtures::check(project, renderer, as_flux_applies, &project.cache.join("verify/render-fixtures"))
        }),
        Check::new("fixtures (invalid)", "files rejected", || fixtures::check_invalid(project, v)),
        Check::new("fixtures (valid)", "files accepted", || fixtures::check_valid(project, v)),
        Check::new("istioctl analyze", "environments", || istio::check(project, manifests)),
        Check::new("promtool (rendered)", "PrometheusRules", || {
            promtool::check_rendered(v, manifests, &project.cache.join("verify/prometheusrules"))
        }),
        Check::new("promtool", "rule files, tests", || promtool::check(v, &project.root)),
        Check::new("jaeger validate", "configurations", jaeger),
        Check::new("mesh invariants", "environments", || mesh::check(project, manifests)),
        Check::new("kyverno test", "results", || kyverno::test_policies(kyverno_cli, policies)),
        Check::new("image signatures", "images", || image_signatures::check(project, kyverno_cli)),
        Check::new("grafana dashboards", "dashboards", || {
            dashboards::check(v, &project.root, &project.cache.join("verify/dashboards"))
        }),
        Check::new("otelcol validate", "configurations", || otelcol::check(v, &otelcol::variants(&project.root))),
        Check::new("actionlint", "workflows", || actionlint::check(v, &workflows)),
        Check::new("zizmor", "workflows", || zizmor::check(&tools::locate(project, "zizmor")?, &workflows)),
    ];
    // Three at once on two cores: each spends part of its time starting an
    // interpreter or waiting on a child process.
    side_by_side::run(3, checks, |name, unit, outcome, took| report.timed_line(name, unit, outcome, took));
    let reports = compliance_reports.into_inner().expect("reports lock");
    report.line("admission", "environments", admission_summary(&environments, &reports));
    let compliance_dir = project.cache.join("verify/report");
    let written = compliance::write(&compliance_dir, "Compliance report", &reports).map(|mut outcome| {
        outcome.failures.extend(compliance::below_target(&reports));
        outcome
    });
    report.line("compliance report", "environments", written);

    if report.failed > 0 {
        bail!("verify: {} failure(s) above", report.failed);
    }
    Ok(())
}

/// Everything Kubernetes will see, with the environment it belongs to, as
/// `run` renders it into `<cache>/verify/rendered` (without its checks):
/// what `cargo xtask policy report` gives Kyverno. Fails if anything cannot
/// be rendered.
pub fn render_environments(project: &Project) -> Result<Vec<(String, PathBuf)>> {
    let v = Validators::new(project)?;
    let out_dir = project.cache.join("verify/rendered");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;
    let yaml = files::yaml_files(&project.root)?;
    let set = files::manifests(&project.root, &yaml)?;
    let mut report = Report::default();
    let mut manifests: Vec<(String, PathBuf)> = set.files.iter().map(|f| ("repo".to_string(), f.clone())).collect();
    let charts = helm::charts(&project.root)?;
    render_charts(&v, &charts, &out_dir, false, &mut manifests, &mut report);
    let mut environments = render_flux(&flux::Renderer::new(project, &project.root)?, &mut report);
    if let Err(err) = add_operator_pods(&mut environments) {
        report.fail("operator pods", format!("{err:#}"));
    }
    if let Err(err) = inject_sidecars(project, &mut environments, &project.cache.join("verify/inject")) {
        report.fail("sidecar injection", format!("{err:#}"));
    }
    write_environments(&environments, &out_dir, &mut manifests)?;
    if report.failed > 0 {
        bail!("rendering: {} failure(s) above", report.failed);
    }
    Ok(manifests)
}

/// `helm template` of each chart per environment (after `helm lint` when
/// `lint`), into `out_dir`.
fn render_charts(
    v: &Validators,
    charts: &[helm::Chart],
    out_dir: &Path,
    lint: bool,
    manifests: &mut Vec<(String, PathBuf)>,
    report: &mut Report,
) {
    for chart in charts {
        if lint {
            report.line(&format!("helm lint {}", chart.name), "values sets", helm::lint(v, chart));
        }
        for (env, values) in &chart.environments {
            let out = out_dir.join(format!("chart-{}-{env}.yaml", chart.name));
            let namespace = format!("{}-{env}", chart.name);
            match helm::template(v, &chart.dir, &chart.name, &namespace, std::slice::from_ref(values), true, &out) {
                Ok(()) => manifests.push((format!("chart {env}"), out)),
                Err(err) => report.fail(&format!("helm template {env}"), format!("{err:#}")),
            }
        }
    }
}

/// What Flux applies to each environment (the one model of `crate::flux`);
/// prints Kustomizations, releases and objects per environment.
fn render_flux(renderer: &flux::Renderer, report: &mut Report) -> Vec<flux::Environment> {
    let mut environments = Vec::new();
    let mut outcome = Outcome::default();
    for env in flux::ENVIRONMENTS {
        match renderer.render(env) {
            Ok(rendered) => {
                println!(
                    "    {env}: {} Kustomizations, {} HelmReleases rendered, {} objects",
                    rendered.units.len() - rendered.releases(),
                    rendered.releases(),
                    rendered.docs().count()
                );
                outcome.checked += rendered.releases();
                environments.push(rendered);
            }
            Err(err) => outcome.failures.push(format!("{err:#}")),
        }
    }
    report.line("flux render", "releases", Ok(outcome));
    environments
}

/// The pods operators create from the rendered custom resources (operator_pods.rs).
fn add_operator_pods(environments: &mut [flux::Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for env in environments {
        match operator_pods::add(env) {
            Ok(added) => outcome.checked += added,
            Err(err) => outcome.failures.push(format!("{err:#}")),
        }
    }
    Ok(outcome)
}

/// Every environment's sidecars injected as istiod would (admission.rs).
fn inject_sidecars(project: &Project, environments: &mut [flux::Environment], scratch: &Path) -> Result<Outcome> {
    let istioctl = tools::locate(project, "istioctl")?;
    let mut outcome = Outcome::default();
    for env in environments {
        match admission::inject_sidecars(&istioctl, env, scratch) {
            Ok(0) => outcome.failures.push(format!("{}: no workload asks for a sidecar; the mesh is empty", env.name)),
            Ok(injected) => outcome.checked += injected,
            Err(err) => outcome.failures.push(format!("{err:#}")),
        }
    }
    Ok(outcome)
}

/// One file per Kustomization build and HelmRelease render, labelled with
/// its environment: what the validators read.
fn write_environments(
    environments: &[flux::Environment],
    out_dir: &Path,
    manifests: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    for env in environments {
        let files = env.write(&out_dir.join("flux"))?;
        manifests.extend(files.into_iter().map(|f| (env.name.clone(), f)));
    }
    Ok(())
}

/// Per environment: releases rendered, objects, pods admitted and refused
/// (a pod template with any failing policy or Pod Security result), and
/// compliance. An environment without pods, or without results, fails.
fn admission_summary(environments: &[flux::Environment], reports: &[compliance::Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    println!(
        "    {:<12} {:>8} {:>8} {:>6} {:>9} {:>8}  compliance",
        "environment", "releases", "objects", "pods", "admitted", "refused"
    );
    for env in environments {
        let pods: Vec<(String, String, String)> = env
            .docs()
            .filter(|d| references::pod_template(d).is_some())
            .map(|d| {
                let field = |k: &str| d["metadata"][k].as_str().unwrap_or("default").to_string();
                (d["kind"].as_str().unwrap_or("?").to_string(), field("namespace"), field("name"))
            })
            .collect();
        let Some(report) = reports.iter().find(|r| r.name == env.name) else {
            outcome.failures.push(format!("{}: the policies produced no report", env.name));
            continue;
        };
        let refused: std::collections::BTreeSet<(String, String, String)> = report
            .results
            .iter()
            .filter(|e| e.result == "fail" || e.result == "error")
            .flat_map(|e| e.resources.iter().map(|r| (r.kind.clone(), r.namespace.clone(), r.name.clone())))
            .filter(|r| pods.contains(r))
            .collect();
        let summary = report.summary();
        println!(
            "    {:<12} {:>8} {:>8} {:>6} {:>9} {:>8}  {}",
            env.name,
            env.releases(),
            env.docs().count(),
            pods.len(),
            pods.len() - refused.len(),
            refused.len(),
            compliance::percent(summary.compliance())
        );
        outcome.checked += 1;
        if pods.is_empty() || report.results.is_empty() {
            outcome.failures.push(format!("{}: no pod was judged by the policies", env.name));
        }
        for (kind, namespace, name) in &refused {
            outcome
                .failures
                .push(format!("{}: {kind} {namespace}/{name} would be refused (see kyverno apply)", env.name));
        }
    }
    Ok(outcome)
}

/// The committed snapshots (`snapshots/<env>.yaml`) are what Flux applies now.
fn snapshots_current(project: &Project, environments: &[flux::Environment]) -> Result<Outcome> {
    let stale = flux::snapshot::stale(&project.root, environments)?;
    let failures = stale
        .iter()
        .map(|env| format!("snapshots/{env}.yaml is stale: run `cargo xtask snapshots` and commit the result"))
        .collect();
    Ok(Outcome { checked: environments.len(), failures })
}

#[derive(Default)]
struct Report {
    failed: usize,
    /// When the previous line was printed: a line's time is its step's.
    last: Option<std::time::Instant>,
}

impl Report {
    fn line(&mut self, name: &str, unit: &str, outcome: Result<Outcome>) {
        let now = std::time::Instant::now();
        let took = self.last.map(|last| now - last);
        self.last = Some(now);
        self.print(name, unit, outcome, took);
    }

    /// A line of a check that ran beside others: its time is its own.
    fn timed_line(&mut self, name: &str, unit: &str, outcome: Result<Outcome>, took: std::time::Duration) {
        self.print(name, unit, outcome, self.last.map(|_| took));
        self.last = Some(std::time::Instant::now());
    }

    fn print(&mut self, name: &str, unit: &str, outcome: Result<Outcome>, took: Option<std::time::Duration>) {
        let mut outcome = outcome.unwrap_or_else(|err| Outcome { checked: 0, failures: vec![format!("{err:#}")] });
        // Every step has work in this repository: zero means it looked nowhere.
        if outcome.checked == 0 && outcome.failures.is_empty() {
            outcome.failures.push(format!("{name} checked no {unit}: it found nothing to check"));
        }
        let state = if outcome.failures.is_empty() { "ok" } else { "FAIL" };
        let took = took.map(|t| format!("{:>7.1} s", t.as_secs_f64())).unwrap_or_default();
        println!("{name:<24} {state:<4} {:>5} {unit:<28}{took}", outcome.checked);
        for failure in &outcome.failures {
            println!("    {failure}");
        }
        self.failed += outcome.failures.len();
    }

    fn fail(&mut self, name: &str, failure: String) {
        self.line(name, "", Ok(Outcome { checked: 0, failures: vec![failure] }));
    }
}

/// Each chart's `values-<env>.yaml` must be exactly what the environment's
/// HelmRelease of that chart gives Flux, so `helm install -f
/// values-<env>.yaml` and Flux agree. A chart with environment values that
/// no environment installs, or an environment without its values file, fails.
fn values_drift(charts: &[helm::Chart], environments: &[flux::Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for chart in charts.iter().filter(|c| !c.environments.is_empty()) {
        let chart_ref = format!("./charts/{}", chart.name);
        for env in environments {
            let release =
                env.docs().find(|d| d["kind"] == "HelmRelease" && d["spec"]["chart"]["spec"]["chart"] == chart_ref);
            let Some(release) = release else {
                outcome.failures.push(format!("{}: no HelmRelease installs {chart_ref}", env.name));
                continue;
            };
            outcome.checked += 1;
            let Some((_, file)) = chart.environments.iter().find(|(e, _)| *e == env.name) else {
                outcome
                    .failures
                    .push(format!("{}: charts/{}/values-{}.yaml is missing", env.name, chart.name, env.name));
                continue;
            };
            let text = fs::read_to_string(file)?;
            let in_chart: serde_json::Value =
                serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", file.display()))?;
            let empty = serde_json::json!({});
            let in_chart = if in_chart.is_null() { &empty } else { &in_chart };
            let in_flux = if release["spec"]["values"].is_null() { &empty } else { &release["spec"]["values"] };
            if in_chart != in_flux {
                outcome.failures.push(format!(
                    "{}: the HelmRelease's values differ from {}; keep them identical",
                    env.name,
                    file.display()
                ));
            }
        }
    }
    Ok(outcome)
}

/// Documents and kinds per environment, and how many findings each has.
fn print_environments(manifests: &[(String, PathBuf)], outcomes: [&Result<Outcome>; 3]) -> Result<()> {
    let mut by_env: std::collections::BTreeMap<&str, (usize, std::collections::BTreeMap<String, usize>, usize)> =
        Default::default();
    for (env, file) in manifests {
        let entry = by_env.entry(env.as_str()).or_default();
        for doc in rules::documents(file)? {
            entry.0 += 1;
            *entry.1.entry(doc["kind"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
        let file = file.display().to_string();
        entry.2 += outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .flat_map(|o| &o.failures)
            .filter(|f| f.contains(&file))
            .count();
    }
    println!("{:<34} {:>9}  {:>8}  kinds", "environment", "documents", "failures");
    for (env, (documents, kinds, failures)) in by_env {
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("{env:<34} {documents:>9}  {failures:>8}  {}", kinds.join(", "));
    }
    Ok(())
}

/// `kustomize build` (kustomize-controller's kustomize) of each root into
/// `out_dir`, with kustomize's default load restrictor (stricter than the
/// controller's: a root here reads only below itself): (root, rendered file).
fn render_kustomizations(
    project: &Project,
    roots: &[PathBuf],
    out_dir: &Path,
    report: &mut Report,
) -> Vec<(PathBuf, PathBuf)> {
    let kustomize = match tools::locate(project, "kustomize") {
        Ok(kustomize) => kustomize,
        Err(err) => {
            report.fail("kustomize", format!("{err:#}"));
            return Vec::new();
        }
    };
    let mut rendered = Vec::new();
    for root in roots {
        let rel = project.rel(root);
        let file = out_dir.join(format!("kustomize-{}.yaml", flat_name(rel)));
        let result = cmd::run(Command::new(&kustomize).arg("build").arg(root))
            .and_then(|output| Ok(fs::write(&file, &output.stdout)?));
        match result {
            Ok(()) => rendered.push((root.clone(), file)),
            Err(err) => report.fail(&format!("kustomize {}", rel.display()), format!("{err:#}")),
        }
    }
    rendered
}

fn flat_name(rel: &Path) -> String {
    rel.to_string_lossy().replace('/', "__")
}

//! `cargo xtask reconcile` (`make reconcile`): an environment reconciled for
//! real. A Kubernetes control plane on loopback (control_plane.rs), Flux's
//! controllers bootstrapped as infra/ bootstraps them (flux_system.rs) and
//! pointed at this working tree served over Git (serve.rs, repository.rs),
//! the platform's own controllers run from the Deployments Flux installs
//! (workloads.rs), webhooks reached through the run's cluster network
//! (network.rs), claims given volumes (volumes.rs). Then the checks (checks.rs,
//! kubelet.rs for what a kubelet would refuse), printed as a table.
//!
//! Everything runs under one supervisor: stopped in reverse start order
//! (controllers, then the API server, then etcd) at the end, on failure and
//! on Ctrl-C. Logs stay in `<cache>/reconcile/<env>/logs`.

mod canary;
mod checks;
mod control_plane;
mod flux_system;
mod internet;
mod kube;
mod kubelet;
mod network;
mod pki;
mod readmission;
pub(crate) mod repository;
mod scenarios;
mod secrets;
pub(crate) mod serve;
mod volumes;
mod workloads;

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::project::Project;
use crate::stack::process::{self, Supervisor};
use crate::tools;
use control_plane::Worker;

/// How long an environment may take from an empty etcd to every
/// Kustomization Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(project: &Project, envs: &[String]) -> Result<()> {
    process::install_signal_flag()?;
    let mut failures = Vec::new();
    for env in envs {
        println!("==> reconcile {env}");
        if let Err(err) = reconcile(project, env) {
            println!("reconcile {env}: FAILED: {err:#}");
            failures.push(env.clone());
        }
    }
    if !failures.is_empty() {
        bail!("reconcile failed for {}", failures.join(", "));
    }
    Ok(())
}

/// Worker nodes per environment, as cluster-topology and the EKS node group
/// spread them over zones (production's required anti-affinity needs three).
fn workers(env: &str) -> Vec<Worker> {
    let count = if env == "production" { 3 } else { 2 };
    (0..count).map(|i| Worker { zone: format!("zone-{}", (b'a' + i as u8) as char) }).collect()
}

fn reconcile(project: &Project, env: &str) -> Result<()> {
    let started = Instant::now();
    let dir = project.cache.join("reconcile").join(env);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut report = checks::Report::new(env);
    let mut supervisor = Supervisor::default();

    let plane = report.step("control plane and kwok nodes", || {
        control_plane::start(project, &mut supervisor, &dir, &workers(env), &workloads::process_backed())
    })?;
    let routes = network::Routes::default();
    network::serve(&plane.egress_socket, plane.admin.clone(), routes.clone())?;

    let git = tools::locate(project, "git")?;
    let (repository, sources) = report.step("repository and charts served", || {
        let repository = repository::Repository::publish(&git, &project.root, &dir)?;
        let key = secrets::generate(project, &dir)?;
        secrets::reencrypt(project, &repository, env, &key, &dir)?;
        let (folders, patches) = repository::chart_plan(project, env, &dir)?;
        let sources = serve::start(&git, &repository.root, folders)?;
        Ok((repository, (sources, patches, key)))
    })?;
    let (sources, patches, key) = sources;
    let internet = internet::start(&plane.pki.registry_cert, &plane.pki.registry_key)?;
    // The registry has the version the working tree deploys, as after its release.
    internet.publish("example/demo-app", &crate::cluster::app_version(project)?);
    report.step("Flux installed", || flux_system::install(project, env, &plane, &internet, &mut supervisor))?;
    report.step("bootstrap applied", || {
        plane.admin.apply(&flux_system::sops_secret(&key)?, "loopback-bootstrap")?;
        plane.admin.apply(&flux_system::sync_manifest(env, &sources, &patches), "loopback-bootstrap")
    })?;

    let expected = expected_objects(project, env)?;
    let mut controllers = workloads::Running::new(network::serve_http_proxy(routes.clone())?);
    let outcome = checks::wait_ready(&plane, &expected, READY_TIMEOUT, &mut report, || {
        // A controller run from a Deployment that exits is started again, as
        // its kubelet would; any other process exiting is fatal.
        let mut rows = controllers.step(project, &plane, &mut supervisor, &routes)?;
        if let Some((child, status)) = supervisor.first_exited_except(&workloads::process_names()) {
            bail!("{} exited ({status}); the end of its log:\n{}", child.name, child.log_tail(20));
        }
        rows.extend(volumes::provision(&plane)?);
        Ok(rows)
    });
    let verdict = outcome
        .and_then(|()| checks::final_state(&plane, &routes, &internet, &controllers, &mut report))
        .and_then(|()| {
            if env != "dev" {
                return Ok(());
            }
            scenarios::run(&project.root, &plane, &repository, &mut report)?;
            canary::run(project, env, &plane, &repository, &routes, &internet, &mut supervisor, &mut report)
        });
    // Of the processes still running (a scenario's stopped ones not counted).
    let alive: Vec<u32> = supervisor.pids().into_iter().filter(|pid| process::is_alive(*pid)).collect();
    report.peak_rss_kib = crate::bench::procfs::peak_rss_kib(&alive).unwrap_or(0);
    report.print(started.elapsed());
    if let Err(err) = &verdict {
        checks::print_diagnostics(&plane, &mut supervisor);
        return Err(anyhow::anyhow!("{err:#}"));
    }
    Ok(())
}

/// (kind, namespace/name) of every Kustomization and HelmRelease the
/// repository defines for `env`: what must become Ready.
fn expected_objects(project: &Project, env: &str) -> Result<Vec<(String, String)>> {
    let mut expected = Vec::new();
    for (ks, docs) in crate::flux::kustomizations(&crate::flux::Kustomizer::new(project)?, &project.root, env)? {
        expected.push(("Kustomization".to_string(), kube::name_of(&ks)));
        for doc in docs.iter().filter(|d| d["kind"] == "HelmRelease") {
            expected.push(("HelmRelease".to_string(), kube::name_of(doc)));
        }
    }
    Ok(expected)
}

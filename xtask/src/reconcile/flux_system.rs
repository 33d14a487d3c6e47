//! `flux-system` on the loopback cluster, as infra/modules/flux-bootstrap
//! makes it: the Flux CRDs, source-, kustomize-, helm- and
//! notification-controller (here processes, there Deployments), the SOPS key
//! Secret, and the sync pair `flux-system`: a GitRepository of this
//! repository and a Kustomization of `deploy/clusters/<env>`.
//!
//! The one difference from production is a patch in that Kustomization:
//! every HelmRepository's URL points at the chart server of this run
//! (serve.rs), which holds the very chart versions the HelmReleases pin.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::control_plane::ControlPlane;
use super::internet::Internet;
use super::repository::RepositoriesByKustomization;
use super::secrets::AgeKey;
use super::serve::Sources;
use crate::project::Project;
use crate::stack::ports::free_port;
use crate::stack::process::Supervisor;
use crate::tools;

pub const NAMESPACE: &str = "flux-system";
/// The source the bootstrap creates (and every Kustomization of deploy/ reads).
pub const SOURCE: &str = "flux-system";
/// The sync interval of the bootstrapped GitRepository and Kustomization: a
/// parameter of the bootstrap (its `interval` variable), short here so a
/// commit is picked up within seconds.
pub const SYNC_INTERVAL: &str = "15s";

const CONTROLLERS: &[&str] =
    &["source-controller", "kustomize-controller", "helm-controller", "notification-controller"];
/// What infra/modules/flux-bootstrap adds for dev and staging
/// (`components_extra`); production changes only through a pull request.
const IMAGE_CONTROLLERS: &[&str] = &["image-reflector-controller", "image-automation-controller"];

pub fn install(
    project: &Project,
    env: &str,
    plane: &ControlPlane,
    internet: &Internet,
    supervisor: &mut Supervisor,
) -> Result<()> {
    let controllers: Vec<&str> = if env == "production" {
        CONTROLLERS.to_vec()
    } else {
        CONTROLLERS.iter().chain(IMAGE_CONTROLLERS).copied().collect()
    };
    let mut crds = String::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for &controller in &controllers {
        folders.push(tools::module_source(project, controller)?.join("config/crd/bases"));
    }
    for folder in folders {
        let mut files: Vec<PathBuf> = fs::read_dir(&folder)
            .with_context(|| format!("no CRDs in {}", folder.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            crds.push_str("---\n");
            crds.push_str(&fs::read_to_string(file)?);
        }
    }
    plane.admin.apply(&crds, "flux-install")?;
    plane.admin.apply(&namespace_manifest(), "flux-install")?;
    plane.admin.run(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"])?;

    let logs = plane.dir.join("logs");
    let artifacts = plane.dir.join("artifacts");
    fs::create_dir_all(&artifacts)?;
    let events = free_port()?;
    let storage = free_port()?;
    let grace = Duration::from_secs(10);
    for &controller in &controllers {
        let mut command = Command::new(tools::locate(project, controller)?);
        command
            .env("KUBECONFIG", &plane.admin.kubeconfig)
            .env("RUNTIME_NAMESPACE", NAMESPACE)
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()?))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()?))
            .args(["--enable-leader-election=false", "--watch-all-namespaces=true", "--log-level=info"]);
        match controller {
            "source-controller" => {
                command
                    .arg(format!("--storage-path={}", artifacts.display()))
                    .arg(format!("--storage-addr=127.0.0.1:{storage}"))
                    .arg(format!("--storage-adv-addr=127.0.0.1:{storage}"));
            }
            // It scans the release registry, through the run's internet.
            "image-reflector-controller" => {
                let storage = plane.dir.join("image-reflector");
                fs::create_dir_all(&storage)?;
                command
                    .arg(format!("--storage-path={}", storage.display()))
                    .env("HTTPS_PROXY", &internet.proxy_url)
                    .env("NO_PROXY", "127.0.0.1,localhost")
                    .env("SSL_CERT_FILE", &plane.pki.ca_cert);
            }
            "notification-controller" => {
                command
                    .arg(format!("--events-addr=127.0.0.1:{events}"))
                    .arg(format!("--receiverAddr=127.0.0.1:{}", free_port()?));
            }
            // Retry a Kustomization or HelmRelease whose dependencies are not
            // ready every 2 s, not every 30 s: the chain is five deep, and
            // every push walks it again (a dependency must be Ready at the
            // new revision).
            "kustomize-controller" | "helm-controller" => {
                command.arg("--requeue-dependency=2s");
            }
            _ => {}
        }
        if controller != "notification-controller" {
            command.arg(format!("--events-addr=http://127.0.0.1:{events}"));
        }
        supervisor.spawn(controller, command, &logs.join(format!("{controller}.log")), grace)?;
    }
    Ok(())
}

fn namespace_manifest() -> String {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}).to_string()
}

/// The SOPS key Secret the bootstrap module creates from `sops_age_key`
/// (docs/bootstrap.md): the age key generated for this run.
pub fn sops_secret(key: &AgeKey) -> Result<String> {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": NAMESPACE},
        "stringData": {"age.agekey": fs::read_to_string(&key.file)?},
    });
    Ok(secret.to_string())
}

/// The sync pair, with the HelmRepository URLs of `repositories` (child
/// Kustomization → (HelmRepository name, chart folder key)) patched.
pub fn sync_manifest(env: &str, sources: &Sources, repositories: &RepositoriesByKustomization) -> String {
    let mut patches = Vec::new();
    for (kustomization, (has_patches, repos)) in repositories {
        if kustomization == SOURCE {
            // HelmRepositories of deploy/clusters/<env> itself: patched directly.
            patches.extend(repos.iter().map(|(name, key)| url_patch(sources, name, key)));
            continue;
        }
        let mut operations = Vec::new();
        for (index, (name, key)) in repos.iter().enumerate() {
            let patch = url_patch(sources, name, key);
            // The first patch creates the list when the Kustomization has none.
            if index == 0 && !has_patches {
                operations.push(json!({"op": "add", "path": "/spec/patches", "value": [patch]}));
            } else {
                operations.push(json!({"op": "add", "path": "/spec/patches/-", "value": patch}));
            }
        }
        patches.push(json!({
            "target": {"kind": "Kustomization", "name": kustomization},
            "patch": Value::Array(operations).to_string(),
        }));
    }
    let git = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": SOURCE, "namespace": NAMESPACE},
        "spec": {"interval": SYNC_INTERVAL, "url": sources.git_url("platform.git"), "ref": {"branch": "main"}},
    });
    let sync = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": SOURCE, "namespace": NAMESPACE},
        "spec": {
            "interval": SYNC_INTERVAL, "path": format!("./deploy/clusters/{env}"), "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": SOURCE},
            "patches": patches,
        },
    });
    format!("{git}\n{sync}\n")
}

/// A Flux Kustomization patch: the HelmRepository `name` reads the chart folder `key`.
fn url_patch(sources: &Sources, name: &str, key: &str) -> Value {
    json!({
        "target": {"kind": "HelmRepository", "name": name},
        "patch": json!([{"op": "replace", "path": "/spec/url", "value": sources.chart_url(key)}]).to_string(),
    })
}

/// What a push webhook or `flux reconcile source git flux-system` does: the
/// GitRepository fetches now instead of at its next interval (the objects
/// built from it follow its new revision by themselves).
pub fn pushed(plane: &ControlPlane) -> Result<()> {
    request_reconcile(plane, &["gitrepository/flux-system"])
}

/// Asks Flux to reconcile `kind/name` objects of flux-system now, as `flux
/// reconcile` does: a `requestedAt` value never used before (a repeated one
/// is no request).
pub fn request_reconcile(plane: &ControlPlane, objects: &[&str]) -> Result<()> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let now = format!("reconcile.fluxcd.io/requestedAt={}", since_epoch.as_nanos());
    for object in objects {
        plane.admin.run(&["annotate", "--overwrite", "-n", "flux-system", object, &now])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every HelmRepository URL is patched, in the Kustomization that applies
    /// it: a list is created where there is none, appended to where there is.
    #[test]
    fn sync_patches_reach_every_helm_repository() {
        let sources = Sources { port: 4242 };
        let repositories = BTreeMap::from([
            (
                "infra-controllers".to_string(),
                (false, vec![("kyverno".into(), "k1".into()), ("cnpg".into(), "k2".into())]),
            ),
            ("infra-mesh".to_string(), (true, vec![("istio".into(), "k3".into())])),
            (SOURCE.to_string(), (false, vec![("top".into(), "k4".into())])),
        ]);
        let text = sync_manifest("dev", &sources, &repositories);
        let docs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs[0]["kind"], "GitRepository");
        assert_eq!(docs[0]["spec"]["url"], "http://127.0.0.1:4242/git/platform.git");
        assert_eq!(docs[1]["spec"]["path"], "./deploy/clusters/dev");
        let patches = docs[1]["spec"]["patches"].as_array().unwrap();
        assert_eq!(patches.len(), 3);
        let ops = |i: usize| -> Vec<Value> { serde_json::from_str(patches[i]["patch"].as_str().unwrap()).unwrap() };
        // In name order: flux-system's own first.
        assert_eq!(patches[0]["target"], json!({"kind": "HelmRepository", "name": "top"}));
        let controllers = ops(1);
        assert_eq!(patches[1]["target"]["name"], "infra-controllers");
        assert_eq!(controllers[0]["path"], "/spec/patches");
        assert_eq!(controllers[1]["path"], "/spec/patches/-");
        let inner: Vec<Value> = serde_json::from_str(controllers[1]["value"]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(inner[0]["value"], "http://127.0.0.1:4242/charts/k2/");
        assert_eq!(ops(2)[0]["path"], "/spec/patches/-", "infra-mesh has patches of its own: append");
    }
}

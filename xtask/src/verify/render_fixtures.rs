//! Negative fixtures of the render checks: each plants one defect, in a
//! copy of the repository (what Flux reads) or in the rendered environment
//! (what the cluster would create), and must be rejected by the check it is
//! about, with that check's reason. A fixture rejected for another reason,
//! or accepted, fails verify.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Outcome, admission, images, infrastructure, kyverno, network, references, write_paths};
use crate::flux::{self, Environment, Renderer};
use crate::project::Project;

/// A defect planted in a copy of the repository: (name, file, text, replacement, expected reason).
const TREE_FIXTURES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "a chart pin the mirror lacks",
        "deploy/infrastructure/controllers/kyverno.yaml",
        "version: 3.9.0",
        "version: 3.9.1",
        "chart kyverno version 3.9.1",
    ),
    (
        "a Flux Kustomization patch that breaks a value",
        "deploy/clusters/dev/apps.yaml",
        "  path: ./deploy/apps/dev\n",
        "  path: ./deploy/apps/dev\n  patches:\n    - target: {kind: HelmRelease, name: demo-app}\n      patch: |\n        - op: replace\n          path: /spec/values/replicaCount\n          value: -1\n",
        "at '/replicaCount': minimum: got -1, want 0",
    ),
    (
        "a dependsOn nothing defines",
        "deploy/clusters/dev/apps.yaml",
        "    - name: policies\n",
        "    - name: policies\n    - name: infra-databases\n",
        "dependsOn flux-system/infra-databases, which nothing in this environment defines",
    ),
];

pub fn check(project: &Project, renderer: &Renderer, environments: &[Environment], scratch: &Path) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut expect = |name: &str, expected: &str, found: Result<Vec<String>>| {
        outcome.checked += 1;
        let found = found.unwrap_or_else(|err| vec![format!("{err:#}")]);
        if found.is_empty() {
            outcome.failures.push(format!("fixture `{name}` was accepted; expected `{expected}`"));
        } else if !found.iter().any(|f| f.contains(expected)) {
            outcome.failures.push(format!(
                "fixture `{name}` was rejected for another reason than `{expected}`: {}",
                found.join("; ")
            ));
        }
    };
    for (name, file, from, to, expected) in TREE_FIXTURES {
        expect(name, expected, planted_tree(project, renderer, scratch, file, from, to));
    }
    let dev = environments.iter().find(|e| e.name == "dev").context("dev was not rendered")?;
    let staging = environments.iter().find(|e| e.name == "staging").context("staging was not rendered")?;
    let kyverno_cli = crate::tools::locate(project, "kyverno")?;
    let policies = project.root.join("deploy/policies");

    // The injector's hub moved to a registry the allow-list does not name.
    let env = mutated(dev, |doc| {
        if doc["kind"] == "ConfigMap" && doc["metadata"]["name"] == "istio-sidecar-injector" {
            let values = doc["data"]["values"]
                .as_str()
                .unwrap_or_default()
                .replace("registry.istio.io/release", "docker.io/istio");
            doc["data"]["values"] = Value::String(values);
        }
    });
    let injected = inject_and_apply(project, &kyverno_cli, &policies, env, &scratch.join("registry"));
    expect(
        "an injected sidecar from a registry the allow-list lacks",
        "not allowed: docker.io/istio/proxyv2",
        injected,
    );

    let env = mutated(dev, |doc| {
        if doc["kind"] == "StatefulSet"
            && doc["metadata"]["name"] == "loki"
            && let Some(mounts) =
                doc.pointer_mut("/spec/template/spec/containers/0/volumeMounts").and_then(Value::as_array_mut)
        {
            mounts.retain(|m| m["mountPath"] != "/var/loki");
        }
    });
    let found = write_paths::check(std::slice::from_ref(&env)).map(|o| o.failures);
    expect(
        "a read-only root filesystem with an unmounted write path",
        "writes /var/loki but its root filesystem is read-only",
        found,
    );

    let env = mutated(dev, |doc| {
        if doc["kind"] == "Deployment" && doc["metadata"]["name"] == "jaeger" {
            doc["spec"]["template"]["spec"]["containers"][0]["image"] =
                Value::String("jaegertracing/jaeger:2.19.0".into());
        }
    });
    let found = images::check(std::slice::from_ref(&env)).map(|o| o.failures);
    expect("an image without its registry", "image `jaegertracing/jaeger:2.19.0` names no registry", found);

    let env = mutated(staging, |doc| {
        if doc["kind"] == "NetworkPolicy" && doc["metadata"]["name"] == "demo-app-db" {
            doc["metadata"]["name"] = Value::String("planted-removed".into());
            doc["spec"]["podSelector"] = serde_json::json!({"matchLabels": {"nothing": "selected"}});
        }
    });
    let found = network::check(&kyverno_cli, &policies, std::slice::from_ref(&env), &scratch.join("network"))
        .map(|o| o.failures);
    expect(
        "an unreachable database under default-deny",
        "cannot reach demo-app/Pod demo-app-db-1 on 5432/TCP (PostgreSQL credentials demo-app-db-app): no ingress rule of default-deny",
        found,
    );

    let env = mutated(staging, |doc| {
        if doc["kind"] == "Deployment" && doc["metadata"]["name"] == "demo-app-backend" {
            let text = serde_json::to_string(doc)
                .unwrap_or_default()
                .replace("\"demo-app-db-app\"", "\"demo-app-db-credentials\"");
            *doc = serde_json::from_str(&text).unwrap_or_default();
        }
    });
    let found = references::check(&project.root, std::slice::from_ref(&env)).map(|o| o.failures);
    expect(
        "a referenced Secret that nothing creates",
        "needs Secret demo-app/demo-app-db-credentials, which nothing creates",
        found,
    );

    let env = mutated(staging, |doc| {
        if doc["kind"] == "StatefulSet" && doc["metadata"]["name"] == "loki" {
            doc["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = Value::String("fast-nvme".into());
        }
    });
    let found = infrastructure::check(&project.root, std::slice::from_ref(&env)).map(|o| o.failures);
    expect(
        "a claim of a StorageClass the infrastructure lacks",
        "StorageClass `fast-nvme`, which infra/envs/aws/main.tf does not provide",
        found,
    );
    Ok(outcome)
}

/// Renders dev from a copy of the repository with one replacement made.
fn planted_tree(
    project: &Project,
    renderer: &Renderer,
    scratch: &Path,
    file: &str,
    from: &str,
    to: &str,
) -> Result<Vec<String>> {
    let root = scratch.join("tree");
    let _ = fs::remove_dir_all(&root);
    for dir in ["deploy", "charts"] {
        copy_dir(&project.root.join(dir), &root.join(dir))?;
    }
    let path = root.join(file);
    let text = fs::read_to_string(&path)?;
    if !text.contains(from) {
        bail!("fixture: {file} no longer contains `{from}`; update the fixture");
    }
    fs::write(&path, text.replacen(from, to, 1))?;
    let planted = Renderer {
        root: root.clone(),
        helm: renderer.helm.clone(),
        charts: renderer.charts.clone(),
        kustomizer: renderer.kustomizer.clone(),
    };
    Ok(match planted.render("dev") {
        Ok(_) => Vec::new(),
        Err(err) => vec![format!("{err:#}")],
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let target = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A copy of `env` with `change` applied to every object.
fn mutated(env: &Environment, change: impl Fn(&mut Value)) -> Environment {
    let units = env
        .units
        .iter()
        .map(|u| {
            let mut docs = u.docs.clone();
            docs.iter_mut().for_each(&change);
            flux::Unit { origin: u.origin.clone(), docs }
        })
        .collect();
    Environment { name: env.name.clone(), units }
}

/// Sidecar injection then the policies, as verify runs them: the failures.
fn inject_and_apply(
    project: &Project,
    kyverno_cli: &Path,
    policies: &Path,
    mut env: Environment,
    scratch: &Path,
) -> Result<Vec<String>> {
    let istioctl = crate::tools::locate(project, "istioctl")?;
    admission::inject_sidecars(&istioctl, &mut env, &scratch.join("inject"))?;
    let files = env.write(&scratch.join("rendered"))?;
    let manifests: Vec<(String, std::path::PathBuf)> = files.into_iter().map(|f| (env.name.clone(), f)).collect();
    let (outcome, _) = kyverno::apply(kyverno_cli, policies, &manifests)?;
    Ok(outcome.failures)
}

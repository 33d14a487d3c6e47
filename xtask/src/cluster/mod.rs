//! `make cluster-up` / `make cluster-down`: the dev environment on a local
//! kind cluster, reconciled by Flux from this working tree, without any Git
//! credentials. The e2e workflow runs the same commands (and `cluster-check`).
//!
//! kind is driven through its CLI, not OpenTofu: the cluster is thrown away
//! after each use, and a state file for it would only go stale (see
//! docs/design-decisions.md). Its shape is the one of
//! infra/modules/cluster-topology: one control plane with the gateway's host
//! ports, two workers, a registry container on the kind network.

mod bootstrap;
mod check;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::project::Project;

pub use bootstrap::app_version;
pub use check::run as check;

pub const CLUSTER: &str = "demo-platform";
const CONTEXT: &str = "kind-demo-platform";
/// Kubernetes 1.33, the version `make verify` validates against; the digest
/// is the one kind v0.29.0 publishes for this image.
const NODE_IMAGE: &str = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f";
pub const REGISTRY: &str = "kind-registry";
pub const REGISTRY_PORT: u16 = 5001;
const REGISTRY_IMAGE: &str = "registry:3.0.0";
/// The image name every environment uses; a local build is loaded into the
/// nodes under it, so admission policies see the same registry as in the cloud.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/example/demo-app";
/// Host ports of the control plane, mapped to NodePorts (as in cluster-topology).
const GATEWAY_PORTS: [(u16, u16); 2] = [(8080, 30080), (8443, 30443)];

/// What cluster-up needs on the machine, and where to get it.
const PREREQUISITES: &[(&str, &str)] = &[
    ("docker", "Docker Engine or Docker Desktop: https://docs.docker.com/engine/install/"),
    ("kind", "kind v0.29 or newer: `go install sigs.k8s.io/kind@v0.29.0`"),
    ("flux", "the flux CLI 2.9: https://fluxcd.io/flux/installation/#install-the-flux-cli"),
    ("kubectl", "kubectl 1.33: https://kubernetes.io/docs/tasks/tools/"),
];

pub fn up(project: &Project) -> Result<()> {
    require("cluster-up", PREREQUISITES)?;
    let work = project.cache.join("cluster");
    fs::create_dir_all(&work)?;
    step("local registry", ensure_registry)?;
    step("kind cluster", || ensure_cluster(&work))?;
    step("registry on the kind network", connect_registry)?;
    let version = bootstrap::app_version(project)?;
    let tag = format!("{version}-local.{}", bootstrap::revision(project)?);
    step("image", || build_and_load(project, &tag, &[]))?;
    step("Flux", bootstrap::install_flux)?;
    step("sources from the working tree", || bootstrap::publish(project, &work, &tag))?;
    step("everything ready", bootstrap::wait_ready)?;
    print_urls()?;
    Ok(())
}

pub fn down() -> Result<()> {
    require("cluster-down", &PREREQUISITES[..2])?;
    let clusters = cmd::run(Command::new("kind").arg("get").arg("clusters"))?;
    if String::from_utf8_lossy(&clusters.stdout).lines().any(|l| l.trim() == CLUSTER) {
        cmd::run(Command::new("kind").args(["delete", "cluster", "--name", CLUSTER]))?;
        println!("deleted kind cluster {CLUSTER}");
    }
    if container_exists(REGISTRY)? {
        cmd::run(Command::new("docker").args(["rm", "--force", REGISTRY]))?;
        println!("removed registry container {REGISTRY}");
    }
    Ok(())
}

/// Fails with every missing program named, and how to install it.
fn require(command: &str, programs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = programs
        .iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|(program, how)| format!("  {program}: {how}"))
        .collect();
    if !missing.is_empty() {
        bail!("{command} needs programs that are not on PATH:\n{}", missing.join("\n"));
    }
    // Docker installed but not running is the usual surprise.
    cmd::run(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]))
        .context("docker is installed but its daemon does not answer; start Docker and retry")?;
    Ok(())
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn step(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> cluster: {name}");
    body().with_context(|| format!("cluster-up: {name}"))
}

fn container_exists(name: &str) -> Result<bool> {
    let out = cmd::run(Command::new("docker").args(["ps", "--all", "--format", "{{.Names}}"]))?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == name))
}

fn ensure_registry() -> Result<()> {
    if container_exists(REGISTRY)? {
        cmd::run(Command::new("docker").args(["start", REGISTRY]))?;
        return Ok(());
    }
    cmd::run(Command::new("docker").args([
        "run",
        "--detach",
        "--restart=always",
        "--name",
        REGISTRY,
        "--publish",
        &format!("127.0.0.1:{REGISTRY_PORT}:5000"),
        REGISTRY_IMAGE,
    ]))?;
    Ok(())
}

/// The kind configuration: what infra/modules/cluster-topology describes.
fn kind_config() -> String {
    let mappings: String = GATEWAY_PORTS
        .iter()
        .map(|(host, node)| {
            format!(
                "      - containerPort: {node}\n        hostPort: {host}\n        listenAddress: 127.0.0.1\n        protocol: TCP\n"
            )
        })
        .collect();
    let mut config = String::from("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n");
    config.push_str("containerdConfigPatches:\n  - |-\n");
    config.push_str(&format!(
        "    [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"localhost:{REGISTRY_PORT}\"]\n"
    ));
    config.push_str(&format!("      endpoint = [\"http://{REGISTRY}:5000\"]\n"));
    config.push_str("nodes:\n  - role: control-plane\n    labels:\n      ingress-ready: \"true\"\n");
    config.push_str("    extraPortMappings:\n");
    config.push_str(&mappings);
    for zone in 0..2 {
        config.push_str(&format!("  - role: worker\n    labels:\n      topology.kubernetes.io/zone: zone-{zone}\n"));
    }
    config
}

fn ensure_cluster(work: &Path) -> Result<()> {
    let clusters = cmd::run(Command::new("kind").args(["get", "clusters"]))?;
    if String::from_utf8_lossy(&clusters.stdout).lines().any(|l| l.trim() == CLUSTER) {
        println!("    kind cluster {CLUSTER} exists; reusing it");
    } else {
        let config = work.join("kind-config.yaml");
        fs::write(&config, kind_config())?;
        let mut create = Command::new("kind");
        create.args(["create", "cluster", "--name", CLUSTER, "--image", NODE_IMAGE, "--wait", "5m", "--config"]);
        cmd::run(create.arg(&config))?;
    }
    cmd::run(Command::new("kubectl").args(["config", "use-context", CONTEXT]))?;
    Ok(())
}

/// Joins the registry to the kind network (once) and tells tools where it is
/// (KEP-1755's `local-registry-hosting` ConfigMap).
fn connect_registry() -> Result<()> {
    let networks = cmd::run(Command::new("docker").args([
        "inspect",
        "--format",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        REGISTRY,
    ]))?;
    if !String::from_utf8_lossy(&networks.stdout).split_whitespace().any(|n| n == "kind") {
        cmd::run(Command::new("docker").args(["network", "connect", "kind", REGISTRY]))?;
    }
    let hosting = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local-registry-hosting\n  namespace: kube-public\n\
         data:\n  localRegistryHosting.v1: |\n    host: \"localhost:{REGISTRY_PORT}\"\n    help: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n"
    );
    kubectl_apply(&hosting)
}

/// `kubectl apply` of a manifest given as text.
pub fn kubectl_apply(manifest: &str) -> Result<()> {
    let mut child = Command::new("kubectl")
        .args(["apply", "--filename", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot start kubectl")?;
    {
        use std::io::Write as _;
        child.stdin.take().context("kubectl has no stdin")?.write_all(manifest.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl apply failed ({status}) for:\n{manifest}");
    }
    Ok(())
}

/// Builds the image from the working tree and loads it into every node under
/// `IMAGE_REPOSITORY:<tag>` (IfNotPresent then never pulls it).
pub fn build_and_load(project: &Project, tag: &str, build_args: &[(&str, &str)]) -> Result<()> {
    let image = format!("{IMAGE_REPOSITORY}:{tag}");
    let mut build = Command::new("docker");
    build.current_dir(&project.root).args(["build", "--tag", &image]);
    for (key, value) in build_args {
        build.args(["--build-arg", &format!("{key}={value}")]);
    }
    build.args(["--build-arg", &format!("DEMO_APP_REVISION={tag}"), "."]);
    let status = build.status().context("cannot start docker build")?;
    if !status.success() {
        bail!("`docker build` of {image} failed ({status}); its output is above");
    }
    cmd::run(Command::new("kind").args(["load", "docker-image", "--name", CLUSTER, &image]))?;
    Ok(())
}

/// How to reach what runs: the app through the ingress gateway, Grafana and
/// Jaeger where the observability layer deployed them.
fn print_urls() -> Result<()> {
    let services = cmd::run(Command::new("kubectl").args(["get", "services", "--all-namespaces", "--output", "json"]))?;
    let services: serde_json::Value = serde_json::from_slice(&services.stdout)?;
    let mut lines = Vec::new();
    let wanted: [(&str, &str, u16); 3] = [
        ("istio-ingressgateway", "the app (through the ingress gateway)", 8080),
        ("grafana", "Grafana", 3000),
        ("jaeger", "Jaeger", 16686),
    ];
    for (needle, what, local) in wanted {
        let found =
            services["items"].as_array().into_iter().flatten().find(|s| {
                s["metadata"]["name"].as_str().is_some_and(|n| n.contains(needle) && !n.contains("collector"))
            });
        match found {
            Some(svc) => {
                let ns = svc["metadata"]["namespace"].as_str().unwrap_or("default");
                let name = svc["metadata"]["name"].as_str().unwrap_or("?");
                let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap_or(80);
                lines.push(format!(
                    "  {what}: http://127.0.0.1:{local}/  after  kubectl --context {CONTEXT} -n {ns} port-forward svc/{name} {local}:{port}"
                ));
            }
            None => lines.push(format!("  {what}: no service matching `{needle}` in the cluster")),
        }
    }
    println!("\ncluster {CLUSTER} is ready (kubectl context {CONTEXT}):");
    println!("{}", lines.join("\n"));
    println!(
        "  the app's host name through the gateway: curl -H 'Host: demo-app.dev.example.com' http://127.0.0.1:8080/"
    );
    println!("  images: docker push localhost:{REGISTRY_PORT}/<name>:<tag> (the nodes pull the same name)");
    Ok(())
}

/// Polls until `done` answers Some, or fails after `limit` with `what`.
pub fn poll<T>(what: &str, limit: Duration, mut done: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = done()? {
            return Ok(value);
        }
        if started.elapsed() > limit {
            bail!("timed out after {} s waiting for {what}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind configuration is YAML with the topology of
    /// infra/modules/cluster-topology: one control plane with both gateway
    /// ports, two workers, the registry mirror.
    #[test]
    fn kind_config_matches_the_cluster_topology_module() {
        let config: serde_json::Value = serde_norway::from_str(&kind_config()).unwrap();
        let nodes = config["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0]["role"], "control-plane");
        let ports: Vec<u64> = nodes[0]["extraPortMappings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["containerPort"].as_u64().unwrap())
            .collect();
        assert_eq!(ports, [30080, 30443]);
        assert!(nodes[1..].iter().all(|n| n["role"] == "worker"));
        let patch = config["containerdConfigPatches"][0].as_str().unwrap();
        assert!(patch.contains("\"localhost:5001\"") && patch.contains("http://kind-registry:5000"), "{patch}");
        let topology = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/modules/cluster-topology/variables.tf"),
        )
        .unwrap();
        for (host, node) in GATEWAY_PORTS {
            assert!(topology.contains(&format!("{{ host_port = {host}, node_port = {node} }}")), "{host}:{node}");
        }
        assert!(topology.contains(&format!("host_port = {REGISTRY_PORT}")));
    }
}

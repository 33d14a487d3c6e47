//! The platform's controllers, run for real. kwok makes every pod Running
//! without running anything; for the Deployments whose work the platform
//! depends on (admission, policy reports, rollouts), the container is run
//! here as a process once Flux has installed its Deployment: with the args
//! and environment its chart rendered, the credentials of its
//! ServiceAccount (so the chart's RBAC is what it gets), and its ports moved
//! to free loopback ones, the Services it backs routed to them (network.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::control_plane::{ControlPlane, free_port};
use super::kube::{User, write_kubeconfig};
use super::network::Routes;
use crate::project::Project;
use crate::stack::process::Supervisor;
use crate::tools;

pub struct Controller {
    pub namespace: &'static str,
    pub deployment: &'static str,
    pub container: &'static str,
    /// The binary (a Go tool of this project).
    pub tool: &'static str,
    /// Flags whose value is a port (or `:port`) the process listens on.
    pub port_flags: &'static [&'static str],
    /// Listen-address flags the chart leaves at their defaults, set here to
    /// free loopback ports so that two controllers never collide.
    pub added_address_flags: &'static [&'static str],
    /// (Service, its port, the flag of the port it targets).
    pub serves: &'static [(&'static str, u16, &'static str)],
}

pub const CONTROLLERS: &[Controller] = &[
    Controller {
        namespace: "kyverno",
        deployment: "kyverno-admission-controller",
        container: "kyverno",
        tool: "kyverno-admission-controller",
        port_flags: &["--webhookServerPort", "--metricsPort", "--controllerRuntimeMetricsAddress", "--profilePort"],
        added_address_flags: &[],
        serves: &[("kyverno-svc", 443, "--webhookServerPort")],
    },
    Controller {
        namespace: "kyverno",
        deployment: "kyverno-reports-controller",
        container: "controller",
        tool: "kyverno-reports-controller",
        port_flags: &["--metricsPort", "--controllerRuntimeMetricsAddress", "--profilePort"],
        added_address_flags: &[],
        serves: &[],
    },
    Controller {
        namespace: "kyverno",
        deployment: "kyverno-background-controller",
        container: "controller",
        tool: "kyverno-background-controller",
        port_flags: &["--metricsPort", "--controllerRuntimeMetricsAddress", "--profilePort"],
        added_address_flags: &[],
        serves: &[],
    },
    Controller {
        namespace: "istio-system",
        deployment: "istiod",
        container: "discovery",
        tool: "pilot-discovery",
        port_flags: &["--monitoringAddr"],
        added_address_flags: &["--httpsAddr", "--httpAddr", "--grpcAddr", "--secureGRPCAddr"],
        serves: &[("istiod", 443, "--httpsAddr")],
    },
    Controller {
        namespace: "argo-rollouts",
        deployment: "argo-rollouts",
        container: "argo-rollouts",
        tool: "rollouts-controller",
        port_flags: &["--healthzPort", "--metricsPort"],
        added_address_flags: &[],
        serves: &[],
    },
];

/// Controllers of the platform that are not run here, why, and the kinds
/// of object they reconcile: those objects are applied (and reported) but
/// nothing acts on them.
pub const NOT_RUN: &[(&str, &str, &str, &[&str])] = &[
    (
        "monitoring",
        "kube-prometheus-stack-operator",
        "its admission webhook serves the certificate a Helm hook Job generates, and kwok's Jobs only complete",
        &[
            "prometheuses.monitoring.coreos.com",
            "alertmanagers.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
            "servicemonitors.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com",
        ],
    ),
    (
        "cnpg-system",
        "cloudnative-pg",
        "PostgreSQL instances need real pods (its operator talks to each instance manager)",
        &["clusters.postgresql.cnpg.io", "clusterimagecatalogs.postgresql.cnpg.io"],
    ),
];

/// Starts every controller whose Deployment exists and is not started yet;
/// returns the names started now.
pub fn start_ready(
    project: &Project,
    plane: &ControlPlane,
    supervisor: &mut Supervisor,
    routes: &Routes,
    started: &mut BTreeSet<&'static str>,
) -> Result<Vec<&'static str>> {
    let mut now = Vec::new();
    for controller in CONTROLLERS {
        if started.contains(controller.deployment) {
            continue;
        }
        let Ok(deployment) = plane.admin.get(&["deployment", controller.deployment, "-n", controller.namespace]) else {
            continue;
        };
        start(project, plane, supervisor, routes, controller, &deployment)
            .with_context(|| format!("cannot run {}/{}", controller.namespace, controller.deployment))?;
        started.insert(controller.deployment);
        now.push(controller.deployment);
    }
    Ok(now)
}

fn start(
    project: &Project,
    plane: &ControlPlane,
    supervisor: &mut Supervisor,
    routes: &Routes,
    controller: &Controller,
    deployment: &Value,
) -> Result<()> {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == controller.container)
        .with_context(|| format!("its pod has no container {}", controller.container))?;
    let account = pod["serviceAccountName"].as_str().unwrap_or("default");
    let pod_name = format!("{}-loopback", controller.deployment);

    let mut ports = BTreeMap::new();
    let mut args = Vec::new();
    for arg in container["args"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let (flag, value) = arg.split_once('=').unwrap_or((arg, ""));
        if controller.port_flags.contains(&flag) {
            let port = free_port()?;
            ports.insert(flag.to_string(), port);
            // `:8080` style values are addresses; the rest plain ports.
            let value = if value.contains(':') { format!("127.0.0.1:{port}") } else { port.to_string() };
            args.push(format!("{flag}={value}"));
        } else {
            args.push(arg.to_string());
        }
    }
    for flag in controller.added_address_flags {
        let port = free_port()?;
        ports.insert(flag.to_string(), port);
        args.push(format!("{flag}=127.0.0.1:{port}"));
    }
    for (service, port, flag) in controller.serves {
        let local =
            *ports.get(*flag).with_context(|| format!("the chart passes no {flag}, which {service} targets"))?;
        routes.add(controller.namespace, service, *port, local);
    }

    let token = plane.admin.run(&["create", "token", account, "-n", controller.namespace, "--duration=24h"])?;
    let kubeconfig = plane.dir.join(format!("{}.kubeconfig", controller.deployment));
    write_kubeconfig(&kubeconfig, &plane.server, &plane.pki.ca_cert, &User::Token(token.trim().to_string()))?;

    let home = plane.dir.join("home").join(controller.deployment);
    std::fs::create_dir_all(&home)?;
    let mut command = Command::new(tools::locate(project, controller.tool)?);
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap_or_default();
        if let Some(value) = env_value(plane, controller.namespace, &pod_name, account, variable)? {
            command.env(name, value);
        }
    }
    // After the chart's environment: its KUBECONFIG (istiod's remote-cluster
    // file) would point at a path that only exists in the pod. Paths the
    // program writes relative to its working folder land in `home`.
    command.env("KUBECONFIG", &kubeconfig).env("HOME", &home).current_dir(&home);
    // After the args: istiod's first arg is its subcommand.
    command.args(&args).arg(format!("--kubeconfig={}", kubeconfig.display()));
    let log = plane.dir.join("logs").join(format!("{}.log", controller.deployment));
    supervisor.spawn(controller.deployment, command, &log, Duration::from_secs(10))?;
    Ok(())
}

/// An `env` entry's value as the kubelet would give it.
fn env_value(
    plane: &ControlPlane,
    namespace: &str,
    pod: &str,
    account: &str,
    variable: &Value,
) -> Result<Option<String>> {
    if let Some(value) = variable["value"].as_str() {
        return Ok(Some(value.to_string()));
    }
    let from = &variable["valueFrom"];
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return Ok(Some(match path {
            "metadata.name" => pod.to_string(),
            "metadata.namespace" => namespace.to_string(),
            "spec.serviceAccountName" => account.to_string(),
            "spec.nodeName" => "worker-0".to_string(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_string(),
            other => bail!("env {}: fieldRef {other} is not modelled", variable["name"]),
        }));
    }
    for (kind, field) in [("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")] {
        let reference = &from[field];
        if let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str()) {
            let object = plane.admin.get(&[kind, name, "-n", namespace]);
            let value = object.ok().and_then(|o| o["data"][key].as_str().map(str::to_string));
            return Ok(match (value, kind) {
                (Some(v), "secret") => Some(String::from_utf8_lossy(&base64_decode(&v)?).into_owned()),
                (Some(v), _) => Some(v),
                (None, _) if reference["optional"] == true => None,
                (None, _) => bail!("env {}: {kind} {namespace}/{name} has no key {key}", variable["name"]),
            });
        }
    }
    // resourceFieldRef (GOMAXPROCS, GOMEMLIMIT from limits): the process is
    // not limited here, so the variable is left out.
    Ok(None)
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

//! The platform's controllers, run for real. kwok makes every pod Running
//! without running anything; for the Deployments whose work the platform
//! depends on (admission, policy reports, rollouts), the container is run
//! here as a process once Flux has installed its Deployment: with the args
//! and environment its chart rendered, the credentials of its
//! ServiceAccount (so the chart's RBAC is what it gets), and its ports moved
//! to free loopback ones, the Services it backs routed to them (network.rs).
//! Its pods become Ready only when the process passes the readiness probe
//! the chart gives them, as under a kubelet: kwok's pod-ready stage waits
//! for the annotation `SERVING` (control_plane.rs), set here once it does.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::control_plane::{ControlPlane, SERVING};
use super::kube::{User, write_kubeconfig};
use super::network::Routes;
use crate::project::Project;
use crate::stack::http;
use crate::stack::ports::free_port;
use crate::stack::ports::socket;
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
    /// Listen-address flags the chart leaves at their defaults (and those
    /// defaults' ports, which its probes name), set here to free loopback
    /// ports so that two controllers never collide.
    pub added_address_flags: &'static [(&'static str, u16)],
    /// (Service, its port, the flag of the port it targets).
    pub serves: &'static [(&'static str, u16, &'static str)],
    /// Calls Services by their DNS names (through the run's HTTP proxy).
    pub calls_services: bool,
    /// Whether the program takes `--kubeconfig` (else only `KUBECONFIG`).
    pub kubeconfig_flag: bool,
    /// Chart args left out here, each for a reason the table does not need:
    /// things only a pod has.
    pub dropped_args: &'static [&'static str],
    /// A webhook server whose certificate is provided from outside.
    pub webhook_certificate: Option<WebhookCertificate>,
    /// Where in its image the program finds its own binary, relative to its
    /// working folder (`{arch}` is Go's name of this machine's architecture).
    pub binary_in_image: Option<&'static str>,
}

/// A webhook certificate the program expects from outside: signed here by
/// the cluster CA for the Service, handed over as `given` says, and the CA
/// injected into the chart's webhook configurations, as a CA injector or the
/// chart's patch Job does. Until that is done the pods are not Ready.
pub struct WebhookCertificate {
    pub given: CertificateGiven,
    pub service: &'static str,
    pub configurations: &'static [(&'static str, &'static str)],
}

pub enum CertificateGiven {
    /// OLM's way: a folder named by an environment variable, holding these
    /// files (certificate, key).
    DirEnv { env: &'static str, files: (&'static str, &'static str) },
    /// A Secret that a Helm hook Job generates (kube-webhook-certgen: keys
    /// `ca`, `cert`, `key`) and the pod mounts; the flags name the mounted
    /// files. kwok completes Jobs without running them, so the run creates
    /// the Secret as the Job would (found from the volume mounted where the
    /// flag points) and points the flags at copies of its files.
    HookSecret { cert_flag: &'static str, key_flag: &'static str },
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
        // Its image checks call registries, which are on the internet.
        calls_services: false,
        kubeconfig_flag: true,
        dropped_args: &[],
        webhook_certificate: None,
        binary_in_image: None,
    },
    Controller {
        namespace: "kyverno",
        deployment: "kyverno-reports-controller",
        container: "controller",
        tool: "kyverno-reports-controller",
        port_flags: &["--metricsPort", "--controllerRuntimeMetricsAddress", "--profilePort"],
        added_address_flags: &[],
        serves: &[],
        calls_services: false,
        kubeconfig_flag: true,
        dropped_args: &[],
        webhook_certificate: None,
        binary_in_image: None,
    },
    Controller {
        namespace: "kyverno",
        deployment: "kyverno-background-controller",
        container: "controller",
        tool: "kyverno-background-controller",
        port_flags: &["--metricsPort", "--controllerRuntimeMetricsAddress", "--profilePort"],
        added_address_flags: &[],
        serves: &[],
        calls_services: false,
        kubeconfig_flag: true,
        dropped_args: &[],
        webhook_certificate: None,
        binary_in_image: None,
    },
    Controller {
        namespace: "istio-system",
        deployment: "istiod",
        container: "discovery",
        tool: "pilot-discovery",
        port_flags: &["--monitoringAddr"],
        added_address_flags: &[
            ("--httpsAddr", 15017),
            ("--httpAddr", 8080),
            ("--grpcAddr", 15010),
            ("--secureGRPCAddr", 15012),
        ],
        serves: &[("istiod", 443, "--httpsAddr")],
        calls_services: false,
        kubeconfig_flag: true,
        dropped_args: &[],
        webhook_certificate: None,
        binary_in_image: None,
    },
    Controller {
        namespace: "argo-rollouts",
        deployment: "argo-rollouts",
        container: "argo-rollouts",
        tool: "rollouts-controller",
        port_flags: &["--healthzPort", "--metricsPort"],
        added_address_flags: &[],
        serves: &[],
        // Its analysis queries Prometheus.
        calls_services: true,
        kubeconfig_flag: true,
        dropped_args: &[],
        webhook_certificate: None,
        binary_in_image: None,
    },
    Controller {
        namespace: "cnpg-system",
        deployment: "cloudnative-pg",
        container: "manager",
        tool: "cnpg-manager",
        port_flags: &["--webhook-port"],
        added_address_flags: &[("--metrics-bind-address", 8080)],
        serves: &[("cnpg-webhook-service", 443, "--webhook-port")],
        calls_services: false,
        // A cobra command: controller-runtime's Go flags are not on it.
        kubeconfig_flag: false,
        // controller-runtime finds the namespace of its leader-election
        // Lease only in the pod's service-account mount, which a process
        // does not have; one replica needs no election.
        dropped_args: &["--leader-elect"],
        // Its self-managed certificate reaches it as the kubelet mounts a
        // Secret, in a fixed folder; OLM's way (WEBHOOK_CERT_DIR) takes one
        // from outside instead, as here.
        webhook_certificate: Some(WebhookCertificate {
            given: CertificateGiven::DirEnv { env: "WEBHOOK_CERT_DIR", files: ("apiserver.crt", "apiserver.key") },
            service: "cnpg-webhook-service",
            configurations: &[
                ("mutatingwebhookconfiguration", "cnpg-mutating-webhook-configuration"),
                ("validatingwebhookconfiguration", "cnpg-validating-webhook-configuration"),
            ],
        }),
        // The image holds one manager per architecture; the operator lists
        // them to know which nodes it can run instances on, and without one
        // refuses every Cluster ("invalid architecture: amd64").
        binary_in_image: Some("operator/manager_{arch}"),
    },
    Controller {
        namespace: "monitoring",
        deployment: "kube-prometheus-stack-operator",
        container: "kube-prometheus-stack",
        tool: "prometheus-operator",
        port_flags: &["--web.listen-address"],
        added_address_flags: &[],
        // Its admission webhook (PrometheusRules, AlertmanagerConfigs) is
        // served on its web port.
        serves: &[("kube-prometheus-stack-operator", 443, "--web.listen-address")],
        calls_services: false,
        // No --kubeconfig flag; it reads KUBECONFIG.
        kubeconfig_flag: false,
        dropped_args: &[],
        webhook_certificate: Some(WebhookCertificate {
            given: CertificateGiven::HookSecret { cert_flag: "--web.cert-file", key_flag: "--web.key-file" },
            service: "kube-prometheus-stack-operator",
            configurations: &[
                ("validatingwebhookconfiguration", "kube-prometheus-stack-admission"),
                ("mutatingwebhookconfiguration", "kube-prometheus-stack-admission"),
            ],
        }),
        binary_in_image: None,
    },
];

/// Controllers of the platform that are not run here, why, and the kinds
/// of object they reconcile: those objects are applied (and reported) but
/// nothing acts on them. Every controller the environments install runs.
pub const NOT_RUN: &[(&str, &str, &str, &[&str])] = &[];

/// Objects a controller run here reconciles only in part, because what
/// they ask for needs real containers: (kind, why). The table gives each
/// one's state as its controller reports it, marked NOT RECONCILED.
pub const PARTLY_RECONCILED: &[(&str, &str)] = &[(
    "clusters.postgresql.cnpg.io",
    "the operator runs, but its PostgreSQL instances are kwok pods: no instance manager answers it",
)];

/// `namespace/deployment` of every controller run as a process: the pods
/// whose readiness the process decides.
pub fn process_backed() -> Vec<String> {
    CONTROLLERS.iter().map(|c| format!("{}/{}", c.namespace, c.deployment)).collect()
}

/// The supervisor's names of the controllers run as processes (they are
/// restarted when they exit, not fatal).
pub fn process_names() -> Vec<&'static str> {
    CONTROLLERS.iter().map(|c| c.deployment).collect()
}

/// The controllers started so far.
pub struct Running {
    started: Vec<Started>,
    /// The cluster's HTTP proxy (network::serve_http_proxy).
    http_proxy: u16,
}

struct Started {
    controller: &'static Controller,
    /// How to start the process again after it exits.
    launch: Launch,
    restarts: u32,
    /// When an exited process is started again (the kubelet's back-off).
    restart_at: Option<std::time::Instant>,
    /// The Deployment's pod selector, `key=value,...`.
    selector: String,
    readiness: Readiness,
    /// The CA still to inject into its webhook configurations.
    inject_ca: Option<String>,
    serving: bool,
}

/// The chart's readiness probe, moved to the process's loopback port.
#[derive(Debug, PartialEq)]
enum Readiness {
    Http {
        port: u16,
        path: String,
    },
    /// An HTTPS probe or a tcpSocket one: the kubelet verifies no
    /// certificate, so a listening port is what it would accept too.
    Tcp {
        port: u16,
    },
    /// No probe: Ready once started.
    None,
}

impl Readiness {
    fn passes(&self) -> bool {
        match self {
            Readiness::Http { port, path } => http::get(*port, path).is_ok_and(|r| (200..400).contains(&r.status)),
            Readiness::Tcp { port } => TcpStream::connect_timeout(&socket(*port), Duration::from_secs(1)).is_ok(),
            Readiness::None => true,
        }
    }
}

impl Running {
    pub fn new(http_proxy: u16) -> Self {
        Running { started: Vec::new(), http_proxy }
    }

    /// Starts every controller whose Deployment exists and is not started
    /// yet, and marks the pods of those that serve; returns the names of
    /// (process, what happened to it) this round.
    pub fn step(
        &mut self,
        project: &Project,
        plane: &ControlPlane,
        supervisor: &mut Supervisor,
        routes: &Routes,
    ) -> Result<Vec<(String, &'static str)>> {
        let mut now = Vec::new();
        for started in &mut self.started {
            let name = started.controller.deployment;
            if let Some((exited, status)) = supervisor.remove_exited(name) {
                started.restarts += 1;
                if started.restarts > MAX_RESTARTS {
                    bail!(
                        "{name} exited ({status}) {} times, CrashLoopBackOff; the end of its log:\n{}",
                        started.restarts,
                        exited.log_tail(20)
                    );
                }
                // 10 s, doubling, as the kubelet's back-off.
                let delay = Duration::from_secs(10 << (started.restarts - 1));
                started.restart_at = Some(std::time::Instant::now() + delay);
                started.serving = false;
                now.push((
                    format!("process {name}"),
                    "exited: started again after the kubelet's back-off (see its log)",
                ));
            }
            if started.restart_at.is_some_and(|at| std::time::Instant::now() >= at) {
                started.restart_at = None;
                started.launch.spawn(supervisor, name)?;
            }
        }
        for controller in CONTROLLERS {
            if self.started.iter().any(|s| s.controller.deployment == controller.deployment) {
                continue;
            }
            let Ok(deployment) = plane.admin.get(&["deployment", controller.deployment, "-n", controller.namespace])
            else {
                continue;
            };
            let proxy = controller.calls_services.then_some(self.http_proxy);
            let started = start(project, plane, supervisor, routes, controller, &deployment, proxy)
                .with_context(|| format!("cannot run {}/{}", controller.namespace, controller.deployment))?;
            self.started.push(started);
            now.push((format!("process {}", controller.deployment), "started from its Deployment"));
        }
        for started in &mut self.started {
            if let Some(ca) = &started.inject_ca
                && inject_ca(plane, started.controller, ca)?
            {
                started.inject_ca = None;
                now.push((
                    format!("process {}", started.controller.deployment),
                    "its webhook configurations trust its certificate",
                ));
            }
            if !started.serving
                && started.restart_at.is_none()
                && started.inject_ca.is_none()
                && started.readiness.passes()
            {
                started.serving = true;
                now.push((
                    format!("process {}", started.controller.deployment),
                    "passes its chart's readiness probe: its pods may be Ready",
                ));
            }
            if started.serving {
                // Every round: a pod the ReplicaSet creates later (a
                // rollout, an eviction) is served by the same process. A pod
                // deleted between kubectl's list and its patch is no error:
                // the next round marks what the ReplicaSet has now.
                let marked = plane.admin.run(&[
                    "annotate",
                    "pods",
                    "-n",
                    started.controller.namespace,
                    "-l",
                    &started.selector,
                    &format!("{SERVING}=true"),
                    "--overwrite",
                ]);
                if let Err(err) = marked
                    && !format!("{err:#}").contains("NotFound")
                {
                    return Err(err);
                }
            }
        }
        Ok(now)
    }
}

impl Running {
    /// Refusals of the controllers' own API calls (their chart's RBAC too
    /// narrow for what they do), from their logs: (controller, count, the
    /// first such line).
    pub fn forbidden(&self) -> Vec<(&'static str, usize, String)> {
        let mut found = Vec::new();
        for started in &self.started {
            let log = std::fs::read_to_string(&started.launch.log).unwrap_or_default();
            let mut lines = log.lines().filter(|l| l.contains("is forbidden: User \"system:serviceaccount:"));
            if let Some(first) = lines.next() {
                found.push((started.controller.deployment, 1 + lines.count(), first.to_string()));
            }
        }
        found
    }
}

fn start(
    project: &Project,
    plane: &ControlPlane,
    supervisor: &mut Supervisor,
    routes: &Routes,
    controller: &'static Controller,
    deployment: &Value,
    http_proxy: Option<u16>,
) -> Result<Started> {
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
    // The pod's port → the process's loopback port.
    let mut moved = BTreeMap::new();
    let mut args = Vec::new();
    for arg in container["args"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let (flag, value) = arg.split_once('=').unwrap_or((arg, ""));
        if controller.dropped_args.contains(&flag) {
            continue;
        }
        if controller.port_flags.contains(&flag) {
            let port = free_port()?;
            ports.insert(flag.to_string(), port);
            if let Some(Ok(original)) = value.rsplit(':').next().map(str::parse::<u16>) {
                moved.insert(original, port);
            }
            // `:8080` style values are addresses; the rest plain ports.
            let value = if value.contains(':') { format!("127.0.0.1:{port}") } else { port.to_string() };
            args.push(format!("{flag}={value}"));
        } else {
            args.push(arg.to_string());
        }
    }
    for (flag, default) in controller.added_address_flags {
        let port = free_port()?;
        ports.insert(flag.to_string(), port);
        moved.insert(*default, port);
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
    let program = tools::locate(project, controller.tool)?;
    if let Some(path) = controller.binary_in_image {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let link = home.join(path.replace("{arch}", arch));
        std::fs::create_dir_all(link.parent().expect("a relative path with a folder"))?;
        std::os::unix::fs::symlink(&program, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), program.display()))?;
    }
    let mut command = Command::new(&program);
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
    if let Some(port) = http_proxy {
        // Go never proxies loopback addresses: the API server stays direct.
        command.env("HTTP_PROXY", format!("http://127.0.0.1:{port}"));
    }
    let inject_ca = match &controller.webhook_certificate {
        Some(webhook) => Some(provide_certificate(plane, controller, webhook, pod, &home, &mut command, &mut args)?),
        None => None,
    };
    // After the args: istiod's first arg is its subcommand.
    command.args(&args);
    if controller.kubeconfig_flag {
        command.arg(format!("--kubeconfig={}", kubeconfig.display()));
    }
    let log = plane.dir.join("logs").join(format!("{}.log", controller.deployment));
    let launch = Launch { command, log };
    launch.spawn(supervisor, controller.deployment)?;

    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("its Deployment selects pods by no matchLabels")?
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Started {
        controller,
        launch,
        restarts: 0,
        restart_at: None,
        selector,
        readiness: readiness(container, &moved)?,
        inject_ca,
        serving: false,
    })
}

/// Restarts before a crashing controller fails the run.
const MAX_RESTARTS: u32 = 3;

/// A controller's command, kept to start it again.
struct Launch {
    command: Command,
    log: std::path::PathBuf,
}

impl Launch {
    fn spawn(&self, supervisor: &mut Supervisor, name: &str) -> Result<()> {
        let mut command = Command::new(self.command.get_program());
        command.args(self.command.get_args()).env_clear();
        for (key, value) in self.command.get_envs() {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        if let Some(dir) = self.command.get_current_dir() {
            command.current_dir(dir);
        }
        supervisor.spawn(name, command, &self.log, Duration::from_secs(10))?;
        Ok(())
    }
}

/// Signs the webhook server's certificate for its Service and points the
/// program at it; returns the CA (base64) its webhook configurations need.
fn provide_certificate(
    plane: &ControlPlane,
    controller: &Controller,
    webhook: &WebhookCertificate,
    pod: &Value,
    home: &std::path::Path,
    command: &mut Command,
    args: &mut Vec<String>,
) -> Result<String> {
    use base64::Engine as _;
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let service = format!("{}.{}.svc", webhook.service, controller.namespace);
    let names = [service.clone(), format!("{service}.cluster.local")];
    let (cert, key) = plane.pki.serving_certificate(webhook.service, &names)?;
    let ca = std::fs::read(&plane.pki.ca_cert)?;
    let dir = home.join("webhook-certificate");
    std::fs::create_dir_all(&dir)?;
    match webhook.given {
        CertificateGiven::DirEnv { env, files } => {
            std::fs::copy(&cert, dir.join(files.0))?;
            std::fs::copy(&key, dir.join(files.1))?;
            command.env(env, &dir);
        }
        CertificateGiven::HookSecret { cert_flag, key_flag } => {
            let flag_value = |flag: &str| {
                args.iter()
                    .find_map(|a| a.strip_prefix(flag).and_then(|v| v.strip_prefix('=')))
                    .map(str::to_string)
                    .with_context(|| format!("the chart passes no {flag}"))
            };
            let (cert_path, key_path) = (flag_value(cert_flag)?, flag_value(key_flag)?);
            let secret = mounted_secret(pod, &cert_path)?;
            let file_name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
            let (cert_key, key_key) = (file_name(&cert_path), file_name(&key_path));
            let mut data = serde_json::Map::new();
            data.insert("ca".into(), base64(&ca).into());
            data.insert(cert_key.clone(), base64(&std::fs::read(&cert)?).into());
            data.insert(key_key.clone(), base64(&std::fs::read(&key)?).into());
            let manifest = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": controller.namespace},
                "data": data,
            });
            plane.admin.apply(&manifest.to_string(), "kube-webhook-certgen")?;
            std::fs::copy(&cert, dir.join(&cert_key))?;
            std::fs::copy(&key, dir.join(&key_key))?;
            args.retain(|a| !a.starts_with(&format!("{cert_flag}=")) && !a.starts_with(&format!("{key_flag}=")));
            args.push(format!("{cert_flag}={}", dir.join(&cert_key).display()));
            args.push(format!("{key_flag}={}", dir.join(&key_key).display()));
        }
    }
    Ok(base64(&ca))
}

/// The Secret behind the volume a container mounts where `path` lies.
fn mounted_secret(pod: &Value, path: &str) -> Result<String> {
    let mounts = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten());
    let volume = mounts
        .filter(|m| {
            m["mountPath"].as_str().is_some_and(|dir| path.starts_with(&format!("{}/", dir.trim_end_matches('/'))))
        })
        .find_map(|m| m["name"].as_str())
        .with_context(|| format!("no volume is mounted where {path} lies"))?;
    pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == volume)
        .and_then(|v| v["secret"]["secretName"].as_str())
        .map(str::to_string)
        .with_context(|| format!("the volume {volume} (with {path}) is not a Secret"))
}

/// Sets the CA bundle of every webhook in the controller's webhook
/// configurations, as a CA injector does; false while one of them is not
/// created yet (Helm creates them after the Deployment).
fn inject_ca(plane: &ControlPlane, controller: &Controller, ca: &str) -> Result<bool> {
    let Some(webhook) = &controller.webhook_certificate else { return Ok(true) };
    for (kind, name) in webhook.configurations {
        let Ok(configuration) = plane.admin.get(&[kind, name]) else { return Ok(false) };
        let count = configuration["webhooks"].as_array().map_or(0, Vec::len);
        let patch: Vec<Value> = (0..count)
            .map(|i| serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": ca}))
            .collect();
        plane.admin.run(&["patch", kind, name, "--type=json", "-p", &serde_json::to_string(&patch)?])?;
    }
    Ok(true)
}

/// The container's readiness probe, its port moved as its flags were.
fn readiness(container: &Value, moved: &BTreeMap<u16, u16>) -> Result<Readiness> {
    let probe = &container["readinessProbe"];
    let (action, scheme) = if probe["httpGet"].is_object() {
        (&probe["httpGet"], probe["httpGet"]["scheme"].as_str().unwrap_or("HTTP"))
    } else if probe["tcpSocket"].is_object() {
        (&probe["tcpSocket"], "TCP")
    } else {
        return Ok(Readiness::None);
    };
    // A named port is one of the container's.
    let number = match &action["port"] {
        Value::String(name) => container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .with_context(|| format!("its readiness probe names port {name}, which the container does not declare"))?,
        other => other.as_u64().context("its readiness probe has no port")?,
    };
    let number = u16::try_from(number)?;
    let port = *moved.get(&number).with_context(|| {
        format!("its readiness probe targets port {number}, which no flag in port_flags or added_address_flags moves")
    })?;
    Ok(match scheme {
        "HTTP" => Readiness::Http { port, path: action["path"].as_str().unwrap_or("/").to_string() },
        _ => Readiness::Tcp { port },
    })
}

/// An `env` entry's value as the kubelet would give it.
pub(super) fn env_value(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_named_https_probe_becomes_a_port_check_on_the_moved_port() {
        let container = json!({
            "ports": [{"name": "https", "containerPort": 9443}],
            "readinessProbe": {"httpGet": {"path": "/health/readiness", "port": "https", "scheme": "HTTPS"}},
        });
        let moved = BTreeMap::from([(9443, 40001)]);
        assert_eq!(readiness(&container, &moved).unwrap(), Readiness::Tcp { port: 40001 });
    }

    #[test]
    fn an_http_probe_keeps_its_path() {
        let container = json!({"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}});
        let moved = BTreeMap::from([(8080, 40002)]);
        assert_eq!(readiness(&container, &moved).unwrap(), Readiness::Http { port: 40002, path: "/ready".into() });
        assert_eq!(readiness(&json!({}), &moved).unwrap(), Readiness::None);
    }

    #[test]
    fn a_certificate_flag_is_traced_to_the_secret_mounted_there() {
        let pod = json!({
            "containers": [{"volumeMounts": [{"name": "tls-secret", "mountPath": "/cert"}]}],
            "volumes": [{"name": "tls-secret", "secret": {"secretName": "kube-prometheus-stack-admission"}}],
        });
        assert_eq!(mounted_secret(&pod, "/cert/cert").unwrap(), "kube-prometheus-stack-admission");
        let err = mounted_secret(&pod, "/certs/cert").unwrap_err();
        assert!(err.to_string().contains("no volume is mounted where /certs/cert lies"), "{err}");
    }

    #[test]
    fn a_probe_on_a_port_no_flag_moves_is_refused_by_name() {
        let container = json!({"readinessProbe": {"tcpSocket": {"port": 9090}}});
        let err = readiness(&container, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("targets port 9090, which no flag"), "{err}");
        let container = json!({"readinessProbe": {"httpGet": {"port": "metrics"}}});
        let err = readiness(&container, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("names port metrics"), "{err}");
    }
}

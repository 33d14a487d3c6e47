//! etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on
//! loopback, each in its own process group with its log in the run folder.
//!
//! kwok plays the kubelets: nodes shaped like the environment's (a tainted
//! control plane and zoned workers, as infra/modules/cluster-topology has
//! them) whose pods become Running and Ready without containers. The API
//! server's "cluster" egress (webhooks and other calls to Services) goes
//! through [`super::network`], which is the cluster network of this run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::kube::{Kube, User, write_kubeconfig};
use super::pki::{self, Pki};
use crate::project::Project;
use crate::stack::ports::free_port;
use crate::stack::process::{Supervisor, poll_until};
use crate::tools;

/// The Service range; `kubernetes.default` is its first address.
pub const SERVICE_RANGE: &str = "10.96.0.0/16";

pub struct ControlPlane {
    pub dir: PathBuf,
    pub pki: Pki,
    pub server: String,
    /// The admin kubeconfig (`system:masters`).
    pub admin: Kube,
    pub egress_socket: PathBuf,
}

fn tool(project: &Project, name: &str) -> Result<PathBuf> {
    tools::locate(project, name)
}

/// The annotation a pod of a process-run controller gets once the process
/// passes its readiness probe; kwok makes the pod Ready only then.
pub const SERVING: &str = "loopback.demo-platform.dev/serving";

/// Starts etcd, the API server, the controller manager, the scheduler and
/// kwok; `process_backed` (`namespace/deployment`) are the pods whose
/// readiness a process decides (see `SERVING`).
pub fn start(
    project: &Project,
    supervisor: &mut Supervisor,
    dir: &Path,
    workers: &[Worker],
    process_backed: &[String],
) -> Result<ControlPlane> {
    let pki = pki::generate(&tool(project, "openssl")?, &dir.join("pki"))?;
    let logs = dir.join("logs");
    let grace = Duration::from_secs(10);

    let (etcd_client, etcd_peer) = (free_port()?, free_port()?);
    let mut etcd = Command::new(tool(project, "etcd")?);
    let client_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    etcd.arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--name", "loopback", "--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("loopback={peer_url}"), "--listen-metrics-urls", ""])
        // A throw-away cluster: durability would only cost time.
        .args(["--unsafe-no-fsync", "--log-level", "warn"]);
    supervisor.spawn("etcd", etcd, &logs.join("etcd.log"), grace)?;

    let egress_socket = dir.join("egress.sock");
    let egress_config = dir.join("egress-selector.yaml");
    fs::write(
        &egress_config,
        format!(
            "apiVersion: apiserver.k8s.io/v1beta1\nkind: EgressSelectorConfiguration\negressSelections:\n\
             - name: cluster\n  connection:\n    proxyProtocol: HTTPConnect\n    transport:\n      uds:\n        \
             udsName: {}\n",
            egress_socket.display()
        ),
    )?;
    let apiserver_port = free_port()?;
    let server = format!("https://127.0.0.1:{apiserver_port}");
    let mut apiserver = Command::new(tool(project, "kube-apiserver")?);
    apiserver
        .args(["--etcd-servers", &client_url, "--bind-address", "127.0.0.1"])
        .arg(format!("--secure-port={apiserver_port}"))
        .arg("--tls-cert-file")
        .arg(&pki.apiserver_cert)
        .arg("--tls-private-key-file")
        .arg(&pki.apiserver_key)
        .arg("--client-ca-file")
        .arg(&pki.ca_cert)
        .arg("--service-account-key-file")
        .arg(&pki.service_account_pub)
        .arg("--service-account-signing-key-file")
        .arg(&pki.service_account_key)
        .args(["--service-account-issuer", "https://kubernetes.default.svc.cluster.local"])
        .args(["--service-cluster-ip-range", SERVICE_RANGE, "--authorization-mode", "Node,RBAC"])
        // istio-cni's node agent is privileged, as on any cluster.
        .args(["--allow-privileged=true", "--profiling=false"])
        // The aggregation layer's client CA (no front proxy runs; without it
        // every component logs that the CA bundle is missing).
        .arg("--requestheader-client-ca-file")
        .arg(&pki.ca_cert)
        .args(["--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User"])
        .args(["--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-"])
        .arg("--egress-selector-config-file")
        .arg(&egress_config);
    supervisor.spawn("kube-apiserver", apiserver, &logs.join("kube-apiserver.log"), grace)?;

    let admin_config = dir.join("admin.kubeconfig");
    write_kubeconfig(
        &admin_config,
        &server,
        &pki.ca_cert,
        &User::Certificate { cert: pki.admin_cert.clone(), key: pki.admin_key.clone() },
    )?;
    let admin = Kube { kubectl: tool(project, "kubectl")?, kubeconfig: admin_config.clone() };
    poll_until("the API server to be ready", Duration::from_secs(60), Duration::from_millis(200), |last| match admin
        .run(&["get", "--raw", "/readyz"])
    {
        Ok(text) if text.trim() == "ok" => Ok(Some(())),
        Ok(text) => {
            *last = text;
            Ok(None)
        }
        Err(err) => {
            *last = format!("{err:#}");
            Ok(None)
        }
    })?;

    let kubeconfig = admin_config.display().to_string();
    let mut manager = Command::new(tool(project, "kube-controller-manager")?);
    manager
        .args(["--kubeconfig", &kubeconfig, "--authentication-kubeconfig", &kubeconfig])
        .args(["--authorization-kubeconfig", &kubeconfig, "--bind-address", "127.0.0.1"])
        .arg(format!("--secure-port={}", free_port()?))
        .arg("--service-account-private-key-file")
        .arg(&pki.service_account_key)
        .arg("--root-ca-file")
        .arg(&pki.ca_cert)
        .args(["--use-service-account-credentials=true", "--leader-elect=false"])
        .args(["--service-cluster-ip-range", SERVICE_RANGE]);
    supervisor.spawn("kube-controller-manager", manager, &logs.join("kube-controller-manager.log"), grace)?;

    let mut scheduler = Command::new(tool(project, "kube-scheduler")?);
    scheduler
        .args(["--kubeconfig", &kubeconfig, "--authentication-kubeconfig", &kubeconfig])
        .args(["--authorization-kubeconfig", &kubeconfig, "--bind-address", "127.0.0.1"])
        .arg(format!("--secure-port={}", free_port()?))
        .arg("--leader-elect=false");
    supervisor.spawn("kube-scheduler", scheduler, &logs.join("kube-scheduler.log"), grace)?;

    let stages = dir.join("kwok-stages.yaml");
    fs::write(&stages, kwok_stages(project, process_backed)?)?;
    let mut kwok = Command::new(tool(project, "kwok")?);
    kwok.args(["--kubeconfig", &kubeconfig, "--manage-all-nodes=false"])
        .args(["--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake"])
        .arg("--config")
        .arg(&stages)
        // Shorter than the controller manager's grace period, or it marks
        // the nodes NotReady and evicts every pod.
        .args(["--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16", "--node-ip=10.240.0.1"])
        .arg(format!("--server-address=127.0.0.1:{}", free_port()?));
    supervisor.spawn("kwok", kwok, &logs.join("kwok.log"), grace)?;

    let plane = ControlPlane { dir: dir.to_path_buf(), pki, server, admin, egress_socket };
    plane.admin.apply(&nodes(workers), "loopback-bootstrap")?;
    Ok(plane)
}

/// A worker node: its zone (topology spread and anti-affinity select on it).
pub struct Worker {
    pub zone: String,
}

/// Capacity per node: enough that every request of the platform fits.
const NODE_CPU: &str = "16";
const NODE_MEMORY: &str = "64Gi";

fn nodes(workers: &[Worker]) -> String {
    let node = |name: &str, labels: serde_json::Value, taints: serde_json::Value| {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": taints},
            "status": {
                "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "250"},
                "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "250"},
            },
        })
    };
    let os_labels = |name: &str| {
        json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
               "type": "kwok"})
    };
    let mut items = Vec::new();
    let mut labels = os_labels("control-plane");
    labels["node-role.kubernetes.io/control-plane"] = json!("");
    labels["ingress-ready"] = json!("true");
    items.push(node(
        "control-plane",
        labels,
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    ));
    for (i, worker) in workers.iter().enumerate() {
        let name = format!("worker-{i}");
        let mut labels = os_labels(&name);
        labels["topology.kubernetes.io/zone"] = json!(worker.zone);
        items.push(node(&name, labels, json!([])));
    }
    serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items})).expect("nodes serialise")
}

/// kwok's own stages from its module: nodes that initialise and renew their
/// lease, pods that are created, run their init containers, become Ready,
/// complete (Jobs) and are deleted. The general pod stages, in their order,
/// but without the latency they simulate (1 to 6 s a stage, image pulls and
/// container starts that do not happen here): with it, each Helm wait and
/// each canary step waited on dice, 2 to 24 s a pod (see `without_latency`).
/// Their pod-ready stage is split in two: a pod of a controller this run
/// runs as a process (workloads.rs) becomes Ready when the process passes
/// its readiness probe, as under a kubelet, and not on kwok's clock: else
/// Flux's first apply of the policies met Kyverno's webhook before it
/// listened (measured 2026-12-02, and failed CI once).
fn kwok_stages(project: &Project, process_backed: &[String]) -> Result<String> {
    let module = tools::module_source(project, "kwok")?;
    let stage = module.join("kustomize/stage");
    let files = [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/general/pod-create.yaml",
        "pod/general/pod-init-container-running.yaml",
        "pod/general/pod-init-container-completed.yaml",
        "pod/general/pod-ready.yaml",
        "pod/general/pod-complete.yaml",
        "pod/general/pod-delete.yaml",
    ];
    let mut stages = Vec::new();
    for file in files {
        let path = stage.join(file);
        let text = fs::read_to_string(&path).with_context(|| format!("kwok stage {} is missing", path.display()))?;
        let stage: Value =
            serde_norway::from_str(&text).with_context(|| format!("kwok stage {} is not YAML", path.display()))?;
        let stage = if file.starts_with("pod/") { without_latency(stage) } else { stage };
        if file.ends_with("pod-ready.yaml") {
            stages.extend(split_pod_ready(stage, process_backed)?);
        } else {
            stages.push(stage);
        }
    }
    let mut text = String::new();
    for stage in stages {
        text.push_str("---\n");
        text.push_str(&serde_norway::to_string(&stage)?);
    }
    Ok(text)
}

/// A pod stage's fixed and random delay taken out. A pod that asks for a
/// delay by annotation still gets it, and deletion still waits for the
/// pod's grace period (its random part runs to `deletionTimestamp`).
fn without_latency(mut stage: Value) -> Value {
    if let Some(delay) = stage.pointer_mut("/spec/delay").and_then(Value::as_object_mut) {
        delay.insert("durationMilliseconds".into(), json!(0));
        delay.remove("jitterDurationMilliseconds");
    }
    stage
}

/// The Deployment a pod belongs to, as `namespace/name`, in kwok's
/// selector language (jq): a ReplicaSet's pods are generated from
/// `<deployment>-<template hash>-`.
const POD_DEPLOYMENT: &str = r#".metadata.namespace + "/" + ((.metadata.generateName // "") | sub("-[^-]+-$"; ""))"#;

/// kwok's pod-ready stage for every pod but the process-backed ones, and a
/// copy for those that also waits for `SERVING` (no delay: the probe
/// already passed).
fn split_pod_ready(stage: Value, backed: &[String]) -> Result<[Value; 2]> {
    let mut others = stage.clone();
    let expressions = |stage: &mut Value| -> Result<Vec<Value>> {
        stage["spec"]["selector"]["matchExpressions"]
            .as_array_mut()
            .map(std::mem::take)
            .context("kwok's pod-ready stage selects by no matchExpressions")
    };
    let mut selected = expressions(&mut others)?;
    selected.push(json!({"key": POD_DEPLOYMENT, "operator": "NotIn", "values": backed}));
    others["spec"]["selector"]["matchExpressions"] = json!(selected);

    let mut served = stage;
    let mut selected = expressions(&mut served)?;
    selected.push(json!({"key": POD_DEPLOYMENT, "operator": "In", "values": backed}));
    selected.push(json!({"key": format!(".metadata.annotations[\"{}\"]", SERVING), "operator": "Exists"}));
    served["spec"]["selector"]["matchExpressions"] = json!(selected);
    served["metadata"]["name"] = json!("pod-ready-when-served");
    served["spec"]["delay"] = json!({"durationMilliseconds": 0});
    Ok([others, served])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_process_backed_pods_wait_for_their_process() {
        let stage = json!({
            "metadata": {"name": "pod-ready"},
            "spec": {
                "selector": {"matchExpressions": [{"key": ".status.phase", "operator": "In", "values": ["Pending"]}]},
                "delay": {"durationMilliseconds": 1000, "jitterDurationMilliseconds": 5000},
            },
        });
        let process_backed = vec!["kyverno/kyverno-admission-controller".to_string()];
        let [others, served] = split_pod_ready(stage, &process_backed).unwrap();
        let backed = json!(process_backed);

        let expressions = &others["spec"]["selector"]["matchExpressions"];
        assert_eq!(expressions[0]["key"], ".status.phase");
        assert_eq!(expressions[1], json!({"key": POD_DEPLOYMENT, "operator": "NotIn", "values": backed}));
        assert_eq!(others["metadata"]["name"], "pod-ready");

        let expressions = &served["spec"]["selector"]["matchExpressions"];
        assert_eq!(expressions[1]["operator"], "In");
        assert_eq!(expressions[2]["key"], format!(".metadata.annotations[\"{}\"]", SERVING));
        assert_eq!(expressions[2]["operator"], "Exists");
        assert_eq!(served["metadata"]["name"], "pod-ready-when-served");
        assert_eq!(served["spec"]["delay"], json!({"durationMilliseconds": 0}));
    }

    #[test]
    fn pod_stages_keep_asked_delays_and_the_grace_period_only() {
        let from = |key: &str| json!({"expressionFrom": key});
        let stage = json!({"spec": {"delay": {
            "durationMilliseconds": 1000, "durationFrom": from("delay"),
            "jitterDurationMilliseconds": 5000, "jitterDurationFrom": from(".metadata.deletionTimestamp"),
        }}});
        assert_eq!(
            without_latency(stage)["spec"]["delay"],
            json!({"durationMilliseconds": 0, "durationFrom": from("delay"), "jitterDurationFrom": from(".metadata.deletionTimestamp")})
        );
        assert_eq!(without_latency(json!({"spec": {}})), json!({"spec": {}}));
    }
}

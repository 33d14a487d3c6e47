//! The pods operators create from custom resources, where their shape is
//! known, so that admission (sidecar injection, the policies, the Pod
//! Security level) and the network checks judge them like any other pod.
//! CloudNativePG: one Pod per instance of a `Cluster`, shaped as operator
//! 1.30 builds it (the instance manager as an init container from the
//! operator's image, PostgreSQL from `imageName` or the image catalog, the
//! Cluster's resources and inherited metadata, the operator's default
//! security context and probes on the status port). The Prometheus
//! Operator: the first Pod of each `Prometheus` and `Alertmanager`, with
//! the CR's image, resources, security context, pod metadata, volumes and
//! storage, the operator's config reloader, and the Secrets it generates.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::flux::{Environment, Origin, Unit};

/// Adds the operator-created pods to `env`; returns how many.
pub fn add(env: &mut Environment) -> Result<usize> {
    let docs: Vec<&Value> = env.docs().collect();
    let operator_image = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["namespace"] == "cnpg-system")
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .map(str::to_string);
    let clusters: Vec<Value> = docs
        .iter()
        .filter(|d| {
            d["kind"] == "Cluster" && d["apiVersion"].as_str().is_some_and(|a| a.starts_with("postgresql.cnpg.io/"))
        })
        .map(|d| (*d).clone())
        .collect();
    let mut pods = Vec::new();
    for cluster in &clusters {
        let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = cluster["metadata"]["namespace"].as_str().unwrap_or("default");
        let operator_image = operator_image.clone().with_context(|| {
            format!("{}: Cluster {namespace}/{name} but no CloudNativePG operator is applied", env.name)
        })?;
        let image = postgres_image(cluster, &docs).with_context(|| {
            format!("{}: Cluster {namespace}/{name}: its PostgreSQL image resolves to nothing", env.name)
        })?;
        for instance in 1..=cluster["spec"]["instances"].as_u64().unwrap_or(1) {
            pods.push(instance_pod(cluster, instance, &image, &operator_image));
        }
    }
    let reloader = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" && d["metadata"]["namespace"] == "monitoring")
        .flat_map(|d| d["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten())
        .flat_map(|c| c["args"].as_array().into_iter().flatten())
        .find_map(|a| a.as_str().and_then(|a| a.strip_prefix("--prometheus-config-reloader=")))
        .map(str::to_string);
    for cr in docs.iter().filter(|d| is_monitoring(d, "Prometheus") || is_monitoring(d, "Alertmanager")) {
        let reloader = reloader.clone().with_context(|| {
            format!(
                "{}: {} {} but no Prometheus Operator names its config reloader",
                env.name, cr["kind"], cr["metadata"]["name"]
            )
        })?;
        pods.push(monitoring_pod(cr, &reloader));
    }
    let count = pods.len();
    if count > 0 {
        env.units.push(Unit { origin: Origin::Kustomization { name: "pods created by operators".into() }, docs: pods });
    }
    Ok(count)
}

pub fn is_monitoring(doc: &Value, kind: &str) -> bool {
    doc["kind"] == kind && doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("monitoring.coreos.com/"))
}

/// The Secrets the Prometheus Operator generates for a Prometheus or an
/// Alertmanager (configuration, TLS assets, web configuration).
pub fn monitoring_secrets(cr: &Value) -> Vec<String> {
    let name = cr["metadata"]["name"].as_str().unwrap_or_default();
    let (prefix, config) = if cr["kind"] == "Prometheus" {
        ("prometheus", format!("prometheus-{name}"))
    } else {
        ("alertmanager", format!("alertmanager-{name}-generated"))
    };
    vec![config, format!("{prefix}-{name}-tls-assets-0"), format!("{prefix}-{name}-web-config")]
}

fn monitoring_pod(cr: &Value, reloader: &str) -> Value {
    let name = cr["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &cr["spec"];
    let (app, port, data) = if cr["kind"] == "Prometheus" {
        ("prometheus", 9090, "/prometheus")
    } else {
        ("alertmanager", 9093, "/alertmanager")
    };
    let mut labels =
        if spec["podMetadata"]["labels"].is_object() { spec["podMetadata"]["labels"].clone() } else { json!({}) };
    for (key, value) in [
        ("app.kubernetes.io/name", app),
        ("app.kubernetes.io/instance", name),
        ("app.kubernetes.io/managed-by", "prometheus-operator"),
        (app, name),
    ] {
        labels[key] = json!(value);
    }
    let annotations = if spec["podMetadata"]["annotations"].is_object() {
        spec["podMetadata"]["annotations"].clone()
    } else {
        json!({})
    };
    let security =
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true});
    let secrets = monitoring_secrets(cr);
    let data_volume = match &spec["storage"]["volumeClaimTemplate"] {
        Value::Object(_) => {
            json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{app}-{name}-db-{app}-{name}-0")}})
        }
        _ => json!({"name": "data", "emptyDir": {}}),
    };
    let mut volumes = vec![
        json!({"name": "config", "secret": {"secretName": secrets[0]}}),
        json!({"name": "tls-assets", "projected": {"sources": [{"secret": {"name": secrets[1]}}]}}),
        json!({"name": "web-config", "secret": {"secretName": secrets[2]}}),
        json!({"name": "config-out", "emptyDir": {"medium": "Memory"}}),
        data_volume,
    ];
    volumes.extend(spec["volumes"].as_array().cloned().unwrap_or_default());
    let mut mounts = vec![
        json!({"name": "config-out", "mountPath": format!("/etc/{app}/config_out"), "readOnly": true}),
        json!({"name": "tls-assets", "mountPath": format!("/etc/{app}/certs"), "readOnly": true}),
        json!({"name": "web-config", "mountPath": format!("/etc/{app}/web_config"), "readOnly": true}),
        json!({"name": "data", "mountPath": data}),
    ];
    mounts.extend(spec["volumeMounts"].as_array().cloned().unwrap_or_default());
    let reloader_container = |container: &str| {
        json!({
            "name": container,
            "image": reloader,
            "resources": {"requests": {"cpu": "10m", "memory": "50Mi"}, "limits": {"cpu": "10m", "memory": "50Mi"}},
            "securityContext": security,
            "volumeMounts": [
                {"name": "config", "mountPath": format!("/etc/{app}/config")},
                {"name": "config-out", "mountPath": format!("/etc/{app}/config_out")},
            ],
        })
    };
    let image = spec["image"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("quay.io/prometheus/{app}:{}", spec["version"].as_str().unwrap_or_default()));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("{app}-{name}-0"), "namespace": cr["metadata"]["namespace"], "labels": labels, "annotations": annotations},
        "spec": {
            "serviceAccountName": spec["serviceAccountName"],
            "securityContext": spec["securityContext"],
            "initContainers": [reloader_container("init-config-reloader")],
            "containers": [
                {
                    "name": app,
                    "image": image,
                    "ports": [{"name": "http-web", "containerPort": port, "protocol": "TCP"}],
                    "resources": spec["resources"],
                    "securityContext": security,
                    "livenessProbe": {"httpGet": {"path": "/-/healthy", "port": "http-web"}},
                    "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "http-web"}},
                    "volumeMounts": mounts,
                },
                reloader_container("config-reloader"),
            ],
            "volumes": volumes,
        },
    })
}

/// `spec.imageName`, or the image of the catalog entry `imageCatalogRef` names.
fn postgres_image(cluster: &Value, docs: &[&Value]) -> Option<String> {
    if let Some(image) = cluster["spec"]["imageName"].as_str() {
        return Some(image.to_string());
    }
    let reference = &cluster["spec"]["imageCatalogRef"];
    let catalog = docs.iter().find(|d| {
        d["kind"] == reference["kind"]
            && d["metadata"]["name"] == reference["name"]
            && (reference["kind"] == "ClusterImageCatalog"
                || d["metadata"]["namespace"] == cluster["metadata"]["namespace"])
    })?;
    catalog["spec"]["images"]
        .as_array()?
        .iter()
        .find(|i| i["major"] == reference["major"])
        .and_then(|i| i["image"].as_str())
        .map(str::to_string)
}

fn instance_pod(cluster: &Value, instance: u64, image: &str, operator_image: &str) -> Value {
    let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
    let pod_name = format!("{name}-{instance}");
    let inherited = &cluster["spec"]["inheritedMetadata"];
    let mut labels = if inherited["labels"].is_object() { inherited["labels"].clone() } else { json!({}) };
    let role = if instance == 1 { "primary" } else { "replica" };
    for (key, value) in [
        ("cnpg.io/cluster", name),
        ("cnpg.io/instanceName", pod_name.as_str()),
        ("cnpg.io/podRole", "instance"),
        ("cnpg.io/instanceRole", role),
        ("role", role),
    ] {
        labels[key] = json!(value);
    }
    let annotations = if inherited["annotations"].is_object() { inherited["annotations"].clone() } else { json!({}) };
    let security = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    let resources = cluster["spec"]["resources"].clone();
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": 8000, "scheme": "HTTPS"}, "periodSeconds": 10});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": cluster["metadata"]["namespace"], "labels": labels, "annotations": annotations},
        "spec": {
            "serviceAccountName": name,
            "securityContext": {
                "runAsUser": 26, "runAsGroup": 26, "fsGroup": 26, "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [{
                "name": "bootstrap-controller",
                "image": operator_image,
                "command": ["/manager", "bootstrap", "/controller/manager"],
                "resources": resources,
                "securityContext": security,
                "volumeMounts": [{"name": "scratch-data", "mountPath": "/controller"}],
            }],
            "containers": [{
                "name": "postgres",
                "image": image,
                "command": ["/controller/manager", "instance", "run"],
                "ports": [
                    {"name": "postgresql", "containerPort": 5432, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9187, "protocol": "TCP"},
                    {"name": "status", "containerPort": 8000, "protocol": "TCP"},
                ],
                "resources": resources,
                "securityContext": security,
                "startupProbe": probe("/startupz"),
                "livenessProbe": probe("/healthz"),
                "readinessProbe": probe("/readyz"),
                "volumeMounts": [
                    {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"},
                    {"name": "scratch-data", "mountPath": "/run"},
                    {"name": "scratch-data", "mountPath": "/controller"},
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
            }],
            "volumes": [
                {"name": "pgdata", "persistentVolumeClaim": {"claimName": pod_name}},
                {"name": "scratch-data", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pod_per_instance_with_the_catalog_image_and_inherited_metadata() {
        let docs = vec![
            json!({"kind": "Deployment", "metadata": {"name": "cnpg", "namespace": "cnpg-system"},
                   "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0"}]}}}}),
            json!({"kind": "ClusterImageCatalog", "metadata": {"name": "pg"},
                   "spec": {"images": [{"major": 17, "image": "ghcr.io/cloudnative-pg/postgresql:17.6"}]}}),
            json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "db", "namespace": "app"},
                   "spec": {"instances": 2, "imageCatalogRef": {"kind": "ClusterImageCatalog", "name": "pg", "major": 17},
                            "inheritedMetadata": {"labels": {"app.kubernetes.io/name": "postgresql"}}}}),
        ];
        let mut env = Environment {
            name: "staging".into(),
            units: vec![Unit { origin: Origin::Kustomization { name: "apps".into() }, docs }],
        };
        assert_eq!(add(&mut env).unwrap(), 2);
        let pod = &env.units[1].docs[1];
        assert_eq!(pod["metadata"]["name"], "db-2");
        assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "postgresql");
        assert_eq!(pod["metadata"]["labels"]["role"], "replica");
        assert_eq!(pod["spec"]["containers"][0]["image"], "ghcr.io/cloudnative-pg/postgresql:17.6");
    }
}

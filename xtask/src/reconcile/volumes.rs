//! The cluster's storage provisioner. kwok has no kubelet to mount volumes,
//! and no CSI driver runs here, so a PersistentVolumeClaim (Loki's, the
//! Prometheus volumeClaimTemplate of staging and production) would stay
//! Pending and its StatefulSet's pod unscheduled. As kind's
//! local-path-provisioner does, each Pending claim gets a hostPath volume of
//! the size, access modes, mode and class it asks for, bound to it by the
//! controller manager's binder (the claim's `claimRef`).

use anyhow::Result;
use serde_json::{Value, json};

use super::control_plane::ControlPlane;
use super::kube::name_of;

/// Creates a volume for every Pending claim that has none yet; returns a
/// report row per claim served.
pub fn provision(plane: &ControlPlane) -> Result<Vec<(String, &'static str)>> {
    let mut rows = Vec::new();
    let volumes: Vec<Value> = plane.admin.list("persistentvolumes")?;
    let claimed = |claim: &Value| volumes.iter().any(|v| v["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]);
    for claim in plane.admin.list("persistentvolumeclaims")? {
        if claim["status"]["phase"] != "Pending" || claim["spec"]["volumeName"].is_string() || claimed(&claim) {
            continue;
        }
        plane.admin.apply(&volume_for(&claim)?.to_string(), "loopback-provisioner")?;
        rows.push((format!("PersistentVolumeClaim {}", name_of(&claim)), "given a hostPath volume"));
    }
    Ok(rows)
}

fn volume_for(claim: &Value) -> Result<Value> {
    let metadata = &claim["metadata"];
    let spec = &claim["spec"];
    let uid = metadata["uid"].as_str().unwrap_or_default();
    let size = spec["resources"]["requests"]["storage"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("claim {} requests no storage size", name_of(claim)))?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": format!("pvc-{uid}"), "labels": {"loopback.demo-platform.dev/provisioned": "true"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec["accessModes"],
            "volumeMode": spec["volumeMode"].as_str().unwrap_or("Filesystem"),
            // The claim's class, or none: a claim without one binds to a
            // volume without one (this cluster has no default class).
            "storageClassName": spec["storageClassName"].as_str().unwrap_or(""),
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": metadata["namespace"],
                "name": metadata["name"],
                "uid": uid,
            },
            "hostPath": {"path": format!("/var/lib/loopback-volumes/pvc-{uid}"), "type": "DirectoryOrCreate"},
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_shaped_and_bound_like_its_claim() {
        let claim = json!({
            "metadata": {"namespace": "observability", "name": "storage-loki-0", "uid": "1234"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
                "storageClassName": "gp3",
            },
            "status": {"phase": "Pending"},
        });
        let volume = volume_for(&claim).unwrap();
        assert_eq!(volume["metadata"]["name"], "pvc-1234");
        assert_eq!(volume["spec"]["capacity"]["storage"], "10Gi");
        assert_eq!(volume["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(volume["spec"]["storageClassName"], "gp3");
        assert_eq!(volume["spec"]["volumeMode"], "Filesystem");
        assert_eq!(volume["spec"]["claimRef"]["name"], "storage-loki-0");
        assert_eq!(volume["spec"]["claimRef"]["uid"], "1234");
    }

    #[test]
    fn a_claim_without_a_size_is_named() {
        let claim = json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {}});
        let err = volume_for(&claim).unwrap_err();
        assert!(err.to_string().contains("claim a/b requests no storage size"), "{err}");
    }
}

//! Every image a pod runs (after sidecar injection) names its registry and
//! a fixed tag or digest: a short name (`jaegertracing/jaeger`) resolves to
//! Docker Hub only by a container runtime's convention (CRI-O's enforcing
//! short-name mode refuses it), and a missing or `latest` tag runs whatever
//! was pushed last. Whether the registry is allowed is the
//! restrict-image-registries policy's to judge, at admission.

use anyhow::Result;

use super::Outcome;
use super::references::pod_spec;
use crate::flux::Environment;

pub fn check(environments: &[Environment]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for env in environments {
        for doc in env.docs() {
            let Some(pod) = pod_spec(doc) else { continue };
            let containers =
                ["initContainers", "containers"].into_iter().flat_map(|f| pod[f].as_array().into_iter().flatten());
            for container in containers {
                outcome.checked += 1;
                let image = container["image"].as_str().unwrap_or_default();
                if let Some(problem) = problem(image) {
                    outcome.failures.push(format!(
                        "{}: {} {}/{} container {}: image `{image}` {problem}",
                        env.name,
                        doc["kind"].as_str().unwrap_or("?"),
                        doc["metadata"]["namespace"].as_str().unwrap_or("default"),
                        doc["metadata"]["name"].as_str().unwrap_or("?"),
                        container["name"].as_str().unwrap_or("?"),
                    ));
                }
            }
        }
    }
    Ok(outcome)
}

/// What is wrong with an image reference, if anything.
fn problem(image: &str) -> Option<&'static str> {
    let (name, digest) = image.split_once('@').map_or((image, None), |(n, d)| (n, Some(d)));
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    let registry = name.split_once('/').map(|(first, _)| first);
    if !registry.is_some_and(|r| r.contains('.') || r.contains(':') || r == "localhost") {
        return Some("names no registry: write it in full (docker.io/... for Docker Hub)");
    }
    match (tag, digest) {
        (None, None) => Some("has no tag: pin a version"),
        (Some("latest"), None) => Some("is tagged latest: pin a version"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_need_a_registry_and_a_pinned_tag() {
        assert_eq!(problem("ghcr.io/example/demo-app:0.1.0"), None);
        assert_eq!(problem("localhost:5001/demo-app@sha256:abc"), None);
        assert!(problem("jaegertracing/jaeger:2.19.0").unwrap().contains("names no registry"));
        assert!(problem("busybox").unwrap().contains("names no registry"));
        assert!(problem("docker.io/library/busybox").unwrap().contains("no tag"));
        assert!(problem("quay.io/prometheus/prometheus:latest").unwrap().contains("latest"));
    }
}

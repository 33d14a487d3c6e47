//! The CRDs verify validates against are the ones the clusters get: every
//! CustomResourceDefinition a rendered chart installs must be in the verify
//! set (`CRD_DIR`, or `tools/crds.yaml`) with the same served versions, or a
//! custom resource could pass here against a schema the cluster never has.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::Outcome;
use crate::flux::Environment;

/// CRD name → the versions it serves.
type Served = BTreeMap<String, BTreeSet<String>>;

pub fn check(crd_dir: &Path, environments: &[Environment]) -> Result<Outcome> {
    let known = served_in(crd_dir)?;
    let mut outcome = Outcome::default();
    let mut seen = BTreeSet::new();
    for env in environments {
        for unit in &env.units {
            for doc in unit.docs.iter().filter(|d| d["kind"] == "CustomResourceDefinition") {
                let (name, versions) = served(doc);
                if !seen.insert((name.clone(), versions.clone())) {
                    continue;
                }
                outcome.checked += 1;
                let from = format!("{}: {} installs CRD {name}", env.name, unit.origin.label());
                match known.get(&name) {
                    None => outcome
                        .failures
                        .push(format!("{from}, which the verify CRDs do not have; add its set to tools/crds.yaml")),
                    Some(have) if *have != versions => outcome.failures.push(format!(
                        "{from} serving {versions:?}, the verify CRDs serve {have:?}; \
                         align the set's version in tools/crds.yaml with the chart's appVersion"
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    Ok(outcome)
}

fn served(crd: &Value) -> (String, BTreeSet<String>) {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let versions = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    (name, versions)
}

fn served_in(dir: &Path) -> Result<Served> {
    let mut known = Served::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let text = fs::read_to_string(&path)?;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).with_context(|| format!("{} is not YAML", path.display()))?;
            if value["kind"] == "CustomResourceDefinition" {
                let (name, versions) = served(&value);
                known.insert(name, versions);
            }
        }
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::{Origin, Unit};

    #[test]
    fn a_chart_crd_missing_or_serving_other_versions_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let crd = |name: &str, versions: &[&str]| {
            let list: Vec<Value> = versions.iter().map(|v| serde_json::json!({"name": v, "served": true})).collect();
            serde_json::json!({"kind": "CustomResourceDefinition", "metadata": {"name": name}, "spec": {"versions": list}})
        };
        let file = serde_norway::to_string(&crd("rollouts.argoproj.io", &["v1alpha1"])).unwrap();
        fs::write(dir.path().join("rollouts.yaml"), file).unwrap();
        let docs = vec![
            crd("rollouts.argoproj.io", &["v1alpha1"]),
            crd("experiments.argoproj.io", &["v1alpha1"]),
            crd("rollouts.argoproj.io", &["v1alpha1", "v1"]),
        ];
        let origin = Origin::Kustomization { name: "mesh".into() };
        let env = Environment { name: "dev".into(), units: vec![Unit { origin, docs }] };
        let outcome = check(dir.path(), &[env]).unwrap();
        assert_eq!(outcome.checked, 3);
        assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
        assert!(outcome.failures[0].contains("experiments.argoproj.io, which the verify CRDs do not have"));
        assert!(outcome.failures[1].contains(r#"serving {"v1", "v1alpha1"}"#), "{}", outcome.failures[1]);
    }
}

//! One Flux Kustomization built the way kustomize-controller builds it:
//! `spec.path` (a kustomization.yaml generated when the folder has none),
//! `spec.patches`, `spec.images`, `spec.targetNamespace`, `spec.namePrefix`
//! and `spec.nameSuffix` added to the build, then `spec.postBuild`
//! variable substitution.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{Kustomizer, SELF_SOURCE, documents_of};

pub fn build(kustomizer: &Kustomizer, root: &Path, ks: &Value, known: &[Value]) -> Result<Vec<Value>> {
    let name = ks["metadata"]["name"].as_str().unwrap_or("?");
    let source = &ks["spec"]["sourceRef"];
    if source["kind"] != "GitRepository" || source["name"] != SELF_SOURCE {
        bail!("Kustomization {name}: source {source} is not this repository (GitRepository {SELF_SOURCE})");
    }
    let path = ks["spec"]["path"].as_str().unwrap_or("./");
    let dir = root.join(path.trim_start_matches("./"));
    if !dir.is_dir() {
        bail!("Kustomization {name}: spec.path {path} is not a folder of this repository");
    }
    let scratch = tempfile::tempdir()?;
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources_of(&dir)?.iter().map(|r| from_scratch(scratch.path(), r)).collect::<Vec<_>>(),
    });
    let spec = &ks["spec"];
    for (flux_key, kustomize_key) in
        [("patches", "patches"), ("images", "images"), ("namePrefix", "namePrefix"), ("nameSuffix", "nameSuffix")]
    {
        if !spec[flux_key].is_null() {
            kustomization[kustomize_key] = spec[flux_key].clone();
        }
    }
    if let Some(namespace) = spec["targetNamespace"].as_str() {
        kustomization["namespace"] = json!(namespace);
    }
    fs::write(scratch.path().join("kustomization.yaml"), serde_norway::to_string(&kustomization)?)?;
    let built =
        kustomizer.build(scratch.path()).with_context(|| format!("Kustomization {name} ({path}) does not build"))?;
    let text = substitute(name, &built, &spec["postBuild"], known)?;
    let mut docs = documents_of(&text).with_context(|| format!("Kustomization {name}: the build is not YAML"))?;
    // kustomize-controller decrypts SOPS files and applies them without
    // their `sops` metadata; the values stay unknown here.
    if spec["decryption"]["provider"] == "sops" {
        for doc in docs.iter_mut().filter_map(Value::as_object_mut) {
            doc.remove("sops");
        }
    }
    Ok(docs)
}

/// The folder itself when it has a kustomization file; otherwise what
/// kustomize-controller generates: every manifest below it, and every
/// sub-folder that has a kustomization file of its own.
fn resources_of(dir: &Path) -> Result<Vec<PathBuf>> {
    if ["kustomization.yaml", "kustomization.yml", "Kustomization"].iter().any(|f| dir.join(f).is_file()) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut resources = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            resources.extend(resources_of(&path)?);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            resources.push(path);
        }
    }
    Ok(resources)
}

/// kustomize refuses absolute roots: `path` as seen from the scratch folder.
fn from_scratch(scratch: &Path, path: &Path) -> String {
    let up = "../".repeat(scratch.components().count().saturating_sub(1));
    format!("{up}{}", path.display().to_string().trim_start_matches('/'))
}

/// `postBuild.substitute` and `substituteFrom` (ConfigMaps and Secrets the
/// cluster holds, looked up in `known`), as kustomize-controller's
/// envsubst does it: `${var}`, `${var:=default}`, `${var:-default}`.
/// An undefined variable without a default fails, like Flux's strict mode.
fn substitute(ks: &str, text: &str, post_build: &Value, known: &[Value]) -> Result<String> {
    if post_build.is_null() {
        return Ok(text.to_string());
    }
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for from in post_build["substituteFrom"].as_array().into_iter().flatten() {
        let (kind, from_name) = (from["kind"].as_str().unwrap_or("?"), from["name"].as_str().unwrap_or("?"));
        let found = known.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == from_name);
        match found {
            Some(doc) => {
                for (key, value) in doc["data"].as_object().into_iter().flatten() {
                    vars.insert(key.clone(), value.as_str().unwrap_or_default().to_string());
                }
            }
            None if from["optional"] == true => {}
            None => bail!(
                "Kustomization {ks}: postBuild.substituteFrom {kind}/{from_name} is created by nothing Flux applies"
            ),
        }
    }
    for (key, value) in post_build["substitute"].as_object().into_iter().flatten() {
        vars.insert(key.clone(), value.as_str().unwrap_or_default().to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end =
            rest[start..].find('}').with_context(|| format!("Kustomization {ks}: unterminated ${{ in the build"))?;
        let expr = &rest[start + 2..start + end];
        let (var, default) = match expr.split_once(":=").or_else(|| expr.split_once(":-")) {
            Some((var, default)) => (var, Some(default)),
            None => (expr, None),
        };
        match (vars.get(var), default) {
            (Some(value), _) => out.push_str(value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => bail!("Kustomization {ks}: postBuild variable ${{{var}}} is not defined"),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_uses_substitute_then_defaults_and_refuses_undefined_variables() {
        let post_build = json!({"substitute": {"env": "dev"}});
        let text = "a: ${env}\nb: ${size:=small}\n";
        assert_eq!(substitute("apps", text, &post_build, &[]).unwrap(), "a: dev\nb: small\n");
        let err = substitute("apps", "c: ${nope}", &post_build, &[]).unwrap_err();
        assert!(format!("{err}").contains("${nope} is not defined"), "{err}");
    }

    #[test]
    fn substitution_from_a_config_map_that_nothing_creates_is_an_error() {
        let post_build = json!({"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]});
        let err = substitute("apps", "x", &post_build, &[]).unwrap_err();
        assert!(format!("{err}").contains("ConfigMap/cluster-vars is created by nothing"), "{err}");
        let known = [json!({"kind": "ConfigMap", "metadata": {"name": "cluster-vars"}, "data": {"region": "eu"}})];
        assert_eq!(substitute("apps", "r: ${region}", &post_build, &known).unwrap(), "r: eu");
    }
}

//! Custom resource schemas from upstream CRDs (`CRD_DIR`).
//!
//! kubeconform wants one JSON schema per group/kind/version; we derive them
//! from each CRD version's `openAPIV3Schema`, made strict the way the API
//! server prunes: an object that lists its properties and does not say
//! `x-kubernetes-preserve-unknown-fields` accepts no others.
//! kubectl-validate reads CRDs itself; it gets a flat folder of them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::project::Project;
use crate::tools::fingerprint;

/// Bump when the conversion changes, so cached schemas are regenerated.
const CONVERTER_VERSION: &[u8] = b"crd-schemas-v1";

/// Gateway API ships `standard/` and `experimental/` with the same CRD names;
/// a validator must see only one. We target the standard channel.
const EXCLUDED: &[&str] = &["gateway-api/experimental"];

pub struct CrdSchemas {
    /// `<group>/<kind>_<version>.json`, for kubeconform.
    pub json_dir: PathBuf,
    /// Flat folder of CRD YAML files, for `kubectl-validate --local-crds`.
    pub crd_dir: PathBuf,
    pub crd_count: usize,
}

impl CrdSchemas {
    /// kubeconform's `-schema-location` template for these schemas.
    pub fn kubeconform_location(&self) -> String {
        format!(
            "{}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
            self.json_dir.display()
        )
    }
}

#[derive(Deserialize)]
struct Crd {
    kind: String,
    spec: CrdSpec,
}

#[derive(Deserialize)]
struct CrdSpec {
    group: String,
    names: CrdNames,
    versions: Vec<CrdVersion>,
}

#[derive(Deserialize)]
struct CrdNames {
    kind: String,
}

#[derive(Deserialize)]
struct CrdVersion {
    name: String,
    schema: Option<CrdValidation>,
}

#[derive(Deserialize)]
struct CrdValidation {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: Value,
}

/// Converts the CRDs under `source` into the cache, once per content.
pub fn ensure(project: &Project, source: &Path) -> Result<CrdSchemas> {
    let files = crd_files(source)?;
    if files.is_empty() {
        bail!("CRD_DIR={} holds no *.yaml files", source.display());
    }
    let mut parts: Vec<Vec<u8>> = vec![CONVERTER_VERSION.to_vec()];
    for (name, path) in &files {
        parts.push(name.as_bytes().to_vec());
        parts.push(fs::read(path)?);
    }
    let key = fingerprint(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let root = project.schemas_dir().join(format!("crds-{key}"));
    let schemas = CrdSchemas { json_dir: root.join("json"), crd_dir: root.join("crds"), crd_count: files.len() };
    if root.join(".complete").is_file() {
        return Ok(schemas);
    }
    let staging = root.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(staging.join("crds"))?;
    for (name, path) in &files {
        let text = fs::read_to_string(path)?;
        fs::write(staging.join("crds").join(name), &text)?;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value =
                serde_json::Value::deserialize(doc).with_context(|| format!("{} is not YAML", path.display()))?;
            if value.is_null() {
                continue;
            }
            let crd: Crd = serde_json::from_value(value).with_context(|| format!("{}: not a CRD", path.display()))?;
            if crd.kind != "CustomResourceDefinition" {
                bail!("{}: expected CustomResourceDefinition, found {}", path.display(), crd.kind);
            }
            for version in crd.spec.versions {
                let Some(schema) = version.schema else {
                    continue;
                };
                let out = staging.join("json").join(&crd.spec.group).join(format!(
                    "{}_{}.json",
                    crd.spec.names.kind.to_lowercase(),
                    version.name
                ));
                fs::create_dir_all(out.parent().unwrap())?;
                fs::write(&out, serde_json::to_vec(&strict_schema(schema.open_api_v3_schema))?)?;
            }
        }
    }
    fs::write(staging.join(".complete"), b"")?;
    let _ = fs::remove_dir_all(&root);
    fs::rename(&staging, &root)?;
    Ok(schemas)
}

/// Every CRD file under `source`, keyed by a flat unique name.
fn crd_files(source: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(source).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(source)?.to_string_lossy().into_owned();
        let is_yaml = entry.path().extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !entry.file_type().is_file() || !is_yaml || EXCLUDED.iter().any(|x| rel.starts_with(x)) {
            continue;
        }
        files.insert(rel.replace('/', "__"), entry.into_path());
    }
    Ok(files)
}

/// The API server's view of a structural schema, as draft JSON Schema.
pub fn strict_schema(mut schema: Value) -> Value {
    tighten(&mut schema);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        // Every object carries these even when the CRD does not list them.
        props.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
        props.entry("kind").or_insert_with(|| json!({"type": "string"}));
        props.entry("metadata").or_insert_with(|| json!({"type": "object"}));
    }
    schema
}

fn tighten(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    let preserves_unknown = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserves_unknown {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    if obj.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(ty)) = obj.get("type").cloned()
    {
        obj.insert("type".into(), json!([ty, "null"]));
    }
    if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !obj.contains_key("type") {
        obj.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(tighten);
    }
    if let Some(items) = obj.get_mut("items") {
        tighten(items);
    }
    if let Some(additional @ Value::Object(_)) = obj.get_mut("additionalProperties") {
        tighten(additional);
    }
    // allOf/anyOf/oneOf branches are left alone: in a structural schema they
    // only add value validations, and closing them would reject fields that
    // the main schema allows.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_with_properties_are_closed_unless_they_preserve_unknown_fields() {
        let schema = strict_schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {}}},
                        "list": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {}}}},
                        "port": {"x-kubernetes-int-or-string": true},
                        "maybe": {"type": "string", "nullable": true}
                    }
                }
            }
        }));
        let spec = &schema["properties"]["spec"];
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(spec["additionalProperties"], false);
        assert!(spec["properties"]["values"].get("additionalProperties").is_none());
        assert_eq!(spec["properties"]["list"]["items"]["additionalProperties"], false);
        assert_eq!(spec["properties"]["map"]["additionalProperties"]["additionalProperties"], false);
        assert_eq!(spec["properties"]["port"]["anyOf"][1]["type"], "string");
        assert_eq!(spec["properties"]["maybe"]["type"], json!(["string", "null"]));
        assert_eq!(schema["properties"]["metadata"]["type"], "object");
    }

    #[test]
    fn objects_without_listed_properties_stay_open() {
        let schema = strict_schema(json!({"type": "object", "properties": {"status": {"type": "object"}}}));
        assert!(schema["properties"]["status"].get("additionalProperties").is_none());
    }
}

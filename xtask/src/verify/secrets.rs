//! No plaintext secret in Git: a Secret committed to the repository carries
//! its values SOPS-encrypted (Flux decrypts them in the cluster). After the
//! check, the SOPS metadata is removed from the rendered file so the schema
//! validators see the Secret that Flux applies after decryption.

use std::fs;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{Outcome, rules};

const ENCRYPTED_PREFIX: &str = "ENC[AES256_GCM,";

/// `strip` rewrites the file without SOPS metadata: only for rendered copies,
/// never for files of the repository.
pub fn check(file: &Path, strip: bool) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut docs = rules::documents(file)?;
    let mut stripped = false;
    for doc in &mut docs {
        if doc["kind"] != "Secret" {
            continue;
        }
        outcome.checked += 1;
        let name = doc["metadata"]["name"].as_str().unwrap_or("?").to_string();
        for problem in plaintext_values(doc) {
            outcome.failures.push(format!("{}: Secret/{name}: {problem}", file.display()));
        }
        if let Some(object) = doc.as_object_mut() {
            stripped |= object.remove("sops").is_some();
        }
    }
    if stripped && strip {
        let mut text = String::new();
        for doc in &docs {
            text.push_str("---\n");
            text.push_str(&serde_norway::to_string(doc)?);
        }
        fs::write(file, text)?;
    }
    Ok(outcome)
}

/// The keys of a Secret whose values are not SOPS-encrypted.
fn plaintext_values(secret: &Value) -> Vec<String> {
    let encrypted_file = secret["sops"]["mac"].as_str().is_some_and(|mac| mac.starts_with(ENCRYPTED_PREFIX));
    let mut problems = Vec::new();
    for section in ["data", "stringData"] {
        for (key, value) in secret[section].as_object().into_iter().flatten() {
            let encrypted = value.as_str().is_some_and(|v| v.starts_with(ENCRYPTED_PREFIX));
            if !(encrypted && encrypted_file) {
                problems
                    .push(format!("{section}.{key} is plaintext: encrypt the file with `sops --encrypt --in-place`"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::plaintext_values;

    #[test]
    fn only_sops_encrypted_values_pass() {
        let encrypted = json!({"kind": "Secret", "stringData": {"k": "ENC[AES256_GCM,data:x,type:str]"}, "sops": {"mac": "ENC[AES256_GCM,data:y,type:str]"}});
        assert!(plaintext_values(&encrypted).is_empty());
        let plain = json!({"kind": "Secret", "data": {"k": "c2VjcmV0"}});
        assert_eq!(plaintext_values(&plain).len(), 1);
        let no_metadata = json!({"kind": "Secret", "stringData": {"k": "ENC[AES256_GCM,data:x,type:str]"}});
        assert_eq!(
            plaintext_values(&no_metadata).len(),
            1,
            "an ENC-looking value without SOPS metadata is not encrypted"
        );
        let empty = json!({"kind": "Secret", "type": "kubernetes.io/service-account-token"});
        assert!(plaintext_values(&empty).is_empty());
    }
}

//! SOPS secrets on a cluster that does not hold the environment's key.
//!
//! staging and production commit Secrets encrypted for their clusters' age
//! recipients (`.sops.yaml`); this run's cluster has its own key (the
//! bootstrap's `sops-age` Secret), so Flux could decrypt none of them. The
//! served repository therefore gets one commit on top of the working tree:
//! every `*.sops.yaml` Secret re-encrypted, by the real `sops`, for the
//! run's key, with the same name, type and keys and placeholder values (the
//! real values never leave their owners). Flux's decryption path is then the
//! production one; only the key and the values differ.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::repository::Repository;
use crate::cmd;
use crate::project::Project;
use crate::tools;

/// The run's age key: its private half as the bootstrap stores it, its
/// public half (the recipient).
pub struct AgeKey {
    pub file: PathBuf,
    pub recipient: String,
}

pub fn generate(project: &Project, dir: &Path) -> Result<AgeKey> {
    let file = dir.join("age.agekey");
    let _ = fs::remove_file(&file);
    cmd::run(Command::new(tools::locate(project, "age-keygen")?).arg("-o").arg(&file))?;
    let text = fs::read_to_string(&file)?;
    let recipient = text
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .context("age-keygen wrote no `# public key:` line")?
        .trim()
        .to_string();
    Ok(AgeKey { file, recipient })
}

/// Re-encrypts every SOPS file of `env`'s folders for `key`, as one commit;
/// returns the paths (relative to the repository) it replaced.
pub fn reencrypt(project: &Project, repo: &Repository, env: &str, key: &AgeKey, dir: &Path) -> Result<Vec<String>> {
    let sops = tools::locate(project, "sops")?;
    let scratch = dir.join("sops");
    fs::create_dir_all(&scratch)?;
    let mut replaced = Vec::new();
    for path in sops_files(&project.root, env)? {
        let original: Value = serde_norway::from_str(&fs::read_to_string(project.root.join(&path))?)
            .with_context(|| format!("{path} is not YAML"))?;
        let plain = scratch.join(path.replace('/', "_"));
        fs::write(&plain, serde_norway::to_string(&placeholder(&original, &path)?)?)?;
        // Run where no `.sops.yaml` applies: the recipient and the rule
        // (what is encrypted) are given here, as the repository's rule says.
        let out = cmd::run(
            Command::new(&sops)
                .current_dir(&scratch)
                .args(["--encrypt", "--age", &key.recipient, "--encrypted-regex", "^(data|stringData)$"])
                .args(["--input-type", "yaml", "--output-type", "yaml"])
                .arg(&plain),
        )
        .with_context(|| format!("sops could not encrypt the placeholder of {path}"))?;
        repo.stage_file(&path, &String::from_utf8(out.stdout)?)?;
        replaced.push(path);
    }
    if !replaced.is_empty() {
        repo.commit_staged("loopback: SOPS secrets encrypted for this run's age key, placeholder values")?;
    }
    Ok(replaced)
}

/// `deploy/**/*.sops.yaml` of the environment's overlays.
fn sops_files(root: &Path, env: &str) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root.join("deploy")).sort_by_file_name() {
        let entry = entry?;
        let relative = entry.path().strip_prefix(root)?.to_string_lossy().replace('\\', "/");
        let in_env = relative.split('/').any(|part| part == env);
        if in_env && relative.ends_with(".sops.yaml") {
            files.push(relative);
        }
    }
    Ok(files)
}

/// The Secret without its `sops` block, every value a placeholder that
/// names its key.
fn placeholder(original: &Value, path: &str) -> Result<Value> {
    if original["kind"] != "Secret" {
        bail!("{path}: only SOPS-encrypted Secrets are modelled, this is a {}", original["kind"]);
    }
    let mut secret = json!({
        "apiVersion": original["apiVersion"],
        "kind": "Secret",
        "metadata": original["metadata"],
    });
    if let Some(kind) = original.get("type") {
        secret["type"] = kind.clone();
    }
    for field in ["stringData", "data"] {
        let Some(entries) = original[field].as_object() else { continue };
        let mut values = Map::new();
        for name in entries.keys() {
            let value = format!("loopback-placeholder-{name}");
            let value = if field == "data" { base64_encode(&value) } else { value };
            values.insert(name.clone(), Value::String(value));
        }
        secret[field] = Value::Object(values);
    }
    if secret.get("stringData").is_none() && secret.get("data").is_none() {
        bail!("{path}: a Secret without data or stringData");
    }
    Ok(secret)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_keeps_name_type_and_keys_and_drops_the_sops_block() {
        let original = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "jwt", "namespace": "demo-app"},
            "stringData": {"jwt-secret": "ENC[AES256_GCM,data:…]"},
            "data": {"ca.crt": "ENC[AES256_GCM,data:…]"},
            "sops": {"age": []},
        });
        let plain = placeholder(&original, "x.sops.yaml").unwrap();
        assert_eq!(plain["metadata"]["name"], "jwt");
        assert_eq!(plain["type"], "Opaque");
        assert_eq!(plain["stringData"]["jwt-secret"], "loopback-placeholder-jwt-secret");
        assert_eq!(plain["data"]["ca.crt"], base64_encode("loopback-placeholder-ca.crt"));
        assert!(plain.get("sops").is_none());
        let config_map = json!({"kind": "ConfigMap", "data": {"a": "b"}});
        assert!(
            placeholder(&config_map, "y.sops.yaml").unwrap_err().to_string().contains("only SOPS-encrypted Secrets")
        );
    }

    #[test]
    fn only_the_environments_sops_files_are_found() {
        let root = tempfile::tempdir().unwrap();
        for file in ["deploy/apps/staging/secrets/a.sops.yaml", "deploy/apps/production/secrets/b.sops.yaml"] {
            fs::create_dir_all(root.path().join(file).parent().unwrap()).unwrap();
            fs::write(root.path().join(file), "kind: Secret\n").unwrap();
        }
        assert_eq!(sops_files(root.path(), "staging").unwrap(), ["deploy/apps/staging/secrets/a.sops.yaml"]);
        assert!(sops_files(root.path(), "dev").unwrap().is_empty());
    }
}

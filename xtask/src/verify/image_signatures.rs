//! The image-signature policy, proven offline: a registry on loopback
//! (crane's), three images pushed to it, one signed with a key this check
//! generates, one signed with another key, one unsigned (cosign), and the
//! policy's own match and validation judged by the Kyverno CLI with its
//! keyless attestor swapped for the generated public key. The signed image
//! must pass; the other two must fail with the policy's message.
//!
//! What stays unproven offline is the keyless identity itself (the Fulcio
//! certificate of the release workflow, the Rekor entry): that needs
//! Sigstore's public services.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_norway::Value;

use super::Outcome;
use super::kyverno::{TestRow, parse_test_output};
use crate::cmd;
use crate::project::Project;
use crate::tools;

const POLICY: &str = "deploy/policies/verify-image-signatures/policy.yaml";

/// The images, the key that signs each (None: unsigned), and the verdict.
const CASES: [(&str, Option<&str>, &str); 3] =
    [("signed", Some("release"), "Pass"), ("other-key", Some("other"), "Fail"), ("unsigned", None, "Fail")];

pub fn check(project: &Project, kyverno: &Path) -> Result<Outcome> {
    let crane = tools::locate(project, "crane")?;
    let cosign = tools::locate(project, "cosign")?;
    let work = project.cache.join("verify/image-signatures");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let registry = Registry::start(&crane)?;
    let repository = format!("127.0.0.1:{}/example/demo-app", registry.port);

    // An empty layer (a tar archive is its two zero end blocks); a label
    // per case gives each image its own digest.
    let empty = work.join("empty.tar");
    fs::write(&empty, [0u8; 1024])?;
    let base = format!("{repository}:base");
    cmd::run(Command::new(&crane).arg("append").arg("-f").arg(&empty).args(["-t", &base]))?;
    for key in ["release", "other"] {
        let mut generate = Command::new(&cosign);
        generate.current_dir(&work).env("COSIGN_PASSWORD", "").args(["generate-key-pair", "--output-key-prefix", key]);
        cmd::run(&mut generate)?;
    }
    for (name, key, _) in CASES {
        let tag = format!("{repository}:{name}");
        let pushed =
            cmd::run(Command::new(&crane).args(["mutate", &base, "--label", &format!("case={name}"), "-t", &tag]))?;
        let digest_ref = String::from_utf8_lossy(&pushed.stdout).trim().to_string();
        if let Some(key) = key {
            // A key, no transparency log, the classic `.sig` tag.
            let mut sign = Command::new(&cosign);
            sign.current_dir(&work).env("COSIGN_PASSWORD", "").args([
                "sign",
                "--key",
                &format!("{key}.key"),
                "--use-signing-config=false",
                "--tlog-upload=false",
                "--new-bundle-format=false",
                "--allow-http-registry",
                "--yes",
                &digest_ref,
            ]);
            cmd::run(&mut sign)?;
        }
    }

    let policy_file = project.root.join(POLICY);
    let (policy, message) = keyed_variant(&policy_file, &repository, &fs::read_to_string(work.join("release.pub"))?)?;
    fs::write(work.join("policy.yaml"), policy)?;
    fs::write(work.join("resources.yaml"), pods(&repository))?;
    fs::write(work.join("kyverno-test.yaml"), TEST)?;
    let output = cmd::capture(Command::new(kyverno).arg("test").arg(&work).args([
        "--remove-color",
        "--detailed-results",
        "--output-format",
        "json",
    ]))?;
    let rows = parse_test_output(&String::from_utf8_lossy(&output.stdout))?;
    let mut outcome = Outcome { checked: rows.len(), failures: verdicts(&rows, &message) };
    if rows.len() != CASES.len() {
        outcome.failures.push(format!(
            "kyverno test reported {} results for {} images:\n{}",
            rows.len(),
            CASES.len(),
            cmd::tail(&output.stderr, &output.stdout, 20)
        ));
    }
    Ok(outcome)
}

/// Each case judged as expected, for the policy's reason.
fn verdicts(rows: &[TestRow], message: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, _, expected) in CASES {
        let Some(row) = rows.iter().find(|r| r.resource.ends_with(&format!("/{name}"))) else {
            failures.push(format!("image-signature test: no result for the {name} image"));
            continue;
        };
        // A row passes when the policy's result is what the test expects.
        let ok = row.result == "Pass" && (expected == "Pass" || row.message.trim() == message);
        if !ok {
            failures.push(format!(
                "the {name} image: expected the policy to {} it{}, got {} ({})",
                if expected == "Pass" { "admit" } else { "refuse" },
                if expected == "Pass" { String::new() } else { format!(" with \"{message}\"") },
                row.result,
                row.message
            ));
        }
    }
    failures
}

/// The policy with its keyless attestor replaced by `public_key`, matching
/// `repository` and allowed to reach it over plain HTTP; and its message.
fn keyed_variant(policy: &Path, repository: &str, public_key: &str) -> Result<(String, String)> {
    let text = fs::read_to_string(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    let mut doc: Value = serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", policy.display()))?;
    let message = doc["spec"]["validations"][0]["message"]
        .as_str()
        .with_context(|| format!("{}: spec.validations[0].message is missing", policy.display()))?
        .trim()
        .to_string();
    let spec = doc["spec"].as_mapping_mut().with_context(|| format!("{}: no spec", policy.display()))?;
    let yaml = |s: &str| serde_norway::from_str::<Value>(s).expect("a constant YAML snippet");
    spec.insert(
        "matchImageReferences".into(),
        yaml(&format!("[{{glob: '{}/*'}}]", repository.rsplit_once('/').unwrap().0)),
    );
    spec.insert("credentials".into(), yaml("{allowInsecureRegistry: true}"));
    let mut attestor =
        yaml("{name: release, cosign: {key: {}, ctlog: {insecureIgnoreTlog: true, insecureIgnoreSCT: true}}}");
    attestor["cosign"]["key"]["data"] = Value::String(public_key.to_string());
    spec.insert("attestors".into(), Value::Sequence(vec![attestor]));
    Ok((serde_norway::to_string(&doc)?, message))
}

fn pods(repository: &str) -> String {
    CASES
        .iter()
        .map(|(name, _, _)| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: team-a}}\n\
                 spec: {{containers: [{{name: app, image: '{repository}:{name}'}}]}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

const TEST: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: verify-image-signatures-offline}
policies: [policy.yaml]
resources: [resources.yaml]
results:
  - {policy: verify-image-signatures, isImageValidatingPolicy: true, kind: Pod, resources: [team-a/signed], result: pass}
  - {policy: verify-image-signatures, isImageValidatingPolicy: true, kind: Pod, resources: [team-a/other-key, team-a/unsigned], result: fail}
";

/// `crane registry serve` on a port it picks, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(crane: &PathBuf) -> Result<Self> {
        let mut child = Command::new(crane)
            .args(["registry", "serve", "--address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `crane registry serve`")?;
        let stderr = child.stderr.take().expect("piped");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // It logs every request: the pipe is drained for its whole life.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.rsplit_once("serving on port ").and_then(|(_, p)| p.trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let mut registry = Self { child, port: 0 };
        registry.port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .context("`crane registry serve` did not say its port within 10 s")?;
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_variant_keeps_the_policys_validation_and_swaps_its_attestor() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let (variant, message) =
            super::keyed_variant(&root.join(super::POLICY), "127.0.0.1:5000/example/demo-app", "PUBLIC KEY").unwrap();
        assert!(message.starts_with("image is not signed by the release workflow"), "{message}");
        assert!(variant.contains("verifyImageSignatures(image, [attestors.release])"), "{variant}");
        assert!(variant.contains("glob: 127.0.0.1:5000/example/*"), "{variant}");
        assert!(variant.contains("data: PUBLIC KEY") && !variant.contains("keyless:"), "{variant}");
    }

    #[test]
    fn a_refusal_for_another_reason_or_an_admitted_unsigned_image_fails() {
        let row = |name: &str, result: &str, message: &str| -> super::TestRow {
            serde_json::from_value(serde_json::json!({
                "POLICY": "verify-image-signatures", "RESOURCE": format!("v1/Pod/team-a/{name}"),
                "RESULT": result, "Message": message,
            }))
            .unwrap()
        };
        let why = "image is not signed";
        let good = [row("signed", "Pass", "success"), row("other-key", "Pass", why), row("unsigned", "Pass", why)];
        assert!(super::verdicts(&good, why).is_empty());
        let wrong_reason =
            [row("signed", "Pass", ""), row("other-key", "Pass", "x509: bad"), row("unsigned", "Pass", why)];
        let failures = super::verdicts(&wrong_reason, why);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("other-key") && failures[0].contains("x509: bad"), "{failures:?}");
        let admitted = [row("signed", "Pass", ""), row("other-key", "Pass", why), row("unsigned", "Fail", "success")];
        assert!(super::verdicts(&admitted, why)[0].contains("refuse"), "an admitted unsigned image passed");
    }
}

//! kubectl against the loopback cluster (the pinned build of the same
//! Kubernetes release as the control plane).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;

#[derive(Clone)]
pub struct Kube {
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kube {
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.kubectl);
        command.arg("--kubeconfig").arg(&self.kubeconfig).arg("--request-timeout=20s");
        command
    }

    /// `kubectl <args>`, failing with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = cmd::run(self.command().args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl get <args> -o json`.
    pub fn get(&self, args: &[&str]) -> Result<Value> {
        let text = self.run(&[&["get"], args, &["-o", "json"]].concat())?;
        serde_json::from_str(&text).with_context(|| format!("kubectl get {} did not print JSON", args.join(" ")))
    }

    /// Every item of `kubectl get <kind> -A`.
    pub fn list(&self, kind: &str) -> Result<Vec<Value>> {
        Ok(self.get(&[kind, "--all-namespaces"])?["items"].as_array().cloned().unwrap_or_default())
    }

    /// Server-side apply of a YAML or JSON stream, as the field manager `manager`.
    pub fn apply(&self, manifest: &str, manager: &str) -> Result<String> {
        self.stdin(&["apply", "--server-side", "--force-conflicts", "--field-manager", manager, "-f", "-"], manifest)
    }

    pub fn stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let mut command = self.command();
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| format!("cannot run {}", self.kubectl.display()))?;
        child.stdin.take().context("kubectl stdin")?.write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A kubeconfig for `server` with either the admin client certificate or a bearer token.
pub fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &User) -> Result<()> {
    let credentials = match user {
        User::Certificate { cert, key } => {
            format!("    client-certificate: {}\n    client-key: {}\n", cert.display(), key.display())
        }
        User::Token(token) => format!("    token: {token}\n"),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: loopback\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: user\n  user:\n{credentials}contexts:\n- name: loopback\n  \
         context:\n    cluster: loopback\n    user: user\ncurrent-context: loopback\n",
        ca.display()
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub enum User {
    Certificate { cert: PathBuf, key: PathBuf },
    Token(String),
}

/// `status.conditions[type=Ready]` as (status, reason, message).
pub fn ready_condition(object: &Value) -> Option<(String, String, String)> {
    let conditions = object["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
    Some((field("status"), field("reason"), field("message")))
}

pub fn name_of(object: &Value) -> String {
    let meta = &object["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", meta["name"].as_str().unwrap_or_default()),
        None => meta["name"].as_str().unwrap_or_default().to_string(),
    }
}

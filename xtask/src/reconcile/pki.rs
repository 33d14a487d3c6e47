//! The loopback cluster's certificates, new for every run (with openssl, as
//! the Kubernetes "certificates" task does by hand): a CA, the API server's
//! serving certificate, an admin client in `system:masters` for the control
//! plane and Flux, the stand-in registry's certificate, and the key pair
//! that signs service-account tokens.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

pub struct Pki {
    dir: PathBuf,
    openssl: PathBuf,
    pub ca_cert: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// The stand-in registry's certificate (internet.rs).
    pub registry_cert: PathBuf,
    pub registry_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

/// Names the API server answers to: loopback, and what in-cluster clients
/// use (the first address of the service range is the `kubernetes` Service).
const APISERVER_NAMES: &str = "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local";

pub fn generate(openssl: &Path, dir: &Path) -> Result<Pki> {
    fs::create_dir_all(dir)?;
    let file = |name: &str| dir.join(name);
    let pki = Pki {
        dir: dir.to_path_buf(),
        openssl: openssl.to_path_buf(),
        ca_cert: file("ca.crt"),
        apiserver_cert: file("apiserver.crt"),
        apiserver_key: file("apiserver.key"),
        admin_cert: file("admin.crt"),
        admin_key: file("admin.key"),
        registry_cert: file("registry.crt"),
        registry_key: file("registry.key"),
        service_account_key: file("sa.key"),
        service_account_pub: file("sa.pub"),
    };
    let run = |args: &[&str]| -> Result<()> { cmd::run(Command::new(openssl).current_dir(dir).args(args)).map(|_| ()) };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=loopback-cluster-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])
    .context("cannot create the cluster CA with openssl")?;
    sign(dir, &run, "apiserver", "/CN=kube-apiserver", Some(APISERVER_NAMES), "serverAuth")?;
    sign(dir, &run, "registry", "/CN=ghcr.io", Some("DNS:ghcr.io"), "serverAuth")?;
    sign(dir, &run, "admin", "/O=system:masters/CN=loopback-admin", None, "clientAuth")?;
    run(&["genrsa", "-out", "sa.key", "2048"])?;
    run(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(pki)
}

impl Pki {
    /// A serving certificate signed by the cluster CA for a Service's DNS
    /// names, as cert-manager or OLM would give a webhook server: returns
    /// (certificate, key).
    pub fn serving_certificate(&self, name: &str, dns_names: &[String]) -> Result<(PathBuf, PathBuf)> {
        let run = |args: &[&str]| -> Result<()> {
            cmd::run(Command::new(&self.openssl).current_dir(&self.dir).args(args)).map(|_| ())
        };
        let alt_names = dns_names.iter().map(|n| format!("DNS:{n}")).collect::<Vec<_>>().join(",");
        sign(&self.dir, &run, name, &format!("/CN={}", dns_names[0]), Some(&alt_names), "serverAuth")?;
        Ok((self.dir.join(format!("{name}.crt")), self.dir.join(format!("{name}.key"))))
    }
}

/// A key and a certificate signed by the CA, for a server or a client.
fn sign(
    dir: &Path,
    run: &dyn Fn(&[&str]) -> Result<()>,
    name: &str,
    subject: &str,
    alt_names: Option<&str>,
    usage: &str,
) -> Result<()> {
    let (key, csr, cert, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr])?;
    let mut extensions = format!("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n");
    if let Some(names) = alt_names {
        extensions.push_str(&format!("subjectAltName={names}\n"));
    }
    fs::write(dir.join(&ext), extensions)?;
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ])
    .with_context(|| format!("cannot sign the {name} certificate"))
}

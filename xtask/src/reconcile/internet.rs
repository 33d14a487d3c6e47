//! The loopback cluster's view of the internet: an HTTPS proxy for the
//! controllers that reach external hosts (`HTTPS_PROXY`, with the run's CA
//! as their trust store). `ghcr.io`, the release registry the image
//! automation scans, is answered by a stand-in registry that lists the tags
//! of this run (the version the working tree deploys, and the ones a
//! scenario publishes); every other host is refused with its name. Nothing
//! in the cluster's objects changes: the ImageRepository still names
//! `ghcr.io/example/demo-app`.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// The registry host the stand-in answers for.
pub const REGISTRY: &str = "ghcr.io";

#[derive(Clone)]
pub struct Internet {
    pub proxy_url: String,
    /// Repository (without host) → tags.
    tags: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Internet {
    /// Publishes `tag` of `repository` (e.g. `example/demo-app`).
    pub fn publish(&self, repository: &str, tag: &str) {
        self.tags.lock().expect("tags lock").entry(repository.to_string()).or_default().push(tag.to_string());
    }

    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().expect("refused lock").clone()
    }
}

/// Starts the proxy; `cert` and `key` are the stand-in's certificate for
/// [`REGISTRY`], signed by the run's CA.
pub fn start(cert: &Path, key: &Path) -> Result<Internet> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read {}", key.display()))?;
    let config = Arc::new(rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?);
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot listen for the loopback internet")?;
    let internet = Internet {
        proxy_url: format!("http://127.0.0.1:{}", listener.local_addr()?.port()),
        tags: Arc::default(),
        refused: Arc::default(),
    };
    let shared = internet.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (internet, config) = (shared.clone(), config.clone());
            thread::spawn(move || {
                let _ = tunnel(stream, &internet, config);
            });
        }
    });
    Ok(internet)
}

fn tunnel(stream: TcpStream, internet: &Internet, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    skip_headers(&mut reader)?;
    let mut stream = stream;
    let target = request.strip_prefix("CONNECT ").and_then(|r| r.split_whitespace().next()).unwrap_or("");
    if target != format!("{REGISTRY}:443") {
        internet.refused.lock().expect("refused lock").push(format!("{} {target}", request.trim()));
        return stream.write_all(
            format!("HTTP/1.1 502 {target} is not reachable from the loopback cluster\r\ncontent-length: 0\r\n\r\n")
                .as_bytes(),
        );
    }
    stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let connection = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // One request per connection: the answer says `connection: close`.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = registry_answer(internet, path);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ndocker-distribution-api-version: registry/2.0\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(response.as_bytes())?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

fn skip_headers(reader: &mut impl io::BufRead) -> io::Result<()> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(());
        }
    }
}

/// The distribution API, as much of it as listing tags takes.
fn registry_answer(internet: &Internet, path: &str) -> (&'static str, String) {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/v2/" || path == "/v2" {
        return ("200 OK", "{}".into());
    }
    if let Some(repository) = path.strip_prefix("/v2/").and_then(|p| p.strip_suffix("/tags/list"))
        && let Some(tags) = internet.tags.lock().expect("tags lock").get(repository)
    {
        return ("200 OK", json!({"name": repository, "tags": tags}).to_string());
    }
    (
        "404 Not Found",
        json!({"errors": [{"code": "NAME_UNKNOWN", "message": format!("{path} is not served")}]}).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internet() -> Internet {
        Internet { proxy_url: String::new(), tags: Arc::default(), refused: Arc::default() }
    }

    #[test]
    fn the_stand_in_registry_lists_published_tags_only() {
        let internet = internet();
        internet.publish("example/demo-app", "0.1.0");
        internet.publish("example/demo-app", "0.2.0");
        assert_eq!(registry_answer(&internet, "/v2/").0, "200 OK");
        let (status, body) = registry_answer(&internet, "/v2/example/demo-app/tags/list?n=100");
        assert_eq!(status, "200 OK");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["tags"], json!(["0.1.0", "0.2.0"]));
        let (status, body) = registry_answer(&internet, "/v2/example/other/tags/list");
        assert_eq!(status, "404 Not Found");
        assert!(body.contains("NAME_UNKNOWN"), "{body}");
        assert_eq!(registry_answer(&internet, "/v2/example/demo-app/manifests/0.1.0").0, "404 Not Found");
    }

    #[test]
    fn hosts_other_than_the_registry_are_refused_by_name() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let internet = internet();
        let shared = internet.clone();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
        );
        let server = thread::spawn(move || tunnel(listener.accept().unwrap().0, &shared, config));
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        server.join().unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 502 example.com:443 is not reachable"), "{answer}");
        assert_eq!(internet.refused().len(), 1);
    }
}

//! The cluster network of a loopback run. kwok's pods have addresses that
//! nothing listens on, so the API server's calls to Services (admission
//! webhooks, by the `service` reference their charts register) leave through
//! its egress selector as HTTP CONNECT requests on a Unix socket, and arrive
//! here: the Service is found by its ClusterIP and the call is passed to the
//! loopback port of the real process that serves it (see `workloads.rs`). A
//! Service no process serves is refused with its name, which the API server
//! quotes in the admission error: nothing is faked as reachable.
//!
//! A controller that calls Services by their DNS names (Argo Rollouts'
//! analysis queries Prometheus at `prometheus-operated.monitoring.svc`) has
//! no cluster DNS here: its `HTTP_PROXY` is `serve_http_proxy`, which finds
//! the Service by name instead.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context, Result};

use super::kube::Kube;

#[derive(Clone, Default)]
pub struct Routes {
    /// `namespace/service:port` → loopback port of the process behind it.
    backends: Arc<Mutex<HashMap<String, u16>>>,
    /// Calls that found no process, for the report.
    refused: Arc<Mutex<Vec<String>>>,
}

impl Routes {
    pub fn add(&self, namespace: &str, service: &str, port: u16, local: u16) {
        self.backends.lock().expect("routes lock").insert(format!("{namespace}/{service}:{port}"), local);
    }

    /// Whether a process serves the Service now.
    pub fn serves(&self, namespace: &str, service: &str) -> bool {
        let prefix = format!("{namespace}/{service}:");
        self.backends.lock().expect("routes lock").keys().any(|key| key.starts_with(&prefix))
    }

    /// Whether a call to the Service did not reach a listening process
    /// during the run (none registered, or not listening yet).
    pub fn was_refused(&self, namespace: &str, service: &str) -> bool {
        let service = format!("Service {namespace}/{service}:");
        self.refused.lock().expect("routes lock").iter().any(|r| r.starts_with(&service))
    }

    /// Each distinct refusal, with how often it happened.
    pub fn refused(&self) -> Vec<(String, usize)> {
        let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for reason in self.refused.lock().expect("routes lock").iter() {
            *counts.entry(reason.clone()).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

/// Listens on `socket` until the process exits.
pub fn serve(socket: &Path, kube: Kube, routes: Routes) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).with_context(|| format!("cannot listen on {}", socket.display()))?;
    let services = Arc::new(Mutex::new(HashMap::new()));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (kube, routes, services) = (kube.clone(), routes.clone(), services.clone());
            thread::spawn(move || {
                let _ = connect(stream, &kube, &routes, &services);
            });
        }
    });
    Ok(())
}

/// An HTTP proxy on a free loopback port for the cluster's DNS names
/// (`<service>.<namespace>.svc[.cluster.local]`): absolute-form requests
/// (what Go's clients send through `HTTP_PROXY` for `http://` URLs) and
/// CONNECT. Returns the port.
pub fn serve_http_proxy(routes: Routes) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen for the cluster's HTTP proxy")?;
    let port = listener.local_addr()?.port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = routes.clone();
            thread::spawn(move || {
                let _ = proxy(stream, &routes);
            });
        }
    });
    Ok(port)
}

fn proxy(stream: TcpStream, routes: &Routes) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut head = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let end = header == "\r\n";
        head.push(header);
        if end {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target, version) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (authority, path) = match method {
        "CONNECT" => (target, None),
        _ => match target.strip_prefix("http://") {
            Some(rest) => {
                rest.split_once('/').map_or((rest, Some("/".to_string())), |(a, p)| (a, Some(format!("/{p}"))))
            }
            None => return refuse(stream, routes, &format!("{target}: not an absolute http:// URL")),
        },
    };
    let (key, local) = match by_name(authority, routes) {
        Ok(found) => found,
        Err(reason) => return refuse(stream, routes, &reason),
    };
    let mut upstream = match TcpStream::connect(("127.0.0.1", local)) {
        Ok(upstream) => upstream,
        Err(err) => return refuse(stream, routes, &not_listening(&key, local, &err)),
    };
    let mut stream = stream;
    match path {
        None => stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?,
        Some(path) => {
            upstream.write_all(format!("{method} {path} {version}\r\n").as_bytes())?;
            upstream.write_all(head.concat().as_bytes())?;
        }
    }
    // What the reader buffered past the head belongs to the upstream.
    upstream.write_all(reader.buffer())?;
    pipe(stream, upstream)
}

/// The Service (`namespace/service:port`) and the loopback port behind
/// `<service>.<namespace>.svc[.cluster.local]:port`.
fn by_name(authority: &str, routes: &Routes) -> Result<(String, u16), String> {
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    let host = host.trim_end_matches(".cluster.local").trim_end_matches(".svc");
    let (service, namespace) = host.split_once('.').ok_or_else(|| format!("{authority}: not a Service name"))?;
    backend(routes, format!("{namespace}/{service}:{port}"))
}

fn backend(routes: &Routes, key: String) -> Result<(String, u16), String> {
    let local = routes.backends.lock().expect("routes lock").get(&key).copied();
    local.map(|local| (key.clone(), local)).ok_or_else(|| no_process(&key))
}

// Refusals name the Service first (`Routes::was_refused` reads them back).

fn no_process(key: &str) -> String {
    format!(
        "Service {key} has no process on this loopback cluster (its controller is not run here, or not started yet)"
    )
}

fn not_listening(key: &str, local: u16, err: &io::Error) -> String {
    format!("Service {key}: its process does not listen yet (127.0.0.1:{local}: {err})")
}

type Services = Arc<Mutex<HashMap<String, String>>>;

fn connect(stream: UnixStream, kube: &Kube, routes: &Routes, services: &Services) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let mut stream = stream;
    let Some(target) = request.strip_prefix("CONNECT ").and_then(|r| r.split_whitespace().next()) else {
        return stream.write_all(b"HTTP/1.1 405 only CONNECT\r\n\r\n");
    };
    match resolve(target, kube, routes, services) {
        Ok((key, local)) => {
            let upstream = match TcpStream::connect(("127.0.0.1", local)) {
                Ok(upstream) => upstream,
                Err(err) => return refuse(stream, routes, &not_listening(&key, local, &err)),
            };
            stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            pipe(stream, upstream)
        }
        Err(reason) => refuse(stream, routes, &reason),
    }
}

fn refuse(mut stream: impl Write, routes: &Routes, reason: &str) -> io::Result<()> {
    routes.refused.lock().expect("routes lock").push(reason.to_string());
    stream.write_all(format!("HTTP/1.1 503 {}\r\n\r\n", reason.replace(['\r', '\n'], " ")).as_bytes())
}

/// The Service and the loopback port behind `clusterIP:port`, or why there is none.
fn resolve(target: &str, kube: &Kube, routes: &Routes, services: &Services) -> Result<(String, u16), String> {
    let (ip, port) = target.rsplit_once(':').ok_or_else(|| format!("{target}: not host:port"))?;
    let known = services.lock().expect("services lock").get(ip).cloned();
    let service = match known {
        Some(service) => service,
        None => {
            let mut table = services.lock().expect("services lock");
            for item in kube.list("services").map_err(|e| format!("{target}: cannot list Services: {e:#}"))? {
                if let (Some(ip), Some(ns), Some(name)) = (
                    item["spec"]["clusterIP"].as_str(),
                    item["metadata"]["namespace"].as_str(),
                    item["metadata"]["name"].as_str(),
                ) {
                    table.insert(ip.to_string(), format!("{ns}/{name}"));
                }
            }
            table.get(ip).cloned().ok_or_else(|| format!("{target}: no Service has this ClusterIP"))?
        }
    };
    backend(routes, format!("{service}:{port}"))
}

/// A connection both ways (TCP or Unix).
trait Duplex: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    fn close_write(&self);
}

impl Duplex for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Duplex for UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

fn pipe(client: impl Duplex, upstream: TcpStream) -> io::Result<()> {
    let (mut client_read, mut upstream_write) = (client.duplicate()?, upstream.try_clone()?);
    let forward = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        upstream_write.close_write();
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = io::copy(&mut upstream_read, &mut client_write);
    client_write.close_write();
    let _ = forward.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_found_by_its_cluster_dns_name() {
        let routes = Routes::default();
        routes.add("monitoring", "prometheus-operated", 9090, 41000);
        for name in [
            "prometheus-operated.monitoring.svc:9090",
            "prometheus-operated.monitoring.svc.cluster.local:9090",
            "prometheus-operated.monitoring:9090",
        ] {
            assert_eq!(by_name(name, &routes), Ok(("monitoring/prometheus-operated:9090".into(), 41000)), "{name}");
        }
        let err = by_name("grafana.monitoring.svc:80", &routes).unwrap_err();
        assert!(err.contains("Service monitoring/grafana:80 has no process"), "{err}");
    }

    #[test]
    fn a_service_refused_for_want_of_a_process_is_known_by_name() {
        let routes = Routes::default();
        let err = by_name("kube-prometheus-stack-operator.monitoring.svc:443", &routes).unwrap_err();
        routes.refused.lock().unwrap().push(err);
        assert!(routes.was_refused("monitoring", "kube-prometheus-stack-operator"));
        assert!(!routes.was_refused("monitoring", "kube-prometheus-stack"));
        assert!(!routes.serves("monitoring", "kube-prometheus-stack-operator"));
        routes.add("monitoring", "kube-prometheus-stack-operator", 443, 41001);
        assert!(routes.serves("monitoring", "kube-prometheus-stack-operator"));
    }

    #[test]
    fn a_call_to_a_process_not_listening_yet_is_refused_with_the_service_name() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let routes = Routes::default();
        routes.add("kyverno", "kyverno-svc", 443, port);
        let proxy_port = serve_http_proxy(routes.clone()).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
        client.write_all(b"CONNECT kyverno-svc.kyverno.svc:443 HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 Service kyverno/kyverno-svc:443: its process does not listen yet"));
        assert!(routes.was_refused("kyverno", "kyverno-svc"));
        assert!(!routes.was_refused("kyverno", "kyverno"));
    }

    #[test]
    fn an_absolute_form_request_reaches_the_process_behind_the_service() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let routes = Routes::default();
        routes.add("monitoring", "prometheus-operated", 9090, backend.local_addr().unwrap().port());
        let proxy_port = serve_http_proxy(routes).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = backend.accept().unwrap();
            let mut line = String::new();
            BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
            (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").unwrap();
            line
        });
        let mut client = TcpStream::connect(("127.0.0.1", proxy_port)).unwrap();
        client
            .write_all(
                b"GET http://prometheus-operated.monitoring.svc:9090/api/v1/query?query=up HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(server.join().unwrap(), "GET /api/v1/query?query=up HTTP/1.1\r\n");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    }
}

//! The cluster network of a loopback run. kwok's pods have addresses that
//! nothing listens on, so the API server's calls to Services (admission
//! webhooks, by the `service` reference their charts register) leave through
//! its egress selector as HTTP CONNECT requests on a Unix socket, and arrive
//! here: the Service is found by its ClusterIP and the call is passed to the
//! loopback port of the real process that serves it (see `workloads.rs`). A
//! Service no process serves is refused with its name, which the API server
//! quotes in the admission error: nothing is faked as reachable.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
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
        Ok(local) => {
            let upstream = match TcpStream::connect(("127.0.0.1", local)) {
                Ok(upstream) => upstream,
                Err(err) => return refuse(stream, routes, &format!("{target}: 127.0.0.1:{local} refused: {err}")),
            };
            stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            pipe(stream, upstream)
        }
        Err(reason) => refuse(stream, routes, &reason),
    }
}

fn refuse(mut stream: UnixStream, routes: &Routes, reason: &str) -> io::Result<()> {
    routes.refused.lock().expect("routes lock").push(reason.to_string());
    stream.write_all(format!("HTTP/1.1 503 {}\r\n\r\n", reason.replace(['\r', '\n'], " ")).as_bytes())
}

/// The loopback port behind `clusterIP:port`, or why there is none.
fn resolve(target: &str, kube: &Kube, routes: &Routes, services: &Services) -> Result<u16, String> {
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
    let key = format!("{service}:{port}");
    routes.backends.lock().expect("routes lock").get(&key).copied().ok_or_else(|| {
        format!("Service {key} has no process on this loopback cluster (its controller is not run here)")
    })
}

fn pipe(client: UnixStream, upstream: TcpStream) -> io::Result<()> {
    let (mut client_read, mut upstream_write) = (client.try_clone()?, upstream.try_clone()?);
    let forward = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
    Ok(())
}

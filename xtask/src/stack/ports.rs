//! The stack's loopback ports: well-known defaults for `make stack` (with a
//! free port instead of any that is taken), all free ones for the e2e test.
//!
//! A port is free if 127.0.0.1 can bind it. Free ports are taken below the
//! kernel's ephemeral range: between the pick and the server's bind (seconds
//! under valgrind), a port of that range can become the local end of any
//! outgoing connection — and the loopback control plane reconciled beside
//! the stack's steps opens hundreds. This process never hands a port out twice.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

pub const HOST: &str = "127.0.0.1";

macro_rules! ports {
    ($($field:ident = $default:literal : $what:literal,)*) => {
        /// One port per listening socket of the stack.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Ports { $(pub $field: u16,)* }

        impl Ports {
            /// The ports `make stack` asks for first; the repository's
            /// prometheus.yml is written for them.
            pub const DEFAULTS: Ports = Ports { $($field: $default,)* };

            /// (field, port, what it is), in declaration order.
            pub fn all(&self) -> Vec<(&'static str, u16, &'static str)> {
                vec![$((stringify!($field), self.$field, $what),)*]
            }

            fn fields_mut(&mut self) -> Vec<(&'static str, &mut u16)> {
                vec![$((stringify!($field), &mut self.$field),)*]
            }
        }
    };
}

ports! {
    frontend = 9898: "demo-app frontend (UI, API)",
    frontend_metrics = 9797: "demo-app frontend metrics",
    backend = 9899: "demo-app backend (orders API)",
    backend_metrics = 9799: "demo-app backend metrics",
    otlp_grpc = 4317: "Collector OTLP/gRPC",
    otlp_http = 4318: "Collector OTLP/HTTP",
    collector_health = 13133: "Collector health_check",
    collector_self_metrics = 8888: "Collector self-metrics",
    collector_prometheus = 8889: "Collector prometheus exporter",
    jaeger_otlp_grpc = 14317: "Jaeger OTLP/gRPC",
    jaeger_query_http = 16686: "Jaeger UI and HTTP API",
    jaeger_query_grpc = 16685: "Jaeger query gRPC",
    jaeger_health = 14133: "Jaeger health",
    prometheus = 9090: "Prometheus",
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The defaults, each replaced by a free port when taken.
    PreferDefaults,
    /// Every port free, chosen by the kernel.
    AllFree,
}

/// The chosen ports and, for `PreferDefaults`, the defaults that were taken.
pub struct Picked {
    pub ports: Ports,
    pub replaced: Vec<String>,
}

pub fn pick(choice: Choice) -> Result<Picked> {
    let mut ports = Ports::DEFAULTS;
    let mut replaced = Vec::new();
    for (field, port) in ports.fields_mut() {
        if choice == Choice::PreferDefaults && claim(*port) {
            continue;
        }
        let free = free_port().with_context(|| format!("no free port for {field}"))?;
        if choice == Choice::PreferDefaults {
            replaced.push(format!("{field}: {} is taken, using {free}", *port));
        }
        *port = free;
    }
    Ok(Picked { ports, replaced })
}

/// The lowest port [`free_port`] hands out: above the well-known defaults
/// of the tools we run (Prometheus 9090, the Collector 13133, Jaeger 16686…
/// are below or taken by `claim` first), far from privileged ports.
const FIRST_FREE: u16 = 20_000;

/// A loopback port 127.0.0.1 can bind now, chosen at random below the
/// kernel's ephemeral range (see the module comment), never one this
/// process handed out before.
pub fn free_port() -> Result<u16> {
    let end = ephemeral_start().max(FIRST_FREE + 1_000);
    let span = u64::from(end - FIRST_FREE);
    let random = RandomState::new();
    for attempt in 0..1_000u64 {
        let port = FIRST_FREE + (random.hash_one(attempt) % span) as u16;
        if claim(port) {
            return Ok(port);
        }
    }
    bail!("no free loopback port in {FIRST_FREE}..{end} after 1000 tries: what holds them? (`ss -tlnp`)")
}

/// Takes `port` for this process if it is bindable and not handed out yet.
fn claim(port: u16) -> bool {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    !handed_out.contains(&port) && TcpListener::bind((HOST, port)).is_ok() && handed_out.insert(port)
}

/// The first port of `net.ipv4.ip_local_port_range` (Linux's default 32768).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> String {
    format!("{HOST}:{port}")
}

pub fn socket(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (field, port, what) in self.all() {
            writeln!(f, "  {port:>5}  {what} ({field})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_distinct() {
        let mut ports: Vec<u16> = Ports::DEFAULTS.all().into_iter().map(|(_, p, _)| p).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), Ports::DEFAULTS.all().len());
    }

    #[test]
    fn free_ports_are_distinct() {
        // (Whether each is still free a moment later depends on the rest of
        // the machine, so that is the health checks' business, not a test's.)
        let picked = pick(Choice::AllFree).unwrap();
        let ports: Vec<u16> = picked.ports.all().into_iter().map(|(_, p, _)| p).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|&p| p != 0));
        assert!(picked.replaced.is_empty());
    }

    #[test]
    fn a_taken_default_is_replaced_and_reported() {
        // Hold whatever the first default is (or find it already taken).
        let _guard = TcpListener::bind((HOST, Ports::DEFAULTS.frontend));
        let picked = pick(Choice::PreferDefaults).unwrap();
        assert_ne!(picked.ports.frontend, Ports::DEFAULTS.frontend);
        assert!(picked.replaced.iter().any(|r| r.starts_with("frontend: 9898 is taken")), "{:?}", picked.replaced);
    }

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        let end = ephemeral_start().max(FIRST_FREE + 1_000);
        assert!(ports.iter().all(|&p| (FIRST_FREE..end).contains(&p)), "{ports:?} outside {FIRST_FREE}..{end}");
    }

    #[test]
    fn a_held_port_is_not_free() {
        let held = TcpListener::bind((HOST, 0)).unwrap();
        assert!(!claim(held.local_addr().unwrap().port()));
    }
}

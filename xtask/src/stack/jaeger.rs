//! Jaeger v2 in the stack (in-memory storage, deploy/observability/jaeger/
//! config.yaml) and the trace check of the e2e test, through Jaeger's
//! OTLP-shaped HTTP API v3 (`/api/v3/traces/{id}`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use serde_json::Value;

use super::collector::{array, attribute, service_name};
use super::http;
use super::ports::{Ports, addr};
use crate::project::Project;

pub const CONFIG: &str = "deploy/observability/jaeger/config.yaml";

pub fn command(project: &Project, binary: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(binary);
    super::clean_env(&mut cmd);
    cmd.arg("--config").arg(format!("file:{}", project.root.join(CONFIG).display()));
    cmd.env("JAEGER_OTLP_GRPC_ENDPOINT", addr(ports.jaeger_otlp_grpc))
        .env("JAEGER_QUERY_HTTP_ENDPOINT", addr(ports.jaeger_query_http))
        .env("JAEGER_QUERY_GRPC_ENDPOINT", addr(ports.jaeger_query_grpc))
        .env("JAEGER_HEALTH_ENDPOINT", addr(ports.jaeger_health))
        // Jaeger's query service traces itself over OTLP to 127.0.0.1:4317
        // by default, which is our Collector in `make stack` (its traces
        // would show up as service "jaeger") or nothing (a 10 s stall on
        // exit). Its tracer ignores OTEL_TRACES_EXPORTER but honours the
        // sampler: sample nothing, export nothing.
        .env("OTEL_TRACES_SAMPLER", "always_off");
    cmd
}

/// Healthy, and the query API answers.
pub fn ready(ports: &Ports) -> Result<Option<()>> {
    let health = http::get(ports.jaeger_health, "/status")?;
    if health.status != 200 {
        bail!("/status answered {}", health.status);
    }
    services(ports.jaeger_query_http).map(|_| Some(()))
}

/// `GET /api/v3/services`.
pub fn services(port: u16) -> Result<Vec<String>> {
    let response = http::get(port, "/api/v3/services")?;
    if response.status != 200 {
        bail!("/api/v3/services answered {}: {}", response.status, http::abbreviate(&response.text(), 200));
    }
    let json = response.json()?;
    Ok(array(&json["services"]).filter_map(|s| s.as_str().map(str::to_string)).collect())
}

/// The spans of one trace, or `None` while Jaeger has none (404).
pub fn trace(port: u16, trace_id: &str) -> Result<Option<Vec<Span>>> {
    let response = http::get(port, &format!("/api/v3/traces/{trace_id}"))?;
    match response.status {
        200 => Ok(Some(spans(&response.json()?))),
        404 => Ok(None),
        other => bail!("/api/v3/traces/{trace_id} answered {other}: {}", http::abbreviate(&response.text(), 200)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
    Unspecified,
}

impl Kind {
    /// OTLP JSON carries the enum as a number; accept its name too.
    fn parse(value: &Value) -> Kind {
        let text = value.as_str().unwrap_or_default();
        match value.as_i64() {
            Some(1) => Kind::Internal,
            Some(2) => Kind::Server,
            Some(3) => Kind::Client,
            Some(4) => Kind::Producer,
            Some(5) => Kind::Consumer,
            _ if text.ends_with("INTERNAL") => Kind::Internal,
            _ if text.ends_with("SERVER") => Kind::Server,
            _ if text.ends_with("CLIENT") => Kind::Client,
            _ if text.ends_with("PRODUCER") => Kind::Producer,
            _ if text.ends_with("CONSUMER") => Kind::Consumer,
            _ => Kind::Unspecified,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: Kind,
    pub attributes: Value,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&Value> {
        attribute(&self.attributes, key)
    }

    fn describe(&self) -> String {
        let parent = if self.parent_span_id.is_empty() { "-" } else { &self.parent_span_id };
        format!("{} {:?} {:?} span {} parent {parent}", self.service, self.kind, self.name, self.span_id)
    }
}

/// Flattens an OTLP `{"result": {"resourceSpans": [...]}}` answer.
pub fn spans(answer: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for resource in array(&answer["result"]["resourceSpans"]) {
        let service = service_name(&resource["resource"]);
        for scope in array(&resource["scopeSpans"]) {
            for span in array(&scope["spans"]) {
                let id = |key: &str| span[key].as_str().unwrap_or_default().to_ascii_lowercase();
                out.push(Span {
                    service: service.clone(),
                    span_id: id("spanId"),
                    parent_span_id: id("parentSpanId"),
                    name: span["name"].as_str().unwrap_or_default().to_string(),
                    kind: Kind::parse(&span["kind"]),
                    attributes: span["attributes"].clone(),
                });
            }
        }
    }
    out
}

/// The four links the e2e test asks for, found in one trace.
#[derive(Debug)]
pub struct Chain {
    pub frontend_server: Span,
    pub frontend_client: Span,
    pub backend_server: Span,
    pub database: Span,
}

impl Chain {
    pub fn describe(&self) -> String {
        [&self.frontend_server, &self.frontend_client, &self.backend_server, &self.database]
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join("\n    -> ")
    }
}

/// Finds frontend server span (POST /api/checkout) -> its client span ->
/// the backend server span (POST /api/orders) -> a database span.
///
/// The cross-service link is exact: the backend server span's parent is the
/// frontend client span. Inside a service, internal spans may sit between
/// two links (a handler or store span), as long as the parent chain reaches
/// the previous link without leaving that service. The error says which
/// link is missing and lists the spans that are there.
pub fn find_chain(spans: &[Span], frontend: &str, backend: &str) -> Result<Chain, String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let is_checkout = |s: &&Span| {
        s.service == frontend
            && s.kind == Kind::Server
            && (s.attr("http.route").and_then(Value::as_str) == Some("/api/checkout")
                || s.name.contains("/api/checkout"))
    };
    let is_orders = |s: &Span| {
        s.service == backend
            && s.kind == Kind::Server
            && (s.attr("http.route").and_then(Value::as_str) == Some("/api/orders") || s.name.contains("/api/orders"))
    };
    let is_database =
        |s: &&Span| s.service == backend && (s.attr("db.system.name").is_some() || s.attr("db.system").is_some());

    let servers: Vec<&Span> = spans.iter().filter(is_checkout).collect();
    let mut missing = if servers.is_empty() {
        format!("no {frontend} SERVER span for POST /api/checkout (http.route=/api/checkout)")
    } else {
        format!("no {frontend} CLIENT span under the checkout server span")
    };
    for server in &servers {
        let clients = spans.iter().filter(|s| s.kind == Kind::Client && descends(&by_id, s, &server.span_id, frontend));
        for client in clients {
            missing = format!(
                "no {backend} SERVER span for POST /api/orders whose parent is the client span {}",
                client.span_id
            );
            let Some(orders) = spans.iter().find(|s| is_orders(s) && s.parent_span_id == client.span_id) else {
                continue;
            };
            missing = format!(
                "no {backend} span with db.system.name under the orders server span {} (the database span)",
                orders.span_id
            );
            let Some(database) =
                spans.iter().filter(is_database).find(|s| descends(&by_id, s, &orders.span_id, backend))
            else {
                continue;
            };
            return Ok(Chain {
                frontend_server: (*server).clone(),
                frontend_client: client.clone(),
                backend_server: orders.clone(),
                database: database.clone(),
            });
        }
    }
    let mut message = format!("{missing}; the trace has {} span(s):", spans.len());
    for span in spans {
        let _ = write!(message, "\n    {}", span.describe());
    }
    Err(message)
}

/// Whether `span`'s parent chain reaches `ancestor` while every span on the
/// way (including `span`) belongs to `service`.
fn descends(by_id: &HashMap<&str, &Span>, span: &Span, ancestor: &str, service: &str) -> bool {
    let mut current = span;
    for _ in 0..64 {
        if current.service != service {
            return false;
        }
        if current.parent_span_id == ancestor {
            return true;
        }
        match by_id.get(current.parent_span_id.as_str()) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// Reads a v3 answer from a file (tests and debugging).
#[cfg(test)]
fn spans_from_file(text: &str) -> Result<Vec<Span>> {
    Ok(spans(&serde_json::from_str(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("testdata/jaeger-v3-trace.json");

    #[test]
    fn finds_the_four_links_in_a_real_jaeger_answer() {
        let spans = spans_from_file(FIXTURE).unwrap();
        assert_eq!(spans.len(), 4);
        let chain = find_chain(&spans, "demo-app-frontend", "demo-app-backend").unwrap();
        assert_eq!(chain.frontend_server.span_id, "b7ad6b7169203331");
        assert_eq!(chain.frontend_client.span_id, "c7ad6b7169203331");
        assert_eq!(chain.backend_server.span_id, "d7ad6b7169203331");
        assert_eq!(chain.database.span_id, "e7ad6b7169203331");
        assert!(chain.describe().contains("demo-app-backend Client \"INSERT orders\""), "{}", chain.describe());
    }

    #[test]
    fn internal_spans_may_sit_inside_a_service_but_not_across() {
        let mut spans = spans_from_file(FIXTURE).unwrap();
        // Put an internal span between the orders server span and the query.
        let mut middle = spans[3].clone();
        middle.span_id = "f7ad6b7169203331".into();
        middle.kind = Kind::Internal;
        middle.attributes = Value::Null;
        spans[3].parent_span_id = middle.span_id.clone();
        spans.push(middle);
        assert!(find_chain(&spans, "demo-app-frontend", "demo-app-backend").is_ok());

        // The backend server span no longer points at the client span.
        spans[2].parent_span_id = "b7ad6b7169203331".into();
        let err = find_chain(&spans, "demo-app-frontend", "demo-app-backend").unwrap_err();
        assert!(err.starts_with("no demo-app-backend SERVER span for POST /api/orders whose parent is"), "{err}");
        assert!(err.contains("the trace has 5 span(s)"), "{err}");
    }

    #[test]
    fn names_the_first_missing_link() {
        let spans = spans_from_file(FIXTURE).unwrap();
        let err = find_chain(&spans[2..], "demo-app-frontend", "demo-app-backend").unwrap_err();
        assert!(err.starts_with("no demo-app-frontend SERVER span for POST /api/checkout"), "{err}");
        let err = find_chain(&spans[..3], "demo-app-frontend", "demo-app-backend").unwrap_err();
        assert!(err.starts_with("no demo-app-backend span with db.system.name"), "{err}");
    }
}

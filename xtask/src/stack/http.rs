//! HTTP to the loopback servers of the stack (health checks, Jaeger's and
//! Prometheus' APIs, checkout requests), through ureq: any status is an
//! answer for the caller to judge, not an error; 10 s per request.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, Result};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Jaeger's traces can be large; nothing here answers more.
const BODY_LIMIT: u64 = 64 << 20;

static AGENT: LazyLock<ureq::Agent> = LazyLock::new(|| {
    ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into()
});

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON: {}", abbreviate(&self.text(), 300)))
    }
}

/// `GET http://127.0.0.1:{port}{path}`.
pub fn get(port: u16, path: &str) -> Result<Response> {
    request("GET", port, path, &[], None)
}

/// `POST` of a JSON body.
pub fn post_json(port: u16, path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Result<Response> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", port, path, &all, Some(body.to_string().as_bytes()))
}

pub fn request(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut builder = ureq::http::Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.unwrap_or_default().to_vec()).with_context(|| format!("{method} {url}"))?;
    let mut response = AGENT.run(request).with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_vec()
        .with_context(|| format!("{method} {url}: reading the body"))?;
    Ok(Response { status, body })
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first `max` characters, with an ellipsis when cut.
pub fn abbreviate(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_promql() {
        assert_eq!(encode(r#"sum(up{job="x"})"#), "sum%28up%7Bjob%3D%22x%22%7D%29");
    }
}

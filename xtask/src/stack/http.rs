//! A small HTTP/1.1 client for loopback servers of the stack (health checks,
//! Jaeger's and Prometheus' APIs, checkout requests): one connection per
//! request, `Connection: close`, fixed-length or chunked bodies.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::ports::socket;

pub const TIMEOUT: Duration = Duration::from_secs(10);

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
    let what = || format!("{method} http://127.0.0.1:{port}{path}");
    let mut stream = TcpStream::connect_timeout(&socket(port), TIMEOUT).with_context(what)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&raw).with_context(what)?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received).with_context(what)?;
    parse(&received).with_context(what)
}

/// Parses a complete response (the server closed the connection).
pub fn parse(raw: &[u8]) -> Result<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..end]).context("response headers are not UTF-8")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < length {
            bail!("body cut short: {} of {length} bytes", rest.len());
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").context("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("chunk cut short");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
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
    fn parses_fixed_length_and_chunked_bodies() {
        let fixed = parse(b"HTTP/1.1 201 Created\r\nX-A: b\r\ncontent-LENGTH: 5\r\n\r\nhello, and more").unwrap();
        assert_eq!((fixed.status, fixed.text().as_str()), (201, "hello"));
        let chunked =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(chunked.text(), "Wikipedia ");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(encode(r#"sum(up{job="x"})"#), "sum%28up%7Bjob%3D%22x%22%7D%29");
    }

    #[test]
    fn talks_to_a_real_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
            request
        });
        let response =
            post_json(port, "/api/checkout", &[("traceparent", "00-ab-cd-01")], &serde_json::json!({})).unwrap();
        assert_eq!(response.status, 200);
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /api/checkout HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("traceparent: 00-ab-cd-01\r\n"), "{request}");
        assert!(request.ends_with("content-length: 2\r\n\r\n{}"), "{request}");
    }
}

//! The baseline answers what the benchmark sends, like demo-app: the info
//! document with podinfo's keys, the health body, the echoed body with 202.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_hyper-baseline")).arg(port.to_string()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "hyper-baseline did not listen on {port}");
        sleep(Duration::from_millis(20));
    }
    Server(child, port)
}

/// (status, body) of one request on a fresh connection.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn answers_info_healthz_and_echo() {
    let server = start();
    let (status, body) = request(server.1, "GET", "/api/info", "");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "hostname",
        "version",
        "revision",
        "color",
        "logo",
        "message",
        "goos",
        "goarch",
        "runtime",
        "num_goroutine",
        "num_cpu",
    ] {
        assert!(info[key].is_string(), "{key} missing or not a string in {body}");
    }
    assert_eq!(request(server.1, "GET", "/healthz", ""), (200, r#"{"status":"OK"}"#.to_string()));
    assert_eq!(request(server.1, "POST", "/api/echo", "hello"), (202, "hello".to_string()));
    assert_eq!(request(server.1, "GET", "/nope", "").0, 404);
}

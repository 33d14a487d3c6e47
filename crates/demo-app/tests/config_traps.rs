//! Configuration mistakes are refused at start-up with the flag's name,
//! never turned into a silently different service; what the process does
//! instead of what was asked is said in its log.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};

fn start(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DEMO_APP_LEVEL")
        .output()
        .expect("the binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_unknown_log_level_is_refused() {
    let (ok, stderr) = start(&["--level", "verbose", "--port", "0"], &[]);
    assert!(!ok);
    assert!(stderr.contains("unknown log level \"verbose\""), "{stderr}");
}

#[test]
fn empty_urls_from_the_environment_are_refused() {
    for name in ["DEMO_APP_DATABASE_URL", "DEMO_APP_BACKEND_URL"] {
        let (ok, stderr) = start(&["--port", "0"], &[(name, "")]);
        assert!(!ok, "{name}= was accepted");
        assert!(stderr.contains("must not be empty"), "{name}: {stderr}");
    }
}

/// The binary running with its JSON log on a pipe, read line by line.
struct Running {
    child: Child,
    log: BufReader<ChildStdout>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .args(args)
            .env_remove("DEMO_APP_LEVEL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let log = BufReader::new(child.stdout.take().unwrap());
        Self { child, log }
    }

    /// On free ports with its data in `data`; its "listening" log line.
    fn listening(data: &std::path::Path) -> (Self, serde_json::Value) {
        let mut app = Self::start(&["--port", "0", "--port-metrics", "0", "--data-path", data.to_str().unwrap()]);
        let line = app.line("demo-app listening");
        (app, line)
    }

    /// The first log line whose message contains `message` (within 200 lines).
    fn line(&mut self, message: &str) -> serde_json::Value {
        for _ in 0..200 {
            let mut line = String::new();
            assert!(self.log.read_line(&mut line).unwrap() > 0, "the log ended before {message:?}");
            let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            if field(&line, "message").and_then(|m| m.as_str()).is_some_and(|m| m.contains(message)) {
                return line;
            }
        }
        panic!("no log line says {message:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a JSON log line, at the top or under `fields`.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line.get(name).or_else(|| line.get("fields")?.get(name))
}

/// One HTTP/1.1 exchange on loopback; the status code.
fn status(port: u64, method: &str, path: &str, body: &str) -> u16 {
    let mut socket = TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer[9..12].parse().unwrap()
}

/// `--port-metrics 0` takes a free port (it does not turn the server off:
/// the chart's probes need it), and the log says which.
#[test]
fn metrics_port_0_takes_a_free_port_and_the_log_names_it() {
    let data = tempfile::tempdir().unwrap();
    let (_app, listening) = Running::listening(data.path());
    let port = field(&listening, "metrics_port").and_then(|p| p.as_u64()).expect("the metrics port in the log");
    assert!(port != 0 && port != 9797, "metrics port {port}");
    assert_eq!(status(port, "GET", "/healthz", ""), 200);
}

/// A 503 tells the client to retry; the operator reads why in the log.
#[test]
fn the_cause_of_a_503_is_logged() {
    let data = tempfile::tempdir().unwrap();
    let (mut app, listening) = Running::listening(data.path());
    let port = field(&listening, "port").and_then(|p| p.as_u64()).expect("the port in the log");
    std::fs::remove_file(data.path().join("demo-app.db")).unwrap();
    let order = r#"{"sku":"gone","quantity":1,"unit_price_cents":100}"#;
    assert_eq!(status(port, "POST", "/api/orders", order), 503);
    let warning = app.line("answering 503");
    let cause = field(&warning, "error").and_then(|e| e.as_str()).unwrap_or_default();
    assert!(cause.contains("removed or replaced"), "the log names no cause: {warning}");
}

/// podinfo's `--stress-cpu` keeps cores busy from start-up, and says so.
#[test]
fn stress_cpu_keeps_a_core_busy() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let mut app = Running::start(&["--port", "0", "--port-metrics", "0", "--stress-cpu", "1", "--data-path", data]);
    let warning = app.line("stress test on");
    assert_eq!(field(&warning, "cores").and_then(|c| c.as_u64()), Some(1), "{warning}");
    // utime + stime of /proc/<pid>/stat, in clock ticks (100 a second).
    let pid = app.child.id();
    let busy_seconds = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<u64> = after_name.split(' ').skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        (fields[0] + fields[1]) as f64 / 100.0
    };
    // An idle server uses a few milliseconds; a spinning thread a second a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while busy_seconds() < 0.5 {
        assert!(std::time::Instant::now() < deadline, "{:.2} CPU-s after 10 s: no core kept busy", busy_seconds());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

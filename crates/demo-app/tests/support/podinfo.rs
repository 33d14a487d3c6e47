//! The real podinfo, built by `make tools`, for the differential tests.
// Compiled into every test binary that uses `support`, used by two.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// A running podinfo, killed when dropped.
pub struct Podinfo {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the API under test.
    pub base: String,
    pub data: tempfile::TempDir,
}

impl Drop for Podinfo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podinfo in the tools cache, or a failure naming the command that builds it.
pub fn binary() -> std::path::PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let bin = cache.join("demo-platform/tools/bin/podinfo");
    assert!(bin.exists(), "podinfo not found at {}; run `make tools` first", bin.display());
    bin
}

/// Starts podinfo on loopback with `args` (ports among them), its data in a
/// temporary folder; `base` is `http://127.0.0.1:{port}`.
pub fn spawn(port: u16, args: &[&str]) -> Podinfo {
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(binary())
        .args(["--host", "127.0.0.1", "--level", "error"])
        .args(args)
        .arg("--data-path")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podinfo starts");
    Podinfo { child, base: format!("http://127.0.0.1:{port}"), data }
}

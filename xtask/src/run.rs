//! `cargo xtask run` (`make run`): demo-app locally, every API in one
//! process, SQLite under ./.data.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::project::Project;

pub const PORT: u16 = 9898;
pub const METRICS_PORT: u16 = 9797;

pub fn run(project: &Project, extra: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let data = project.root.join(".data");
    println!("demo-app (role all, SQLite in {}):", data.display());
    println!("  UI        http://127.0.0.1:{PORT}/");
    println!("  API       http://127.0.0.1:{PORT}/api/info   http://127.0.0.1:{PORT}/api/orders");
    println!("  OpenAPI   http://127.0.0.1:{PORT}/openapi.json");
    println!("  metrics   http://127.0.0.1:{METRICS_PORT}/metrics");
    println!("Ctrl-C stops it.\n");
    let status = Command::new(cargo)
        .current_dir(&project.root)
        .args(["run", "--quiet", "--package", "demo-app", "--"])
        // Ctrl-C stops it at once: no load balancer to drain from locally.
        .args(["--host", "127.0.0.1", "--role", "all", "--insecure-dev", "--drain-delay", "0s"])
        .args(["--port", &PORT.to_string(), "--port-metrics", &METRICS_PORT.to_string()])
        .arg("--data-path")
        .arg(&data)
        .args(extra)
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("demo-app exited with {status}");
    }
    Ok(())
}

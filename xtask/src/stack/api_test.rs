//! `cargo xtask api-test` (part of `make test`): schemathesis, from PyPI,
//! generates requests from demo-app's own OpenAPI document and checks every
//! answer against it: no server error, no answer the document does not
//! describe, invalid input refused, valid input accepted, links followed
//! (its stateful phase). The operations left out, and the checks turned off
//! for some, are in `tools/schemathesis/schemathesis.toml`, each with its reason.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::app;
use super::process::{self, Supervisor};
use crate::cmd;
use crate::project::Project;
use crate::tools;

const CONFIG: &str = "tools/schemathesis/schemathesis.toml";
/// Examples per operation and phase: about 1,800 requests, ten seconds.
const EXAMPLES: &str = "50";

pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let schemathesis = tools::locate(project, "schemathesis")?;
    let binary = app::build(project)?;
    let dir = tempfile::tempdir()?;
    let mut supervisor = Supervisor::default();
    let mut demo_app = Command::new(&binary);
    super::clean_env(&mut demo_app);
    // Role all on SQLite, control endpoints on (documented, so tested), port 0.
    demo_app
        .args(["--host", "127.0.0.1", "--port", "0", "--port-metrics", "0", "--insecure-dev", "--drain-delay", "0s"])
        .args(["--control-endpoints=true", "--level", "info", "--data-path"])
        .arg(dir.path().join("data"));
    let log = dir.path().join("demo-app.log");
    supervisor.spawn("demo-app", demo_app, &log, Duration::from_secs(5))?;
    let (port, _) = app::bound_ports(&log)?;
    let result = schemathesis_run(project, &schemathesis, port);
    let status = supervisor.stop("demo-app")?;
    let summary = result?;
    if !status.success() {
        bail!("demo-app exited with {status} after the run (log: {})", std::fs::read_to_string(&log)?);
    }
    println!("api test: {summary}; demo-app stopped cleanly");
    Ok(())
}

/// The run's "N generated, N passed" line, or the failures schemathesis found.
fn schemathesis_run(project: &Project, schemathesis: &Path, port: u16) -> Result<String> {
    let mut run = Command::new(schemathesis);
    run.arg("--no-color")
        .arg("--config-file")
        .arg(project.root.join(CONFIG))
        .args(["run", &format!("http://127.0.0.1:{port}/openapi.json"), "--max-examples", EXAMPLES])
        // Deterministic: the same requests every run (and no example
        // database written into the working tree).
        .args(["--workers", "2", "--request-timeout", "5", "--generation-deterministic"]);
    println!("{}", cmd::display(&run));
    let output = cmd::capture(&mut run)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = counts(&stdout).with_context(|| {
        format!(
            "schemathesis printed no counts ({}):\n{}",
            output.status,
            cmd::tail(&output.stderr, &output.stdout, 30)
        )
    })?;
    if !output.status.success() {
        bail!("schemathesis found failures ({summary}):\n{}", cmd::tail(&output.stderr, &output.stdout, 80));
    }
    if summary.starts_with("0 operations") || summary.contains(": 0 generated") {
        bail!("schemathesis generated no request: {summary}");
    }
    Ok(summary)
}

/// `36 operations: 1818 generated, 1818 passed` (or `..., 2 found 2 unique
/// failures`).
fn counts(stdout: &str) -> Option<String> {
    let line = |needle: &str| stdout.lines().map(str::trim).find(|l| l.contains(needle));
    let operations = line("Tested: ")?.trim_start_matches("Tested: ");
    Some(format!("{operations} operations: {}", line(" generated, ")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counts_line_is_found() {
        let out = "  Tested: 36\n\n  1818 generated, 1818 passed\n\n=== 2 warnings in 9.61s ===\n";
        assert_eq!(super::counts(out).as_deref(), Some("36 operations: 1818 generated, 1818 passed"));
        assert_eq!(super::counts("no summary"), None);
    }
}

//! Programs that come from Debian packages: installed with apt-get when we are
//! root and they are missing; otherwise a message names the package.

use std::env;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::cmd;

pub struct DebianTool {
    pub binary: &'static str,
    pub package: &'static str,
}

pub const DEBIAN_TOOLS: &[DebianTool] = &[
    DebianTool { binary: "promtool", package: "prometheus" },
    DebianTool { binary: "prometheus", package: "prometheus" },
    DebianTool { binary: "initdb", package: "postgresql" },
    DebianTool { binary: "pg_ctl", package: "postgresql" },
    DebianTool { binary: "shellcheck", package: "shellcheck" },
    DebianTool { binary: "wrk", package: "wrk" },
    // Instructions per request in `make bench` (callgrind, callgrind_control).
    DebianTool { binary: "valgrind", package: "valgrind" },
    DebianTool { binary: "chromium", package: "chromium" },
    DebianTool { binary: "chromedriver", package: "chromium-driver" },
    // The loopback cluster's certificates, and the Git server Flux reads from
    // (`git http-backend`).
    DebianTool { binary: "openssl", package: "openssl" },
    DebianTool { binary: "git", package: "git" },
    // What podinfo's Helm test pods run (templates/tests/*.yaml).
    DebianTool { binary: "curl", package: "curl" },
    DebianTool { binary: "jq", package: "jq" },
];

/// Where the program is on PATH (or in PostgreSQL's versioned folder), or
/// where apt-get would put it.
pub fn binary_path(tool: &DebianTool) -> PathBuf {
    let path_dirs = env::var_os("PATH").map(|p| env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let postgres_dirs =
        std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin"));
    path_dirs
        .into_iter()
        .chain(postgres_dirs)
        .map(|dir| dir.join(tool.binary))
        .find(|p| p.is_file())
        // The program itself, not a link to it (tools/bin links to these):
        // valgrind's launcher runs `$0.bin`, which exists only beside it.
        .map(|p| p.canonicalize().unwrap_or(p))
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(tool.binary))
}

/// The installed version of the package that provides the program, if any.
pub fn installed_version(tool: &DebianTool) -> Option<String> {
    let package = if tool.package == "postgresql" { postgres_package()? } else { tool.package.to_string() };
    let out = cmd::capture(Command::new("dpkg-query").args(["-W", "-f=${Version}", &package])).ok()?;
    out.status.success().then(|| cmd::first_line(&out)).filter(|v| !v.is_empty())
}

/// PostgreSQL's server package is versioned (`postgresql-15`).
fn postgres_package() -> Option<String> {
    let out = cmd::capture(Command::new("dpkg-query").args(["-W", "-f=${Package}\n", "postgresql-[0-9]*"])).ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}

pub fn install(tool: &DebianTool) -> Result<()> {
    if !is_root()? {
        bail!(
            "{} is missing and only root can install it: run `sudo apt-get install -y {}`",
            tool.binary,
            tool.package
        );
    }
    static UPDATED: AtomicBool = AtomicBool::new(false);
    if !UPDATED.swap(true, Ordering::SeqCst) {
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    cmd::run(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        tool.package,
    ]))?;
    Ok(())
}

fn is_root() -> Result<bool> {
    Ok(cmd::first_line(&cmd::run(Command::new("id").arg("-u"))?) == "0")
}

//! The Rust servers, built by the workspace's cargo (so CARGO_TARGET_DIR and
//! `build.target-dir` are respected); their paths come from cargo's report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::project::Project;

/// `cargo build --profile <profile>` of the packages' binaries of the same
/// name; returns name → executable.
pub fn binaries(project: &Project, profile: &str, packages: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    let started = Instant::now();
    let mut found = if profile == "dev" {
        // The smoke in `make test` runs the binaries its compile step made.
        crate::cargo::workspace_binaries(project)?
    } else {
        // One build per package: built together, the packages' shared
        // dependencies would get the union of their features, a different
        // hash in every symbol name than the image's `cargo build -p
        // demo-app`, and demo-app's code layout (hot_code.rs) would not match.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut found = BTreeMap::new();
        for package in packages {
            let mut build = Command::new(&cargo);
            build.current_dir(&project.root).args(["build", "--locked", "--profile", profile]);
            build.args(["--package", package, "--bin", package]);
            found.append(&mut crate::cargo::binaries_of(build)?);
        }
        found
    };
    found.retain(|name, _| packages.contains(&name.as_str()));
    for package in packages {
        if !found.contains_key(*package) {
            bail!("cargo reported no executable for {package}");
        }
    }
    println!("built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(found)
}

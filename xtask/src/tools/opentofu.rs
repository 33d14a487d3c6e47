//! OpenTofu, built from the Go module proxy by `tools/opentofu`: a module of
//! our own because OpenTofu needs its `replace` of github.com/hashicorp/hcl/v2
//! (by its fork), which a plain `go install` of a dependency would ignore.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::go::{COMPILE_FLAGS, go_build, go_version};
use super::{fingerprint, read};
use crate::cmd;
use crate::project::Project;

pub const NAME: &str = "tofu";
const MODULE: &str = "github.com/opentofu/opentofu";
const VERSION: &str = "v1.12.6";
const PACKAGE: &str = "github.com/opentofu/opentofu/cmd/tofu";
/// A module build cannot know it is a release; upstream's release build says so
/// this way (otherwise `tofu version` reports `-dev`).
const LDFLAGS: &str = "-s -w -X github.com/opentofu/opentofu/version.dev=no";

fn module_dir(project: &Project) -> PathBuf {
    project.root.join("tools/opentofu")
}

pub fn version() -> String {
    VERSION.to_string()
}

pub fn binary_path(project: &Project) -> Result<PathBuf> {
    let dir = module_dir(project);
    let key = fingerprint(&[
        &read(&dir.join("go.mod"))?,
        &read(&dir.join("go.sum"))?,
        go_version()?.as_bytes(),
        LDFLAGS.as_bytes(),
        COMPILE_FLAGS.as_bytes(),
    ]);
    Ok(project.tools_dir().join("go").join(format!("opentofu-{key}")).join(NAME))
}

pub fn build(project: &Project) -> Result<()> {
    let target = binary_path(project)?;
    let out_dir = target.parent().expect("binary path has a folder");
    let staging = out_dir.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    let mut build = go_build(&module_dir(project));
    build
        .env("GOWORK", "off")
        .args(["build", "-trimpath", "-mod=readonly", COMPILE_FLAGS, "-ldflags", LDFLAGS, "-o"])
        .arg(staging.join(NAME))
        .arg(PACKAGE);
    cmd::run(&mut build).with_context(|| format!("building {MODULE}@{VERSION} failed"))?;
    let _ = fs::remove_dir_all(out_dir);
    fs::rename(&staging, out_dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants above and tools/opentofu/go.mod must agree, and the HCL
    /// replace must stay (without it the build picks upstream HCL and fails).
    #[test]
    fn go_mod_pins_the_version_and_keeps_the_hcl_replace() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let go_mod = fs::read_to_string(root.join("tools/opentofu/go.mod")).unwrap();
        assert!(go_mod.lines().any(|l| l.trim() == format!("tool {PACKAGE}")), "tool directive missing");
        assert!(go_mod.lines().any(|l| l.trim().starts_with(&format!("{MODULE} {VERSION}"))), "{MODULE} {VERSION}");
        assert!(
            go_mod.lines().any(|l| l.starts_with("replace github.com/hashicorp/hcl/v2") && l.contains("opentofu/hcl")),
            "the replace of hashicorp/hcl/v2 by opentofu/hcl/v2 is missing"
        );
    }
}

//! The OpenTelemetry Collector, assembled by the Collector Builder from
//! `tools/otelcol/manifest.yaml` (the builder itself is pinned in go.mod).

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::go::{COMPILE_FLAGS, go_build, go_version};
use super::{fingerprint, read};
use crate::cmd;
use crate::project::Project;

pub const NAME: &str = "otelcol";

fn module_dir(project: &Project) -> PathBuf {
    project.root.join("tools").join(NAME)
}

/// `dist.version` of the manifest: the Collector release it is built from.
pub fn version(project: &Project) -> Result<String> {
    let manifest: serde_norway::Value = serde_norway::from_slice(&read(&module_dir(project).join("manifest.yaml"))?)?;
    manifest["dist"]["version"]
        .as_str()
        .map(|v| format!("v{v}"))
        .context("tools/otelcol/manifest.yaml has no dist.version")
}

pub fn binary_path(project: &Project) -> Result<PathBuf> {
    let dir = module_dir(project);
    let key = fingerprint(&[
        &read(&dir.join("manifest.yaml"))?,
        &read(&dir.join("stub/semconvtest/go.mod"))?,
        &read(&dir.join("go.mod"))?,
        &read(&dir.join("go.sum"))?,
        go_version()?.as_bytes(),
        COMPILE_FLAGS.as_bytes(),
    ]);
    Ok(project.tools_dir().join("go").join(format!("{NAME}-{key}")).join(NAME))
}

pub fn build(project: &Project) -> Result<()> {
    let target = binary_path(project)?;
    let out_dir = target.parent().expect("binary path has a folder");
    // The builder writes its generated sources and the binary to one folder.
    let staging = out_dir.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    // Same manifest, with the output folder pointed into the cache.
    let mut manifest: serde_norway::Value =
        serde_norway::from_slice(&read(&module_dir(project).join("manifest.yaml"))?)?;
    manifest["dist"]["output_path"] = serde_norway::Value::String(staging.display().to_string());
    absolutize_replaces(&mut manifest, &module_dir(project));
    let config = staging.join("builder-config.yaml");
    fs::write(&config, serde_norway::to_string(&manifest)?)?;
    let mut builder = go_build(&module_dir(project));
    builder
        .env("GOWORK", "off")
        // The builder's own `go build` takes the compiler flags from GOFLAGS,
        // quoted because they hold a space.
        .env("GOFLAGS", format!("{} '{COMPILE_FLAGS}'", std::env::var("GOFLAGS").unwrap_or_default()).trim())
        .args(["tool", "builder", "--ldflags", "-s -w", "--config"])
        .arg(&config);
    cmd::run(&mut builder)?;
    let built = staging.join(binary_name(project)?);
    fs::rename(&built, staging.join(NAME)).with_context(|| format!("builder produced no {}", built.display()))?;
    let _ = fs::remove_dir_all(out_dir);
    fs::rename(&staging, out_dir)?;
    Ok(())
}

/// `dist.name` of the manifest: what the builder calls the binary.
fn binary_name(project: &Project) -> Result<String> {
    let manifest: serde_norway::Value = serde_norway::from_slice(&read(&module_dir(project).join("manifest.yaml"))?)?;
    manifest["dist"]["name"].as_str().map(str::to_string).context("tools/otelcol/manifest.yaml has no dist.name")
}

/// `old => ./local/path` replaces are written relative to tools/otelcol; the
/// builder resolves them against its output folder, so make them absolute.
fn absolutize_replaces(manifest: &mut serde_norway::Value, base: &std::path::Path) {
    let Some(replaces) = manifest.get_mut("replaces").and_then(|r| r.as_sequence_mut()) else {
        return;
    };
    for entry in replaces {
        let Some(line) = entry.as_str() else { continue };
        if let Some((old, new)) = line.split_once("=>")
            && let Some(rel) = new.trim().strip_prefix("./")
        {
            *entry = serde_norway::Value::String(format!("{} => {}", old.trim(), base.join(rel).display()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_replaces_become_absolute_and_module_replaces_stay() {
        let mut manifest: serde_norway::Value =
            serde_norway::from_str("replaces:\n  - a/b => ./stub/b\n  - c/d => c/e v1.0.0\n").unwrap();
        super::absolutize_replaces(&mut manifest, std::path::Path::new("/repo/tools/otelcol"));
        assert_eq!(manifest["replaces"][0].as_str(), Some("a/b => /repo/tools/otelcol/stub/b"));
        assert_eq!(manifest["replaces"][1].as_str(), Some("c/d => c/e v1.0.0"));
    }
}

//! What the numbers were measured on: date, machine and program versions,
//! printed with every table and chart (a number without them means nothing).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cmd;
use crate::project::Project;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory_gib: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches(" kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }

    pub fn describe(&self) -> String {
        format!("{} cores, {}, {} GiB, Linux {}", self.cores, self.cpu_model, self.memory_gib, self.kernel)
    }
}

/// `key : value` of /proc/cpuinfo or /proc/meminfo, first occurrence.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Versions of everything measured and measuring.
pub fn versions(project: &Project, programs: &[(&str, &Path)]) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    versions.insert("demo-app".into(), env!("CARGO_PKG_VERSION").to_string());
    let rustc = cmd::capture(Command::new("rustc").arg("--version")).map(|o| cmd::first_line(&o)).unwrap_or_default();
    versions.insert("rustc".into(), rustc);
    let lock = fs::read_to_string(project.root.join("Cargo.lock")).unwrap_or_default();
    for krate in ["hyper", "axum", "tokio", "opentelemetry_sdk"] {
        if let Some(version) = cargo_lock_version(&lock, krate) {
            versions.insert(format!("crate {krate}"), version);
        }
    }
    let python_lock =
        fs::read_to_string(project.root.join(super::python::APP_DIR).join("requirements.lock")).unwrap_or_default();
    for dist in ["fastapi", "uvicorn", "opentelemetry-sdk", "opentelemetry-instrumentation-fastapi"] {
        if let Some(version) = python_lock.lines().find_map(|l| l.strip_prefix(dist)?.strip_prefix("==")) {
            versions.insert(format!("python {dist}"), version.to_string());
        }
    }
    for (name, program) in programs {
        let args: &[&str] = match *name {
            "podinfo" => &["--version"],
            "wrk" => &["-v"],
            _ => &["--version"],
        };
        if let Ok(output) = cmd::capture(Command::new(program).args(args)) {
            versions.insert((*name).to_string(), short_version(&cmd::first_line(&output)));
        }
    }
    versions
}

/// A `--version` line without its copyright notice or build details
/// (`wrk debian/4.1.0-3+b2 [epoll] Copyright ...` → `wrk debian/4.1.0-3+b2`).
fn short_version(line: &str) -> String {
    let cut = [" [", " Copyright", " ("].iter().filter_map(|m| line.find(m)).min().unwrap_or(line.len());
    line[..cut].trim().to_string()
}

/// `name version`, without repeating a name the version already starts with.
pub fn labelled(versions: &BTreeMap<String, String>) -> Vec<String> {
    versions
        .iter()
        .map(|(k, v)| {
            let bare = k.rsplit(' ').next().unwrap_or(k);
            if v.to_lowercase().starts_with(&bare.to_lowercase()) { v.clone() } else { format!("{k} {v}") }
        })
        .collect()
}

/// The version of the first `[[package]]` named `name` in a Cargo.lock.
fn cargo_lock_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let end = lock[start..].find('"')?;
    Some(lock[start..start + end].to_string())
}

/// Now in UTC as (`20261126T083000Z` for folder names, `2026-11-26 08:30 UTC`).
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let (y, m, d, hh, mm, ss) = civil(secs);
    (format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"), format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC"))
}

/// Seconds since the epoch to a UTC calendar date and time (the proleptic
/// Gregorian "days from civil" inverse; no time-zone crate needed for UTC).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-26T08:30:05Z
        assert_eq!(civil(1_795_681_805), (2026, 11, 26, 8, 30, 5));
        // A leap day.
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn cpuinfo_fields_and_lock_versions() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(field(cpuinfo, "model name").as_deref(), Some("Some CPU @ 2.0GHz"));
        let lock = "[[package]]\nname = \"hyper\"\nversion = \"1.12.0\"\n";
        assert_eq!(cargo_lock_version(lock, "hyper").as_deref(), Some("1.12.0"));
        assert_eq!(cargo_lock_version(lock, "axum"), None);
    }

    #[test]
    fn versions_are_short_and_named_once() {
        assert_eq!(
            short_version("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"),
            "wrk debian/4.1.0-3+b2"
        );
        assert_eq!(short_version("rustc 1.95.0 (59807616e 2026-04-14)"), "rustc 1.95.0");
        let versions = BTreeMap::from([
            ("rustc".to_string(), "rustc 1.95.0".to_string()),
            ("python uvicorn".to_string(), "0.54.0".to_string()),
            ("oha".to_string(), "oha 1.16.0".to_string()),
        ]);
        assert_eq!(labelled(&versions), ["oha 1.16.0", "python uvicorn 0.54.0", "rustc 1.95.0"]);
    }
}

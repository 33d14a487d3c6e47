//! Prometheus in the stack: the repository's prometheus.yml with its targets
//! moved to the ports actually chosen, its HTTP API for the e2e test, and a
//! reader of the text exposition for scraping demo-app directly.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_norway::Value as Yaml;

use super::http;
use super::ports::{HOST, Ports, addr};
use crate::cmd;
use crate::project::Project;

pub const CONFIG: &str = "deploy/observability/prometheus/prometheus.yml";

/// Writes the repository's configuration, re-targeted, to `<dir>/prometheus/`.
pub fn write_config(project: &Project, dir: &Path, ports: &Ports, scrape_interval: Option<&str>) -> Result<PathBuf> {
    let source = project.root.join(CONFIG);
    let text = fs::read_to_string(&source).with_context(|| format!("cannot read {}", source.display()))?;
    let rendered = render(&text, ports, scrape_interval).with_context(|| format!("in {CONFIG}"))?;
    let config_dir = source.parent().context("the configuration has no folder")?;
    let rendered = anchor_rule_files(&rendered, config_dir).with_context(|| format!("in {CONFIG}"))?;
    let out_dir = dir.join("prometheus");
    fs::create_dir_all(out_dir.join("data"))?;
    let path = out_dir.join("prometheus.yml");
    fs::write(&path, rendered)?;
    Ok(path)
}

/// Moves every `127.0.0.1:<default port>` target to the chosen port. A target
/// that is not one of the stack's default addresses is an error: the file
/// and `Ports::DEFAULTS` must agree.
pub fn render(text: &str, ports: &Ports, scrape_interval: Option<&str>) -> Result<String> {
    let mut config: Yaml = serde_norway::from_str(text).context("not YAML")?;
    let moves: BTreeMap<String, String> = Ports::DEFAULTS
        .all()
        .into_iter()
        .zip(ports.all())
        .map(|((_, default, _), (_, chosen, _))| (addr(default), addr(chosen)))
        .collect();
    let jobs = config.get_mut("scrape_configs").and_then(Yaml::as_sequence_mut).context("no scrape_configs")?;
    let mut count = 0;
    for job in jobs {
        let name = job.get("job_name").and_then(Yaml::as_str).unwrap_or("?").to_string();
        let Some(statics) = job.get_mut("static_configs").and_then(Yaml::as_sequence_mut) else { continue };
        for target in
            statics.iter_mut().filter_map(|s| s.get_mut("targets")).filter_map(Yaml::as_sequence_mut).flatten()
        {
            let old = target.as_str().unwrap_or_default().to_string();
            let new = moves.get(&old).with_context(|| {
                format!("job {name}: target {old:?} is not one of the stack's default addresses ({HOST}:<port> in xtask/src/stack/ports.rs)")
            })?;
            *target = Yaml::String(new.clone());
            count += 1;
        }
    }
    if count == 0 {
        bail!("no static target to scrape");
    }
    if let Some(interval) = scrape_interval {
        let global = config.get_mut("global").and_then(Yaml::as_mapping_mut).context("no global section")?;
        global.insert("scrape_interval".into(), interval.into());
        global.insert("evaluation_interval".into(), interval.into());
    }
    Ok(serde_norway::to_string(&config)?)
}

/// `rule_files` are relative to the repository's configuration; the copy in
/// the run folder names them by absolute path, so the local Prometheus
/// evaluates the platform's own recording rules and alerts
/// (deploy/observability/alerts) and the dashboards' queries find their data.
pub fn anchor_rule_files(text: &str, config_dir: &Path) -> Result<String> {
    let mut config: Yaml = serde_norway::from_str(text).context("not YAML")?;
    let Some(files) = config.get_mut("rule_files").and_then(Yaml::as_sequence_mut) else {
        return Ok(text.to_string());
    };
    for file in files.iter_mut() {
        let pattern = file.as_str().context("rule_files holds a non-string")?;
        if Path::new(pattern).is_relative() {
            *file = Yaml::String(config_dir.join(pattern).to_string_lossy().into_owned());
        }
    }
    Ok(serde_norway::to_string(&config)?)
}

/// Every static target of a configuration, e.g. `127.0.0.1:9797`.
pub fn targets(text: &str) -> Result<Vec<String>> {
    let config: Yaml = serde_norway::from_str(text).context("not YAML")?;
    let jobs = config.get("scrape_configs").and_then(Yaml::as_sequence).context("no scrape_configs")?;
    Ok(jobs
        .iter()
        .filter_map(|job| job.get("static_configs").and_then(Yaml::as_sequence))
        .flatten()
        .filter_map(|s| s.get("targets").and_then(Yaml::as_sequence))
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect())
}

/// `promtool check config`, so a bad file fails with promtool's words.
pub fn check_config(promtool: &Path, config: &Path) -> Result<()> {
    cmd::run(Command::new(promtool).args(["check", "config"]).arg(config))?;
    Ok(())
}

pub fn command(binary: &Path, config: &Path, data: &Path, ports: &Ports) -> Command {
    let mut cmd = Command::new(binary);
    super::clean_env(&mut cmd);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={}", addr(ports.prometheus)));
    cmd
}

pub fn ready(ports: &Ports) -> Result<Option<()>> {
    let response = http::get(ports.prometheus, "/-/ready")?;
    if response.status == 200 { Ok(Some(())) } else { bail!("/-/ready answered {}", response.status) }
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// `GET /api/v1/query?query=...`: the instant vector (or scalar) result.
pub fn query(port: u16, promql: &str) -> Result<Vec<Sample>> {
    let response = http::get(port, &format!("/api/v1/query?query={}", http::encode(promql)))?;
    let json = response.json()?;
    if response.status != 200 || json["status"] != "success" {
        bail!("query {promql:?} answered {}: {}", response.status, http::abbreviate(&response.text(), 300));
    }
    let result = &json["data"]["result"];
    let samples = match json["data"]["resultType"].as_str() {
        Some("vector") => result.as_array().cloned().unwrap_or_default(),
        Some("scalar") => vec![serde_json::json!({ "metric": {}, "value": result })],
        other => bail!("query {promql:?}: unexpected result type {other:?}"),
    };
    samples
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            let value = s["value"][1].as_str().and_then(|v| v.parse().ok()).context("sample without a value")?;
            Ok(Sample { labels, value })
        })
        .collect()
}

/// Samples of `name` in a text exposition (Prometheus or OpenMetrics), as
/// (labels, value): `telemetry_dropped_total{signal="traces"} 3` gives
/// (`signal="traces"`, 3.0).
pub fn exposition_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, rest) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let end = inner.find('}')?;
                    (&inner[..end], &inner[end + 1..])
                }
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((labels.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::ports;

    fn repo_config() -> String {
        let project = Project::discover().unwrap();
        fs::read_to_string(project.root.join(CONFIG)).unwrap()
    }

    #[test]
    fn the_repository_file_targets_only_default_ports_and_is_retargeted() {
        let text = repo_config();
        // With the defaults, nothing moves.
        let same: Yaml = serde_norway::from_str(&render(&text, &Ports::DEFAULTS, None).unwrap()).unwrap();
        assert_eq!(same, serde_norway::from_str::<Yaml>(&text).unwrap());

        let free = ports::pick(ports::Choice::AllFree).unwrap().ports;
        let rendered = render(&text, &free, Some("1s")).unwrap();
        let targets = targets(&rendered).unwrap();
        let rendered: Yaml = serde_norway::from_str(&rendered).unwrap();
        let expected = [
            free.frontend_metrics,
            free.backend_metrics,
            free.collector_self_metrics,
            free.collector_prometheus,
            free.prometheus,
        ];
        assert_eq!(targets.len(), expected.len(), "{targets:?}");
        for port in expected {
            assert!(targets.contains(&addr(port)), "{port} not scraped: {targets:?}");
        }
        assert_eq!(rendered["global"]["scrape_interval"].as_str(), Some("1s"));
    }

    #[test]
    fn rule_files_point_at_the_repository() {
        let text = repo_config();
        let anchored = anchor_rule_files(&text, Path::new("/repo/deploy/observability/prometheus")).unwrap();
        let config: Yaml = serde_norway::from_str(&anchored).unwrap();
        let files: Vec<&str> = config["rule_files"].as_sequence().unwrap().iter().filter_map(Yaml::as_str).collect();
        assert_eq!(files, ["/repo/deploy/observability/prometheus/../alerts/*.rules.yaml"]);
    }

    #[test]
    fn an_unknown_target_is_an_error() {
        let text = "global: {}\nscrape_configs:\n- job_name: x\n  static_configs:\n  - targets: ['10.0.0.1:9100']\n";
        let err = format!("{:#}", render(text, &Ports::DEFAULTS, None).unwrap_err());
        assert!(err.contains("job x: target \"10.0.0.1:9100\" is not one of the stack's default addresses"), "{err}");
    }

    #[test]
    fn reads_samples_from_an_exposition() {
        let text = "# HELP telemetry_dropped_total x\n# TYPE telemetry_dropped counter\n\
                    telemetry_dropped_total{signal=\"traces\"} 3\ntelemetry_dropped_total{signal=\"logs\"} 4.5 # {} 1\n\
                    telemetry_dropped_created{signal=\"logs\"} 1\norders_created_total 7\norders_created_totalx 1\n";
        assert_eq!(
            exposition_samples(text, "telemetry_dropped_total"),
            [("signal=\"traces\"".to_string(), 3.0), ("signal=\"logs\"".to_string(), 4.5)]
        );
        assert_eq!(exposition_samples(text, "orders_created_total"), [(String::new(), 7.0)]);
    }
}

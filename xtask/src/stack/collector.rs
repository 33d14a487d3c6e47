//! The project's OpenTelemetry Collector in the stack: the repository's
//! deploy/observability/otel-collector/config.yaml, endpoints set through its
//! environment variables, and the file exporter's output read back by the
//! e2e test.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::http;
use super::ports::{Ports, addr};
use crate::project::Project;

pub const CONFIG: &str = "deploy/observability/otel-collector/config.yaml";

pub fn config_path(project: &Project) -> PathBuf {
    project.root.join(CONFIG)
}

/// Locally there is no log store: the logs pipeline keeps only its file
/// exporter(s) (the config's `otlp_http/logs` stays defined, unused), rather
/// than an exporter that retries into a closed port and fills its queue.
pub fn local_overrides(config_text: &str) -> Result<Vec<String>> {
    let config: serde_norway::Value = serde_norway::from_str(config_text).context("not YAML")?;
    let exporters = config["service"]["pipelines"]["logs"]["exporters"]
        .as_sequence()
        .context("no service.pipelines.logs.exporters")?;
    let files: Vec<&str> = exporters
        .iter()
        .filter_map(serde_norway::Value::as_str)
        .filter(|id| *id == "file" || id.starts_with("file/"))
        .collect();
    if files.is_empty() {
        bail!(
            "the logs pipeline has no file exporter, and the local stack has no other log store (e2e reads logs from it)"
        );
    }
    Ok(vec![format!("--set=service.pipelines.logs.exporters=[{}]", files.join(","))])
}

/// The Collector's command. Its file exporter(s) write under `telemetry_dir`:
/// `OTELCOL_FILE_PATH` names one file there, and `OTELCOL_FILE_DIR` the folder
/// for a configuration with one file exporter per signal.
pub fn command(project: &Project, binary: &Path, ports: &Ports, telemetry_dir: &Path) -> Result<Command> {
    let config = config_path(project);
    let text = fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let mut cmd = Command::new(binary);
    super::clean_env(&mut cmd);
    cmd.arg("--config").arg(format!("file:{}", config.display()));
    cmd.args(local_overrides(&text).with_context(|| format!("in {CONFIG}"))?);
    fs::create_dir_all(telemetry_dir)?;
    cmd.env("OTELCOL_OTLP_GRPC_ENDPOINT", addr(ports.otlp_grpc))
        .env("OTELCOL_OTLP_HTTP_ENDPOINT", addr(ports.otlp_http))
        .env("JAEGER_OTLP_ENDPOINT", addr(ports.jaeger_otlp_grpc))
        .env("OTELCOL_PROMETHEUS_ENDPOINT", addr(ports.collector_prometheus))
        .env("OTELCOL_FILE_PATH", telemetry_dir.join("telemetry.json"))
        .env("OTELCOL_FILE_DIR", telemetry_dir)
        .env("OTELCOL_HEALTH_ENDPOINT", addr(ports.collector_health))
        .env("OTELCOL_SELF_METRICS_HOST", "127.0.0.1")
        .env("OTELCOL_SELF_METRICS_PORT", ports.collector_self_metrics.to_string())
        .env("DEPLOYMENT_ENVIRONMENT", "local");
    Ok(cmd)
}

/// The health_check extension answers 200 once every pipeline runs.
pub fn ready(ports: &Ports) -> Result<Option<()>> {
    let response = http::get(ports.collector_health, "/")?;
    if response.status == 200 { Ok(Some(())) } else { bail!("health_check answered {}", response.status) }
}

/// One OTLP log record of the file exporter's output.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub body: String,
}

/// What the file exporter wrote so far, by signal.
#[derive(Debug, Default)]
pub struct FileScan {
    pub lines: usize,
    pub spans: usize,
    pub metric_batches: usize,
    pub logs: Vec<LogRecord>,
}

impl FileScan {
    pub fn logs_with_trace<'a>(&'a self, trace_ids: &'a HashSet<String>) -> impl Iterator<Item = &'a LogRecord> {
        self.logs.iter().filter(|r| trace_ids.contains(&r.trace_id))
    }

    /// Log records per service, e.g. `{demo-app-backend: 12}`.
    pub fn log_services(&self) -> BTreeMap<&str, usize> {
        let mut by = BTreeMap::new();
        for record in &self.logs {
            *by.entry(record.service.as_str()).or_default() += 1;
        }
        by
    }
}

/// Reads every file the file exporter(s) wrote in `dir`: JSON lines, one
/// OTLP export request per line. A missing folder is an empty scan.
pub fn scan(dir: &Path) -> Result<FileScan> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    files.sort();
    let mut scan = FileScan::default();
    for file in files {
        let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        scan.add(&text);
    }
    Ok(scan)
}

impl FileScan {
    fn add(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.lines += 1;
            // The last line may be half-written while the Collector runs.
            let Ok(request) = serde_json::from_str::<Value>(line) else { continue };
            for resource in array(&request["resourceSpans"]) {
                self.spans += array(&resource["scopeSpans"]).map(|s| array(&s["spans"]).count()).sum::<usize>();
            }
            self.metric_batches += array(&request["resourceMetrics"]).count();
            for resource in array(&request["resourceLogs"]) {
                let service = service_name(&resource["resource"]);
                for scope in array(&resource["scopeLogs"]) {
                    for record in array(&scope["logRecords"]) {
                        self.logs.push(LogRecord {
                            service: service.clone(),
                            trace_id: record["traceId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                            span_id: record["spanId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                            body: body_text(&record["body"]),
                        });
                    }
                }
            }
        }
    }
}

pub fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// `service.name` of an OTLP resource, or "" if absent.
pub fn service_name(resource: &Value) -> String {
    attribute(&resource["attributes"], "service.name").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The value of an OTLP attribute list entry, unwrapped from its
/// `{"stringValue": ...}` (or int/bool/double) envelope.
pub fn attribute<'a>(attributes: &'a Value, key: &str) -> Option<&'a Value> {
    let entry = array(attributes).find(|a| a["key"] == key)?;
    entry["value"].as_object()?.values().next()
}

fn body_text(body: &Value) -> String {
    match body.as_object().and_then(|o| o.values().next()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reads_logs_spans_and_metrics_and_ignores_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("telemetry.json"), include_str!("testdata/file-exporter.jsonl")).unwrap();
        let scan = scan(dir.path()).unwrap();
        assert_eq!((scan.lines, scan.spans, scan.metric_batches, scan.logs.len()), (4, 4, 1, 2));
        let ids: HashSet<String> = ["0af7651916cd43dd8448eb211c80319c".to_string()].into();
        let matching: Vec<_> = scan.logs_with_trace(&ids).collect();
        assert_eq!(matching.len(), 1);
        assert_eq!(matching[0].service, "demo-app-backend");
        assert_eq!(matching[0].span_id, "d7ad6b7169203331");
        assert_eq!(matching[0].body, "order created");
        assert_eq!(scan.log_services().get("demo-app-backend"), Some(&2));
    }

    #[test]
    fn a_missing_folder_is_an_empty_scan() {
        let scan = scan(Path::new("/nonexistent/otelcol")).unwrap();
        assert_eq!(scan.lines, 0);
    }

    #[test]
    fn logs_go_only_to_the_file_exporters_of_the_logs_pipeline() {
        let project = Project::discover().unwrap();
        let repo = local_overrides(&fs::read_to_string(config_path(&project)).unwrap()).unwrap();
        assert_eq!(repo.len(), 1);
        assert!(repo[0].starts_with("--set=service.pipelines.logs.exporters=[file"), "{repo:?}");
        let split = "service:\n  pipelines:\n    logs:\n      exporters: [otlp_http/logs, file/logs, debug]\n";
        assert_eq!(local_overrides(split).unwrap(), ["--set=service.pipelines.logs.exporters=[file/logs]"]);
        let none = "service:\n  pipelines:\n    logs:\n      exporters: [otlp_http/logs]\n";
        assert!(local_overrides(none).is_err());
    }
}

//! Telemetry settings from the standard OpenTelemetry variables.

use std::collections::HashMap;
use std::time::Duration;

/// How spans, metrics and logs leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `None`: OTLP export is off (no endpoint, or OTEL_SDK_DISABLED=true).
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    pub service_name: String,
    /// Resource attributes we add (the SDK reads OTEL_RESOURCE_ATTRIBUTES itself).
    pub attributes: Vec<(&'static str, String)>,
    /// For span and log export (otlp_export.rs; the library's metric
    /// exporter reads the same variables itself).
    pub span_export: Export,
    pub log_export: Export,
}

/// How one signal is exported: how long one attempt may take, and the
/// headers sent with each.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
}

/// OTEL_EXPORTER_OTLP_TIMEOUT's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The downward-API variables the chart sets, and their resource keys.
const K8S_VARIABLES: [(&str, &str); 4] = [
    ("K8S_POD_NAME", "k8s.pod.name"),
    ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
    ("K8S_NODE_NAME", "k8s.node.name"),
    ("K8S_POD_UID", "k8s.pod.uid"),
];

impl Settings {
    pub fn from_env(vars: &HashMap<String, String>, instance_id: &str) -> Result<Self, String> {
        let get = |k: &str| vars.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = if disabled { None } else { get("OTEL_EXPORTER_OTLP_ENDPOINT") };
        let protocol = match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            None | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpProtobuf,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: use grpc or http/protobuf"
                ));
            }
        };
        let mut attributes = vec![
            ("service.version", crate::version::VERSION.to_string()),
            ("service.instance.id", instance_id.to_string()),
        ];
        for (variable, key) in K8S_VARIABLES {
            if let Some(value) = get(variable) {
                attributes.push((key, value));
            }
        }
        let span_export = export(&get, "TRACES")?;
        let log_export = export(&get, "LOGS")?;
        Ok(Self {
            endpoint,
            protocol,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "demo-app".into()),
            attributes,
            span_export,
            log_export,
        })
    }
}

/// A signal's export settings: its own variables first
/// (OTEL_EXPORTER_OTLP_{SIGNAL}_TIMEOUT, _HEADERS), then the shared ones.
fn export(get: &impl Fn(&str) -> Option<String>, signal: &str) -> Result<Export, String> {
    let signal_or_all = |name: &str| {
        let own = format!("OTEL_EXPORTER_OTLP_{signal}_{name}");
        let shared = format!("OTEL_EXPORTER_OTLP_{name}");
        get(&own).map(|v| (own, v)).or_else(|| get(&shared).map(|v| (shared, v)))
    };
    let timeout = match signal_or_all("TIMEOUT") {
        None => DEFAULT_TIMEOUT,
        Some((variable, value)) => match value.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => return Err(format!("{variable}={value:?} is not a timeout: give milliseconds, e.g. 10000")),
        },
    };
    let headers = match signal_or_all("HEADERS") {
        None => Vec::new(),
        Some((variable, value)) => headers(&value).map_err(|e| format!("{variable}: {e}"))?,
    };
    Ok(Export { timeout, headers })
}

/// `key1=value1,key2=value2`, values percent-encoded (the OTLP exporter
/// specification's format for OTEL_EXPORTER_OTLP_HEADERS).
fn headers(list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let value = percent_decoded(value.trim())
                .ok_or_else(|| format!("the value of {key:?} is not percent-encoded UTF-8"))?;
            Ok((key.trim().to_string(), value))
        })
        .collect()
}

fn percent_decoded(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(Settings::from_env(&vars(&[]), "i").unwrap().endpoint, None);
        let disabled = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_SDK_DISABLED", "TRUE")]);
        assert_eq!(Settings::from_env(&disabled, "i").unwrap().endpoint, None);
    }

    #[test]
    fn reads_protocol_service_and_kubernetes_attributes() {
        let s = Settings::from_env(
            &vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "demo-app-frontend"),
                ("K8S_POD_NAME", "frontend-0"),
            ]),
            "instance-1",
        )
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4318"));
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.service_name, "demo-app-frontend");
        assert!(s.attributes.contains(&("k8s.pod.name", "frontend-0".into())));
        assert!(s.attributes.contains(&("service.instance.id", "instance-1".into())));
        assert!(Settings::from_env(&vars(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]), "i").is_err());
    }

    #[test]
    fn each_signal_takes_its_own_variables_first_then_the_shared_ones() {
        let s = Settings::from_env(&vars(&[]), "i").unwrap();
        let default = Export { timeout: DEFAULT_TIMEOUT, headers: Vec::new() };
        assert_eq!((&s.span_export, &s.log_export), (&default, &default));
        let s = Settings::from_env(
            &vars(&[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "750"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%C3%A9cret%2C1 , x-tenant = a=b"),
                ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-tenant=logs"),
            ]),
            "i",
        )
        .unwrap();
        assert_eq!(s.span_export.timeout, Duration::from_millis(750));
        assert_eq!(s.log_export.timeout, Duration::from_millis(2000));
        let expected =
            vec![("api-key".to_string(), "sécret,1".to_string()), ("x-tenant".to_string(), "a=b".to_string())];
        assert_eq!(s.span_export.headers, expected);
        assert_eq!(s.log_export.headers, [("x-tenant".to_string(), "logs".to_string())]);
    }

    #[test]
    fn bad_span_export_variables_are_refused_by_name() {
        let error = |pairs: &[(&str, &str)]| Settings::from_env(&vars(pairs), "i").unwrap_err();
        assert!(
            error(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")])
                .contains("OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\" is not a timeout")
        );
        assert!(error(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0")]).contains("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key")]).contains("\"api-key\" is not key=value"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "k=%zz")]).contains("not percent-encoded"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "-1")]).contains("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"));
    }
}

//! Telemetry settings from the standard OpenTelemetry variables.

use std::collections::HashMap;

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
}

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
        Ok(Self {
            endpoint,
            protocol,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "demo-app".into()),
            attributes,
        })
    }
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
}

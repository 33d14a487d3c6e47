//! The names a route template goes by in metrics and spans, worked out once
//! per template: a request looks them up instead of formatting them.
//! Templates come from the router only (an unmatched path has none), so the
//! strings kept for the process are as many as its routes.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// The method labels `metrics::method_label` gives, in a fixed order.
const METHODS: [&str; 10] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];

pub struct RouteNames {
    /// `/api/orders/{id}`: `http.route` in spans and OpenTelemetry metrics.
    pub template: &'static str,
    /// `api_orders_id`: podinfo's `path` label on /metrics.
    pub label: &'static str,
    /// `GET /api/orders/{id}`... one per method label, in `METHODS`' order
    /// (`span_name`).
    span_names: [&'static str; METHODS.len()],
}

/// The server span's name: `{method} {route}`, or `{method}` alone when no
/// route matched; `HTTP` stands for a method outside the known set, as the
/// semantic conventions say.
pub fn span_name(method: &'static str, route: Option<&RouteNames>) -> &'static str {
    match route {
        Some(route) => route.span_names[METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1)],
        None if method == "_OTHER" => "HTTP",
        None => method,
    }
}

/// The names of `template`.
pub fn of(template: &str) -> &'static RouteNames {
    static NAMES: RwLock<BTreeMap<String, &'static RouteNames>> = RwLock::new(BTreeMap::new());
    if let Some(names) = NAMES.read().unwrap_or_else(|e| e.into_inner()).get(template) {
        return names;
    }
    let mut names = NAMES.write().unwrap_or_else(|e| e.into_inner());
    names.entry(template.to_string()).or_insert_with(|| {
        let template: &'static str = template.to_string().leak();
        let span_names = METHODS.map(|method| {
            let method = if method == "_OTHER" { "HTTP" } else { method };
            &*format!("{method} {template}").leak()
        });
        Box::leak(Box::new(RouteNames { template, label: podinfo_path_label(template).leak(), span_names }))
    })
}

/// podinfo's label for a route: runs of non-alphanumerics become `_`,
/// trimmed and lowercased; `/` is `root`.
pub fn podinfo_path_label(template: &str) -> String {
    let mut label = String::with_capacity(template.len());
    for c in template.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.ends_with('_') {
            label.push('_');
        }
    }
    let label = label.trim_matches('_');
    if label.is_empty() { "root".into() } else { label.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_labels_follow_podinfo() {
        assert_eq!(podinfo_path_label("/"), "root");
        assert_eq!(podinfo_path_label("/api/info"), "api_info");
        assert_eq!(podinfo_path_label("/cache/{key}"), "cache_key");
        assert_eq!(podinfo_path_label("/api/orders/{id}"), "api_orders_id");
    }

    #[test]
    fn names_are_worked_out_once_per_template() {
        let names = of("/api/orders/{id}");
        assert!(std::ptr::eq(names, of("/api/orders/{id}")), "the second lookup finds the first");
        assert_eq!((names.template, names.label), ("/api/orders/{id}", "api_orders_id"));
        assert_eq!(span_name("GET", Some(names)), "GET /api/orders/{id}");
        assert_eq!(span_name("PATCH", Some(names)), "PATCH /api/orders/{id}");
        assert_eq!(span_name("_OTHER", Some(names)), "HTTP /api/orders/{id}");
        assert_eq!((span_name("GET", None), span_name("_OTHER", None)), ("GET", "HTTP"), "no route matched");
    }
}

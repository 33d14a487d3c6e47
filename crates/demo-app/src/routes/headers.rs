//! GET|POST /headers: the request headers, each name to its list of values.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::HeaderMap;

use crate::version::{REVISION, VERSION};

#[utoipa::path(get, path = "/headers", operation_id = "getHeaders", tag = "podinfo", responses((status = 200, description = "header name to values")))]
pub async fn handler(headers: HeaderMap) -> Json<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        if name == "host" {
            continue; // podinfo (Go) reports the host separately, not as a header
        }
        out.entry(canonical(name.as_str())).or_default().push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    // podinfo's version middleware adds these to every request it serves.
    out.insert("X-Api-Version".into(), vec![VERSION.into()]);
    out.insert("X-Api-Revision".into(), vec![REVISION.into()]);
    Json(out)
}

/// Go's canonical header form: `x-request-id` → `X-Request-Id`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_header_names() {
        assert_eq!(super::canonical("x-request-id"), "X-Request-Id");
        assert_eq!(super::canonical("user-agent"), "User-Agent");
    }
}

//! Entry points for the fuzz targets (`crates/demo-app/fuzz`): each runs the
//! server's own parser of one untrusted input, exactly as a request would.
//! A parser may refuse anything; it must never panic or hang.

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Uri};

use crate::routes::fuzzed;

/// An order body: JSON, then the field rules.
pub fn order_json(body: &[u8]) {
    if let Ok(order) = serde_json::from_slice::<fuzzed::OrderRequest>(body) {
        let _ = order.validate();
    }
}

/// One or two `Idempotency-Key` header values (split at the first NUL).
pub fn idempotency_key(bytes: &[u8]) {
    let mut headers = HeaderMap::new();
    for value in bytes.splitn(2, |b| *b == 0) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(fuzzed::IDEMPOTENCY_KEY, value);
        }
    }
    let _ = fuzzed::idempotency_key(&headers);
}

/// The order list's query string (`limit`, `after`, `order`).
pub fn order_list_query(query: &[u8]) {
    let Ok(query) = std::str::from_utf8(query) else { return };
    let Ok(uri) = format!("/api/orders?{query}").parse::<Uri>() else { return };
    if let Ok(Query(params)) = Query::<fuzzed::ListParams>::try_from_uri(&uri) {
        let _ = params.parse();
    }
}

/// An `Authorization` header value checked as a bearer token.
pub fn bearer_token(header: &[u8]) {
    let _ = fuzzed::check_bearer(header, b"fuzzing-secret");
}

/// A `/store/{hash}` name.
pub fn store_name(name: &[u8]) {
    if let Ok(name) = std::str::from_utf8(name) {
        let _ = fuzzed::is_digest(name);
    }
}

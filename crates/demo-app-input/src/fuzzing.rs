//! Entry points for the fuzz targets (`fuzz/`): each runs one parser of
//! untrusted input exactly as demo-app runs it on a request. A parser may
//! refuse anything; it must never panic or hang.

use http::{HeaderMap, HeaderValue};

/// An order body: JSON, then the field rules.
pub fn order_json(body: &[u8]) {
    if let Ok(order) = serde_json::from_slice::<crate::OrderRequest>(body) {
        let _ = order.validate();
    }
}

/// One or two `Idempotency-Key` header values (split at the first NUL).
pub fn idempotency_key(bytes: &[u8]) {
    let mut headers = HeaderMap::new();
    for value in bytes.splitn(2, |b| *b == 0) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(crate::IDEMPOTENCY_KEY, value);
        }
    }
    let _ = crate::idempotency_key(&headers);
}

/// The order list's query string (`limit`, `after`, `order`), decoded as
/// axum's `Query` decodes it (serde_urlencoded).
pub fn order_list_query(query: &[u8]) {
    let Ok(query) = std::str::from_utf8(query) else { return };
    if let Ok(params) = serde_urlencoded::from_str::<crate::ListParams>(query) {
        let _ = params.parse();
    }
}

/// An `Authorization` header value checked as a bearer token.
pub fn bearer_token(header: &[u8]) {
    let _ = crate::check_bearer(header, b"fuzzing-secret");
}

/// A `/store/{hash}` name.
pub fn store_name(name: &[u8]) {
    if let Ok(name) = std::str::from_utf8(name) {
        let _ = crate::is_digest(name);
    }
}

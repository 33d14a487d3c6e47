use http::HeaderMap;

use crate::Refused;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `Idempotency-Key`: optional, 1-255 visible ASCII characters, at most
/// once (which of two keys a proxy or server picks differs: refused).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Refused> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refused("Idempotency-Key: send it once".into()));
    }
    let key = value.to_str().ok().filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_string())).ok_or_else(|| Refused("Idempotency-Key: 1-255 visible ASCII characters".into()))
}

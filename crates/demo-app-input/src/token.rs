use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::Refused;

/// The `iss` of the tokens demo-app issues, and the only one it accepts.
pub const ISSUER: &str = "demo-app";

#[derive(Serialize, Deserialize)]
pub struct Claims {
    pub name: String,
    pub exp: i64,
    pub iss: String,
    /// jsonwebtoken checks a numeric `nbf` and skips any other; a string or
    /// null "not before" is refused here instead of being ignored.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "numeric_date")]
    pub nbf: Option<i64>,
}

/// A present claim must be a NumericDate (RFC 7519), never null.
fn numeric_date<'de, D: serde::Deserializer<'de>>(date: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(date)
        .map(Some)
        .map_err(|_| serde::de::Error::custom("the nbf claim must be a NumericDate (seconds since the epoch)"))
}

/// The claims of an `Authorization: Bearer <HS256 token>` header value
/// signed with `secret`, or why not (untrusted input: fuzzed).
pub fn check_bearer(header: &[u8], secret: &[u8]) -> Result<Claims, Refused> {
    let token = std::str::from_utf8(header)
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Refused("authorization bearer header required".into()))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = 0;
    // Off by default in jsonwebtoken: a token that is not valid yet is not valid.
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map_err(|e| Refused(e.to_string()))?;
    Ok(data.claims)
}

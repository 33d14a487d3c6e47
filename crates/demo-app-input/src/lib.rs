//! demo-app's parsers of untrusted input: an order's JSON body, the
//! `Idempotency-Key` header, the order list's query, a bearer token, a
//! `/store` name. They live in a crate of their own so that the fuzz targets
//! (`fuzz/`) build them and their few dependencies with libFuzzer's
//! instrumentation, not the whole server (that build was the longest step
//! of a cold `make test`). demo-app maps a `Refused` onto its HTTP answer.

mod digest;
#[doc(hidden)]
pub mod fuzzing;
mod idempotency;
mod listing;
mod order;
mod token;

pub use digest::is_digest;
pub use idempotency::{IDEMPOTENCY_KEY, idempotency_key};
pub use listing::{ListParams, MAX_PAGE, Page};
pub use order::{NewOrder, OrderRequest};
pub use token::{Claims, ISSUER, check_bearer};

/// Why an input was refused, in words for the client: which field or
/// header, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

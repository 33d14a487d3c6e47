//! JSON schemas the validators need, derived from pinned inputs into the cache.

pub mod crd;
pub mod crd_sources;
pub mod k8s;

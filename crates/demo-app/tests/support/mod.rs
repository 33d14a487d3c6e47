//! Helpers shared by the integration tests.

pub mod podinfo;
pub mod postgres;

//! The code generated from proto/ by build.rs.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod delay {
    tonic::include_proto!("delay");
}
pub mod echo {
    tonic::include_proto!("echo");
}
pub mod env {
    tonic::include_proto!("env");
}
pub mod header {
    tonic::include_proto!("header");
}
pub mod info {
    tonic::include_proto!("info");
}
pub mod panic {
    tonic::include_proto!("panic");
}
pub mod status {
    tonic::include_proto!("status");
}
pub mod token {
    tonic::include_proto!("token");
}
pub mod version {
    tonic::include_proto!("version");
}

/// Every file's descriptor, for the reflection service.
pub const DESCRIPTORS: &[u8] = tonic::include_file_descriptor_set!("podinfo_descriptor");

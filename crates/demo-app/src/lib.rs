//! demo-app: a podinfo-compatible workload with an orders API.
//!
//! `config` parses flags, `startup` binds and runs, `routes` holds one
//! handler per file, `store` the database engines, `metrics` the Prometheus
//! exposition, `faults` the chaos middlewares.

pub mod allocator;
pub mod api_error;
pub mod body_deadline;
pub mod config;
pub mod config_file;
pub mod connection_watch;
pub mod faults;
pub mod grpc;
pub mod grpc_status;
pub mod memory_budget;
pub mod metrics;
pub mod podcli;
pub mod process_metrics;
pub mod route_names;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod state;
pub mod store;
pub mod stress;
pub mod telemetry;
pub mod version;
pub mod write_deadline;

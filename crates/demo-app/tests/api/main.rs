//! Black-box tests: the real application on port 0, spoken to over HTTP.

mod control;
mod grpc;
mod helpers;
mod limits;
mod orders;
mod podinfo_api;
mod security;
mod tls;
mod websocket;

//! Operations the document lists whose handlers serve several paths or
//! methods (podinfo's echo, status, env, headers), and the operational ones
//! (probes, metrics, control): utoipa documents one path and method per
//! annotated function, so these are documentation only. A test compares the
//! document with every route of `mod.rs`.
#![allow(dead_code)]

#[utoipa::path(get, path = "/", operation_id = "getIndex", tag = "podinfo", responses((status = 200, description = "the UI (HTML)")))]
fn index() {}

#[utoipa::path(get, path = "/ui/{asset}", operation_id = "getUiAsset", tag = "podinfo", params(("asset" = String, Path, description = "app.js or style.css")), responses((status = 200, description = "the asset"), (status = 404)))]
fn ui_asset() {}

#[utoipa::path(post, path = "/status/{code}", operation_id = "postStatus", tag = "podinfo", params(("code" = u16, Path, minimum = 200, maximum = 599, description = "HTTP status to answer with, 200-599")), responses((status = 200, description = "`{\"status\": code}` with that status"), (status = 400, description = "not a status code")))]
fn post_status() {}

#[utoipa::path(put, path = "/status/{code}", operation_id = "putStatus", tag = "podinfo", params(("code" = u16, Path, minimum = 200, maximum = 599, description = "HTTP status to answer with, 200-599")), responses((status = 200, description = "`{\"status\": code}` with that status"), (status = 400, description = "not a status code")))]
fn put_status() {}

#[utoipa::path(get, path = "/chunked", operation_id = "getChunkedRandom", tag = "podinfo", responses((status = 200, description = "`{\"delay\": seconds}` after 10-30 s, streamed")))]
fn chunked_random() {}

#[utoipa::path(get, path = "/chunked/{seconds}", operation_id = "getChunked", tag = "podinfo", params(("seconds" = u64, Path)), responses((status = 200, description = "`{\"delay\": seconds}` after the wait, streamed"), (status = 400, description = "not a number of seconds")))]
fn chunked() {}

#[utoipa::path(post, path = "/env", operation_id = "postEnv", tag = "podinfo", responses((status = 200, body = Vec<String>)))]
fn post_env() {}

#[utoipa::path(post, path = "/headers", operation_id = "postHeaders", tag = "podinfo", responses((status = 200, description = "header name to values")))]
fn post_headers() {}

#[utoipa::path(get, path = "/echo", operation_id = "getEcho", tag = "podinfo", responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend")))]
fn get_echo() {}

#[utoipa::path(post, path = "/echo", operation_id = "postEcho", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn post_echo() {}

#[utoipa::path(get, path = "/echo/{rest}", operation_id = "getEchoPath", tag = "podinfo", params(("rest" = String, Path)), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend")))]
fn get_echo_rest() {}

#[utoipa::path(post, path = "/echo/{rest}", operation_id = "postEchoPath", tag = "podinfo", params(("rest" = String, Path)), request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn post_echo_rest() {}

#[utoipa::path(get, path = "/api/echo", operation_id = "getApiEcho", tag = "podinfo", responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend")))]
fn get_api_echo() {}

#[utoipa::path(get, path = "/api/echo/{rest}", operation_id = "getApiEchoPath", tag = "podinfo", params(("rest" = String, Path)), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend")))]
fn get_api_echo_rest() {}

#[utoipa::path(post, path = "/api/echo/{rest}", operation_id = "postApiEchoPath", tag = "podinfo", params(("rest" = String, Path)), request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn post_api_echo_rest() {}

#[utoipa::path(put, path = "/store", operation_id = "storePut", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the SHA-256 of the stored bytes"), (status = 413, description = "body larger than 10 MiB"), (status = 503, description = "the data volume is read-only"), (status = 507, description = "no space left")))]
fn put_store() {}

#[utoipa::path(put, path = "/cache/{key}", operation_id = "cachePut", tag = "podinfo", params(("key" = String, Path)), request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202), (status = 400, description = "key empty, too long or with a NUL"), (status = 413, description = "body larger than 10 MiB"), (status = 503)))]
fn put_cache() {}

#[utoipa::path(get, path = "/ws/echo", operation_id = "wsEcho", tag = "podinfo", responses((status = 101, description = "WebSocket upgrade; every message is sent back"), (status = 400, description = "not a WebSocket upgrade")))]
fn ws_echo() {}

#[utoipa::path(post, path = "/chunked", operation_id = "postChunkedRandom", tag = "podinfo", responses((status = 200, description = "`{\"delay\": seconds}` after 10-30 s, streamed")))]
fn post_chunked_random() {}

#[utoipa::path(post, path = "/chunked/{seconds}", operation_id = "postChunked", tag = "podinfo", params(("seconds" = u64, Path)), responses((status = 200, description = "`{\"delay\": seconds}` after the wait, streamed"), (status = 400, description = "not a number of seconds")))]
fn post_chunked() {}

#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "operations", responses((status = 200, description = "this document")))]
fn openapi() {}

#[utoipa::path(get, path = "/swagger.json", operation_id = "getSwagger", tag = "operations", responses((status = 200, description = "this document (where podinfo serves its own)")))]
fn swagger() {}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", responses((status = 200, description = "alive"), (status = 503, description = "unhealthy")))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", responses((status = 200, description = "ready for traffic"), (status = 503, description = "not ready, or draining")))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", responses((status = 200, description = "Prometheus/OpenMetrics exposition")))]
fn metrics() {}

#[utoipa::path(post, path = "/readyz/enable", operation_id = "readyzEnable", tag = "operations", responses((status = 202), (status = 404, description = "control endpoints off")))]
fn readyz_enable() {}

#[utoipa::path(post, path = "/readyz/disable", operation_id = "readyzDisable", tag = "operations", responses((status = 202), (status = 404, description = "control endpoints off")))]
fn readyz_disable() {}

#[utoipa::path(post, path = "/fault_injection/enable", operation_id = "faultInjectionEnable", tag = "operations", responses((status = 202), (status = 404, description = "control endpoints off")))]
fn faults_enable() {}

#[utoipa::path(post, path = "/fault_injection/disable", operation_id = "faultInjectionDisable", tag = "operations", responses((status = 202), (status = 404, description = "control endpoints off")))]
fn faults_disable() {}

#[utoipa::path(get, path = "/fault_injection/status", operation_id = "faultInjectionStatus", tag = "operations", responses((status = 200, description = "`{\"enabled\": bool}`"), (status = 404, description = "control endpoints off")))]
fn faults_status() {}

#[utoipa::path(get, path = "/panic", operation_id = "panic", tag = "operations", responses((status = 200, description = "never: the process exits"), (status = 404, description = "control endpoints off")))]
fn panic() {}

#[utoipa::path(put, path = "/echo", operation_id = "putEcho", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn put_echo() {}

#[utoipa::path(put, path = "/echo/{rest}", operation_id = "putEchoPath", tag = "podinfo", params(("rest" = String, Path)), request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn put_echo_rest() {}

#[utoipa::path(put, path = "/api/echo", operation_id = "putApiEcho", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn put_api_echo() {}

#[utoipa::path(put, path = "/api/echo/{rest}", operation_id = "putApiEchoPath", tag = "podinfo", params(("rest" = String, Path)), request_body(content = Option<serde_json::Value>, content_type = "*/*"), responses((status = 202, description = "the body, echoed (no backends)"), (status = 200, body = Vec<String>, description = "one answer per backend"), (status = 413, description = "body larger than 10 MiB")))]
fn put_api_echo_rest() {}

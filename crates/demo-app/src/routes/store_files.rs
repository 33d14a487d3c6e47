//! POST|PUT /store keeps a body under its SHA-256; GET /store/{hash} returns
//! it. Only a 64-hex-digit hash is accepted, so a request can never name a
//! path outside the store (podinfo's path traversal), and content is served
//! as an opaque download that cannot run as a page (podinfo's stored XSS).

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use crate::api_error::PodinfoError;
use crate::state::AppState;
use demo_app_input::is_digest;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Stored {
    hash: String,
}

fn store_dir(data_path: &Path) -> PathBuf {
    data_path.join("store")
}

#[utoipa::path(post, path = "/store", operation_id = "storeWrite", tag = "podinfo", request_body(content = Option<serde_json::Value>, content_type = "*/*"),
    responses((status = 202, body = Stored), (status = 413, description = "body larger than 10 MiB"), (status = 503, description = "the data volume is read-only"), (status = 507, description = "no space left")))]
pub async fn write(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Stored>), PodinfoError> {
    let hash = hex::encode(Sha256::digest(&body));
    let dir = store_dir(&state.config.data_path);
    let target = dir.join(&hash);
    tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &body))
        .await
        .map_err(|e| PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("writing file failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "store write failed");
            match e.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    PodinfoError::new(StatusCode::INSUFFICIENT_STORAGE, "no space left on the data volume")
                }
                // A volume the node remounted read-only after disk errors:
                // not this request's fault, and another replica may serve.
                std::io::ErrorKind::ReadOnlyFilesystem => {
                    PodinfoError::new(StatusCode::SERVICE_UNAVAILABLE, "the data volume is read-only")
                }
                _ => PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, "writing file failed"),
            }
        })?;
    Ok((StatusCode::ACCEPTED, Json(Stored { hash })))
}

/// Temp file, fsync, rename: a reader never sees half a file, and a 202
/// means the bytes are on disk.
fn write_atomically(dir: &Path, target: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

#[utoipa::path(get, path = "/store/{hash}", operation_id = "storeRead", tag = "podinfo", params(("hash" = String, Path, pattern = "^[0-9a-f]{64}$", description = "SHA-256, 64 hex digits")),
    responses((status = 202, description = "the stored bytes (podinfo answers 202 here)"), (status = 400, description = "not a digest"), (status = 404)))]
pub async fn read(State(state): State<AppState>, UrlPath(hash): UrlPath<String>) -> Result<Response, PodinfoError> {
    if !is_digest(&hash) {
        return Err(PodinfoError::new(StatusCode::BAD_REQUEST, "invalid hash: expected 64 lowercase hex digits"));
    }
    // Streamed in pieces from the open file: a download a client reads
    // slowly (or never) holds one piece, not the whole file (a hundred
    // stalled 10 MiB downloads held 1 GB).
    match open(&store_dir(&state.config.data_path).join(&hash)).await {
        Ok((file, length)) => Ok((
            StatusCode::ACCEPTED,
            [(CONTENT_TYPE, "application/octet-stream"), (CONTENT_SECURITY_POLICY, "default-src 'none'")],
            [(CONTENT_LENGTH, length.to_string())],
            Body::from_stream(ReaderStream::with_capacity(file, PIECE)),
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(PodinfoError::new(StatusCode::NOT_FOUND, "no such hash"))
        }
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            Err(PodinfoError::new(StatusCode::INTERNAL_SERVER_ERROR, "reading file failed"))
        }
    }
}

/// Pieces of a download: hyper writes each as it comes. Small, as stalled
/// downloads are outside the memory budget: a hundred hold under 4 MiB.
const PIECE: usize = 16 * 1024;

async fn open(path: &Path) -> std::io::Result<(tokio::fs::File, u64)> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    Ok((file, length))
}

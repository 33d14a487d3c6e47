//! /ws/echo: a WebSocket that echoes each message with a timestamp and says
//! which server it is on every 5 seconds.
//!
//! A session holds memory (its reservation in the budget) and a socket: it
//! counts as a connection in --max-connections for as long as it lasts,
//! and one whose client stops answering (no message, no pong to the ping
//! sent with each heartbeat) for --http-header-timeout is closed.

use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::memory_budget;
use crate::serve::ConnectionSlot;
use crate::state::AppState;

const HEARTBEAT: Duration = Duration::from_secs(5);

/// Read and write buffers of a session (axum's default is 128 KiB each: a
/// few hundred idle sessions would hold tens of MiB).
const BUFFER: usize = 16 * 1024;

pub async fn handler(
    State(state): State<AppState>,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // axum's defaults (64 MiB messages, 16 MiB frames, a write buffer with
    // no bound) let one client grow the process past its memory limit: a
    // client that sends pings and never reads the pongs grew it without end.
    let limit = state.config.ws_max_message_bytes;
    let Some(reservation) = state.memory.try_reserve(session_bytes(limit)) else {
        tracing::warn!(budget = state.memory.bytes(), "answering 503: the memory budget for WebSockets is spent");
        return memory_budget::exhausted("WebSocket sessions");
    };
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER)
        .max_write_buffer_size(max_write_buffer(limit))
        .on_upgrade(move |socket| async move {
            let idle = state.config.http_header_timeout.max(2 * HEARTBEAT);
            echo(socket, state.hostname.to_string(), max_reply(limit), idle).await;
            drop((reservation, slot));
        })
}

/// The most a session can hold: its read buffer, a frame being read and the
/// message it belongs to, and a full write buffer.
pub fn session_bytes(limit: usize) -> usize {
    BUFFER + 2 * limit + max_write_buffer(limit)
}

/// The largest reply sent: the message JSON-escaped (quotes, backslashes
/// and control characters grow it) is refused past twice its size.
fn max_reply(limit: usize) -> usize {
    2 * limit + 256
}

/// Room for one largest reply, a pong and a close frame: past it the client
/// is not reading and the session is ended.
fn max_write_buffer(limit: usize) -> usize {
    BUFFER + max_reply(limit) + 256
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

async fn echo(mut socket: WebSocket, hostname: String, max_reply: usize, idle: Duration) {
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut heard = tokio::time::Instant::now();
    loop {
        let reply = tokio::select! {
            message = socket.recv() => {
                if matches!(message, Some(Ok(_))) {
                    heard = tokio::time::Instant::now();
                }
                match message {
                    Some(Ok(Message::Text(text))) => json!({ "ts": now(), "msg": text.as_str() }),
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => json!({ "ts": now(), "msg": text }),
                        // Not echoed: a lossy copy would double the memory and
                        // misquote the message.
                        Err(_) => json!({ "ts": now(), "error": "binary message is not UTF-8" }),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(error)) if is_too_big(&error) => {
                        // Said to the client (RFC 6455: 1009), not only a dropped socket.
                        let frame = CloseFrame { code: close_code::SIZE, reason: "message too big".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                }
            },
            _ = heartbeat.tick() => {
                if heard.elapsed() > idle {
                    let frame = CloseFrame { code: close_code::AWAY, reason: "idle: no message and no pong".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                // Answered by any client that reads (browsers do it themselves).
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
                json!({ "ts": now(), "server": hostname })
            }
        };
        let mut reply = reply.to_string();
        if reply.len() > max_reply {
            reply =
                json!({ "ts": now(), "error": "the reply would be more than twice the message's size" }).to_string();
        }
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}

/// A frame or message over `--ws-max-message-bytes`.
fn is_too_big(error: &axum::Error) -> bool {
    let cause = std::error::Error::source(error).and_then(|e| e.downcast_ref::<tungstenite::Error>());
    matches!(cause, Some(tungstenite::Error::Capacity(_)))
}

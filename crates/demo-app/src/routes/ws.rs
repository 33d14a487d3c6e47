//! /ws/echo: a WebSocket that echoes each message with a timestamp and says
//! which server it is on every 5 seconds.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::AppState;

const HEARTBEAT: Duration = Duration::from_secs(5);

pub async fn handler(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    // axum's defaults (64 MiB messages, 16 MiB frames) let one client grow
    // the process past its memory limit.
    let limit = state.config.ws_max_message_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| echo(socket, state.hostname.to_string()))
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

async fn echo(mut socket: WebSocket, hostname: String) {
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let reply = tokio::select! {
            message = socket.recv() => match message {
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
            },
            _ = heartbeat.tick() => json!({ "ts": now(), "server": hostname }),
        };
        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
            break;
        }
    }
}

/// A frame or message over `--ws-max-message-bytes`.
fn is_too_big(error: &axum::Error) -> bool {
    let cause = std::error::Error::source(error).and_then(|e| e.downcast_ref::<tungstenite::Error>());
    matches!(cause, Some(tungstenite::Error::Capacity(_)))
}

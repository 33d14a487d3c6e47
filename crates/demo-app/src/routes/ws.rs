//! /ws/echo: a WebSocket that echoes each message with a timestamp and says
//! which server it is on every 5 seconds.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::AppState;

const HEARTBEAT: Duration = Duration::from_secs(5);

pub async fn handler(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| echo(socket, state.hostname.to_string()))
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
                Some(Ok(Message::Binary(bytes))) => json!({ "ts": now(), "msg": String::from_utf8_lossy(&bytes) }),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            _ = heartbeat.tick() => json!({ "ts": now(), "server": hostname }),
        };
        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
            break;
        }
    }
}

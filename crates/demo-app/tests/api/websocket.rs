//! /ws/echo: each message comes back with a timestamp.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app;

#[tokio::test]
async fn websocket_echoes_messages_with_a_timestamp() {
    let app = spawn_app().await;
    let url = app.url("/ws/echo").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    socket.send(Message::text("hello")).await.unwrap();
    let reply = socket.next().await.expect("a reply").unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["msg"], "hello");
    assert!(reply["ts"].as_str().unwrap().contains('T'), "{reply}");
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn plain_http_to_the_websocket_route_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.get("/ws/echo").await.status(), 400);
}

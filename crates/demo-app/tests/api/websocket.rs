//! /ws/echo: each message comes back with a timestamp.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app;

/// A WebSocket handshake, for tests that speak the protocol by hand.
const UPGRADE: &[u8] = b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

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

#[tokio::test]
async fn a_message_over_the_limit_closes_the_socket_unbuffered() {
    let app = spawn_app().await;
    let url = app.url("/ws/echo").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    // The default limit is 64 KiB; 1 MiB must not be echoed.
    let _ = socket.send(Message::text("x".repeat(1024 * 1024))).await;
    match socket.next().await {
        Some(Ok(Message::Close(frame))) => {
            let code = frame.map(|f| u16::from(f.code));
            assert!(matches!(code, None | Some(1009)), "closed with {code:?}");
        }
        None | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("a 1 MiB message was answered: {:.100}", other.to_string()),
    }
}

#[tokio::test]
async fn binary_messages_that_are_not_utf8_are_not_echoed_lossily() {
    let app = spawn_app().await;
    let url = app.url("/ws/echo").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    socket.send(Message::binary(vec![0xff, 0xfe, 0x41])).await.unwrap();
    let reply: Value = serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(reply["error"], "binary message is not UTF-8", "{reply}");
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_with_close_code_1009() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(UPGRADE).await.unwrap();
    // Only the header of a 16 MiB binary frame (masked, zero key): the
    // verdict must come from the declared length, before any payload.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(16u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    socket.write_all(&header).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection stayed open after an oversized frame header");
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let frame = &received[head_end..];
    assert!(frame.len() >= 4 && frame[0] == 0x88, "no close frame after the 101: {frame:?}");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1009, "close code");
}

#[tokio::test]
async fn websocket_sessions_past_the_memory_budget_get_503() {
    // A session at the 64 KiB default reserves about 290 KiB: 3 fit in 1 MiB.
    let app = crate::helpers::spawn_app_with(|config| config.max_buffered_bytes = Some(1 << 20)).await;
    let url = app.url("/ws/echo").replacen("http://", "ws://", 1);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(tokio_tungstenite::connect_async(&url).await.expect("within the budget").0);
    }
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        other => panic!("a fourth session was not refused: {:?}", other.map(|(_, r)| r.status())),
    }
    open.pop().unwrap().close(None).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio_tungstenite::connect_async(&url).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "a closed session's memory was not given back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_is_disconnected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app =
        crate::helpers::spawn_app_with(|config| config.http_write_timeout = std::time::Duration::from_millis(500))
            .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(app.address.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    socket.write_all(UPGRADE).await.unwrap();
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // Masked pings with 125-byte payloads, as fast as the server takes them,
    // never reading a pong: the server must end the session, not queue pongs.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let batch = ping.repeat(512);
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if socket.write_all(&batch).await.is_err() {
                return;
            }
            sent += batch.len();
        }
    })
    .await;
    assert!(outcome.is_ok(), "still connected after {} MiB of pings nobody answered could be sent", sent >> 20);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// A session keeps its connection's place in --max-connections: sessions
/// cannot pile up past it after their HTTP connections have handed over.
#[tokio::test]
async fn sessions_count_as_connections() {
    let app = crate::helpers::spawn_app_with(|config| config.max_connections = 2).await;
    let url = app.url("/ws/echo").replacen("http://", "ws://", 1);
    let (first, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
    let (_second, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
    let third = tokio::time::timeout(std::time::Duration::from_millis(800), app.get("/healthz")).await;
    assert!(third.is_err(), "a third connection was served beside two sessions with --max-connections 2");
    drop(first);
    let served = tokio::time::timeout(std::time::Duration::from_secs(5), app.get("/healthz")).await;
    assert_eq!(served.expect("served once a session ended").status(), 200);
}

/// A client that neither sends nor answers the heartbeat's ping (a
/// vanished peer, or one holding a session for nothing) is closed with
/// 1001 after --http-header-timeout (at least twice the heartbeat), not
/// kept for ever.
#[tokio::test]
async fn a_session_whose_client_never_answers_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app =
        crate::helpers::spawn_app_with(|config| config.http_header_timeout = std::time::Duration::from_secs(1)).await;
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(UPGRADE).await.unwrap();
    // Reads what the server sends, answering nothing (no pong).
    let mut received = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = socket.read(&mut buffer).await {
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent session was still open after 20 s");
    // The close frame: opcode 0x8, then code 1001 (0x03e9) first in its payload.
    let close = received.windows(4).any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xe9]);
    assert!(close, "no close frame with 1001 among {} bytes", received.len());
}

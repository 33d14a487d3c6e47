//! Slow and silent clients against the connection limits: they are closed
//! after --http-header-timeout, they never hold more than
//! --max-connections, and the probes keep answering meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

fn limited(config: &mut demo_app::config::Config) {
    config.max_connections = 4;
    config.http_header_timeout = Duration::from_millis(800);
    config.http_body_timeout = Duration::from_millis(800);
}

/// Reads until the server closes the socket; how long that took.
async fn closed_after(mut socket: TcpStream, at_most: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(at_most, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(limited).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let silent = TcpStream::connect(&address).await.unwrap();
    let mut slowloris = TcpStream::connect(&address).await.unwrap();
    slowloris.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One byte, and half the HTTP/2 preface: hyper cannot tell the protocol
    // yet, so its own header timeout has not started.
    let mut one_byte = TcpStream::connect(&address).await.unwrap();
    one_byte.write_all(b"P").await.unwrap();
    let mut half_preface = TcpStream::connect(&address).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (what, socket) in
        [("silent", silent), ("slowloris", slowloris), ("one byte", one_byte), ("half a preface", half_preface)]
    {
        let closed = closed_after(socket, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a {what} socket was still open after 5 s");
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_though_it_answers_pings() {
    let app = spawn_app_with(limited).await;
    let socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let (client, connection) = h2::client::handshake(socket).await.unwrap();
    // The connection task answers the server's pings for as long as it runs.
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = axum::http::Request::get(format!("{}/healthz", app.address)).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(closed.is_ok(), "an HTTP/2 connection with nothing in flight was still open after 5 s");
}

#[tokio::test]
async fn an_http2_stream_the_client_keeps_shut_is_closed_and_its_budget_returned() {
    let app = spawn_app_with(|config| {
        config.http_write_timeout = Duration::from_millis(500);
        config.max_buffered_bytes = Some(8 << 20);
    })
    .await;
    let socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    // A window of 0: the server may send the answer's headers, never its body.
    let (client, connection) =
        h2::client::Builder::new().initial_window_size(0).handshake::<_, axum::body::Bytes>(socket).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = axum::http::Request::post(format!("{}/echo", app.address)).body(()).unwrap();
    let (response, mut upload) = client.send_request(request, false).unwrap();
    upload.send_data(vec![b'w'; 3 << 20].into(), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 202, "the echo answers; its 3 MiB wait for the window");
    // 6 MiB of 8 are held by the shut stream.
    assert_eq!(app.post("/echo", vec![b'y'; 2 << 20]).await.status(), 503);
    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(closed.is_ok(), "a stream the client kept shut held its connection past 5 s (write timeout 0.5 s)");
    assert_eq!(app.post("/echo", vec![b'y'; 2 << 20]).await.status(), 202, "the budget was not given back");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(limited).await;
    let mut socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut response = [0u8; 512];
    let n = socket.read(&mut response).await.unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 200"), "the request itself is answered");
    assert!(closed_after(socket, Duration::from_secs(5)).await.is_some(), "an idle connection stayed open past 5 s");
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    let app = spawn_app_with(limited).await;
    let mut socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart").await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a body that stopped after 4 of 100 bytes held the connection past 5 s");
    assert!(started.elapsed() >= Duration::from_millis(700), "cut before the body timeout");
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_off_at_the_body_timeout() {
    let app = spawn_app_with(limited).await;
    let mut socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
    // A byte every 100 ms: never a pause near the 800 ms timeout.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if socket.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a trickling body still held the connection after 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "answered {answer}");
    assert!(answer.contains("http-body-timeout"), "the error names the limit: {answer}");
}

#[tokio::test]
async fn silent_sockets_beyond_the_limit_never_starve_the_probes() {
    let app = spawn_app_with(limited).await;
    let address = app.address.trim_start_matches("http://").to_string();
    // Four times the limit: the first 4 are served (and timed out), the rest
    // wait in the accept queue without a file descriptor of the process.
    let mut sockets = Vec::new();
    for _ in 0..16 {
        sockets.push(TcpStream::connect(&address).await.unwrap());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    let probe = client.get(format!("{}/healthz", app.metrics_address)).send().await;
    assert!(probe.is_ok_and(|r| r.status() == 200), "the metrics port's /healthz did not answer within 1 s");
    // Each turn of the timeout frees 4 places: everyone is served or closed
    // within a few turns, and the app port answers again.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let probe = client.get(format!("{}/readyz", app.address)).send().await;
        if probe.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the app port stayed starved by silent sockets for 8 s");
    }
    drop(sockets);
}

#[tokio::test]
async fn every_error_is_json_even_axums_own_rejections() {
    let app = crate::helpers::spawn_app().await;
    let too_big = vec![0u8; demo_app::routes::BODY_LIMIT + 1];
    for path in ["/store", "/echo", "/cache/k", "/token"] {
        let response = app.post(path, too_big.clone()).await;
        assert_eq!(response.status(), 413, "{path}");
        let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        assert_eq!(body["code"], 413, "{path}: {body}");
    }
    let wrong_method = app.client.patch(app.url("/api/orders")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers().contains_key("allow"), "the Allow header stays");
    assert_eq!(wrong_method.json::<serde_json::Value>().await.unwrap()["code"], 405);
    let unknown = app.get("/no/such/route").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<serde_json::Value>().await.unwrap()["message"], "not found");
}

/// A client socket with a small receive buffer: the kernel cannot absorb
/// an answer the client never reads.
async fn reluctant_reader(address: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(address.parse().unwrap()).await.unwrap()
}

/// Sends `body` to /echo over `socket`, by hand.
async fn post_echo(socket: &mut TcpStream, body: &[u8]) {
    let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_its_answer_is_closed_after_the_write_timeout() {
    let app = spawn_app_with(|config| config.http_write_timeout = Duration::from_millis(500)).await;
    let mut socket = reluctant_reader(app.address.trim_start_matches("http://")).await;
    let body = vec![b'x'; 9 << 20];
    post_echo(&mut socket, &body).await;
    // Nothing read for 2 s: the echo's write is blocked, then cut off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 65536];
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open: the server kept the answer for a client that never read");
    assert!(received.len() < body.len(), "the whole answer was delivered ({} bytes): nothing was cut", received.len());
}

#[tokio::test]
async fn bodies_past_the_memory_budget_get_503_until_the_budget_is_back() {
    let app = spawn_app_with(|config| config.max_buffered_bytes = Some(8 << 20)).await;
    // One client sends all but the last byte of 3 MiB: what it sent is held.
    let mut slow = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    slow.write_all(format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 3 << 20).as_bytes())
        .await
        .unwrap();
    slow.write_all(&vec![b'x'; (3 << 20) - 1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = app.post("/echo", vec![b'y'; 2 << 20]).await;
    assert_eq!(refused.status(), 503, "bodies count twice: 6 + 4 MiB of an 8 MiB budget");
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("--max-buffered-bytes"), "{body}");
    // Small bodies still fit, and bodiless requests never count.
    assert_eq!(app.post("/echo", vec![b'z'; 512 << 10]).await.status(), 202);
    assert_eq!(app.get("/api/info").await.status(), 200);
    // A declared length the handler never reads costs nothing.
    let mut unread = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    unread
        .write_all(format!("POST /chunked/10 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 1 << 20).as_bytes())
        .await
        .unwrap();
    unread.write_all(&vec![b'u'; 1 << 20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.post("/echo", vec![b'z'; 512 << 10]).await.status(), 202, "an unread body took from the budget");
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.post("/echo", vec![b'y'; 2 << 20]).await.status() != 202 {
        assert!(Instant::now() < deadline, "the budget was not given back when the slow client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_answer_waiting_in_the_socket_keeps_its_budget_until_it_is_sent() {
    let app = spawn_app_with(|config| {
        config.http_write_timeout = Duration::from_secs(1);
        config.max_buffered_bytes = Some(24 << 20);
    })
    .await;
    let mut socket = reluctant_reader(app.address.trim_start_matches("http://")).await;
    // 9 MiB: more than the kernel's send buffer (tcp_wmem's 4 MiB) absorbs.
    let body = vec![b'x'; 9 << 20];
    post_echo(&mut socket, &body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its answer is stuck behind a socket nobody reads: it is still the
    // process's memory (18 MiB reserved + 8 > 24).
    assert_eq!(app.post("/echo", vec![b'y'; 4 << 20]).await.status(), 503, "the stuck answer's budget was given back");
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.post("/echo", vec![b'y'; 4 << 20]).await.status() != 202 {
        assert!(Instant::now() < deadline, "the budget was not given back after the write timeout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(socket);
}

/// A client reading a steady 1.3 MB/s gets the whole answer however short
/// the write timeout: progress is seen as the kernel takes each piece, not
/// only after a third of a 4 MiB send buffer has drained.
#[tokio::test]
async fn a_slow_steady_reader_gets_its_whole_answer() {
    let app = spawn_app_with(|config| config.http_write_timeout = Duration::from_millis(700)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(128 << 10).unwrap();
    let mut socket = socket.connect(app.address.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let body = vec![b'x'; 9 << 20];
    post_echo(&mut socket, &body).await;
    let (mut received, mut expected) = (0, usize::MAX);
    let mut buffer = vec![0u8; 128 << 10];
    let started = Instant::now();
    while received < expected && started.elapsed() < Duration::from_secs(30) {
        // 128 KiB each 100 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut this_turn = 0;
        // Not past the answer's end: the connection stays open (keep-alive),
        // and a read waiting for more would wait for the idle timeout.
        while this_turn < buffer.len() && received + this_turn < expected {
            match socket.read(&mut buffer[this_turn..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => this_turn += n,
            }
        }
        if this_turn == 0 {
            break;
        }
        if received == 0 {
            let head = buffer.windows(4).position(|w| w == b"\r\n\r\n").expect("the answer's head in its first bytes");
            expected = head + 4 + body.len();
        }
        received += this_turn;
    }
    assert_eq!(received, expected, "cut after {received} bytes of a {expected} byte answer");
}

/// podinfo's `--http-server-timeout` (its read and write timeout) bounds a
/// request body that never ends, in place of the 30 s default.
#[tokio::test]
async fn podinfos_server_timeout_cuts_off_a_body_that_never_ends() {
    let app = spawn_app_with(|config| config.http_server_timeout = Some(Duration::from_millis(800))).await;
    let mut socket = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nonly this").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a body that never ends still held the connection after 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "answered {answer}");
}

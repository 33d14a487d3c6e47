//! Clients beyond the limits, against a frontend (the role that faces the
//! gateway) with 256 open files, short HTTP timeouts and its chart memory
//! limit: hundreds of silent, slowloris and slow-body sockets must not get
//! the liveness probe (metrics port) slow, must all be closed by the server
//! within a few header timeouts, and the app port must serve again by
//! itself; a WebSocket frame and a fragmented message far over the limit
//! are refused with close code 1009 before they are buffered; answers and
//! downloads nobody reads hold neither memory nor connections for long.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{App, Launch, Programs};
use crate::stack::http;
use crate::stack::process::poll_until;

const SILENT: usize = 300;
const SLOWLORIS: usize = 50;
const SLOW_BODIES: usize = 50;
/// `--http-header-timeout` and `--http-body-timeout` of this run.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The WebSocket limit of this run (`--ws-max-message-bytes`).
const WS_LIMIT: usize = 64 * 1024;

pub(super) fn beyond_the_limits(programs: &Programs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let budget = (programs.frontend_limit_mib * 1024 * 1024 / 5 * 2).to_string();
    let launch = Launch {
        env: &[],
        // A backend nobody listens on: this role's checkout is not under test.
        args: &[
            "--role",
            "frontend",
            "--backend-url",
            "http://127.0.0.1:9",
            "--http-header-timeout",
            "2s",
            "--http-body-timeout",
            "2s",
            "--ws-max-message-bytes",
            "65536",
            "--http-write-timeout",
            "2s",
            // What a pod gets by default: 40 % of its memory limit (read from
            // the cgroup, which this process is not confined to).
            "--max-buffered-bytes",
            &budget,
        ],
        open_files: Some(256),
        memory_limit_mib: programs.frontend_limit_mib,
    };
    let app = App::launch(&programs.demo_app, &dir.path().join("data"), launch)?;
    // The peak so far after each phase: which one takes the process near its limit.
    let peak_after =
        |measured: String| -> Result<String> { Ok(format!("{measured} (peak RSS {} MiB)", app.peak_rss_mib()?)) };
    let flood = peak_after(flood(&app)?)?;
    let frame = peak_after(oversized_frame(app.port)?)?;
    let fragments = peak_after(fragmented_message(app.port)?)?;
    let unread = peak_after(answers_nobody_reads(&app)?)?;
    let downloads = peak_after(downloads_nobody_reads(&app)?)?;
    let peak = app.stop()?;
    Ok(format!("{flood}; {frame}; {fragments}; {unread}; {downloads}; peak RSS {peak} MiB"))
}

fn flood(app: &App) -> Result<String> {
    let address = format!("127.0.0.1:{}", app.port);
    let mut sockets = Vec::new();
    for _ in 0..SILENT {
        sockets.push(TcpStream::connect(&address)?);
    }
    let mut dribbled = Vec::new();
    for n in 0..SLOWLORIS + SLOW_BODIES {
        let mut socket = TcpStream::connect(&address)?;
        let start: &[u8] = if n < SLOWLORIS {
            b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Slow: "
        } else {
            b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        };
        // Unanswered sockets beyond the connection budget still take writes
        // into the kernel's buffers.
        socket.write_all(start)?;
        dribbled.push(socket.try_clone()?);
        sockets.push(socket);
    }
    // One byte every 200 ms on each slow socket, until the server closes it.
    let stop = Arc::new(AtomicBool::new(false));
    let dribbler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for socket in &mut dribbled {
                    let _ = socket.write_all(b"a");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let started = Instant::now();

    // The liveness probe, while every slot of the app port is taken.
    let mut slowest_probe = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let status = http::get(app.metrics_port, "/healthz").map_or(0, |r| r.status);
        slowest_probe = slowest_probe.max(asked.elapsed());
        if status != 200 || asked.elapsed() > Duration::from_secs(1) {
            bail!("the metrics port's /healthz answered {status} in {:?} under the flood", asked.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    for socket in &sockets {
        socket.set_nonblocking(true)?;
    }
    // 256 open files leave 128 connections: 400 sockets need about four
    // turns of the header timeout, a few more for the accept queue's order.
    let all_closed =
        poll_until("every flooding socket to be closed", TIMEOUT * 10, Duration::from_millis(100), |last| {
            let open = sockets.iter().filter(|s| is_open(s)).count();
            let first = sockets.iter().position(is_open);
            *last = format!("{open} of {} sockets still open (first {first:?})", sockets.len());
            Ok((open == 0).then_some(started.elapsed()))
        })?;
    stop.store(true, Ordering::Relaxed);
    let _ = dribbler.join();
    let served_again = poll_until("the app port to answer again", TIMEOUT * 5, Duration::from_millis(50), |last| {
        let status = app.status("/readyz");
        *last = format!("/readyz {status}");
        Ok((status == 200).then_some(started.elapsed()))
    })?;
    Ok(format!(
        "{SILENT} silent, {SLOWLORIS} slowloris and {SLOW_BODIES} slow-body sockets with 256 open files: liveness \
         (metrics port) 10/10 200, slowest {:.0} ms; all closed by the server after {:.1} s (header timeout 2 s); \
         the app port ready again after {:.1} s",
        slowest_probe.as_secs_f64() * 1000.0,
        all_closed.as_secs_f64(),
        served_again.as_secs_f64()
    ))
}

/// Open unless the peer closed or reset it (the socket is non-blocking).
fn is_open(mut socket: &TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// One 16 MiB binary frame: the server must refuse it (1009) on its header,
/// then take no more of it.
fn oversized_frame(port: u16) -> Result<String> {
    let mut socket = upgrade(port)?;
    let size = 16 << 20;
    socket.write_all(&frame_header(0x2, true, size))?;
    let code = close_code(&mut socket)?;
    if code != 1009 {
        bail!("a 16 MiB WebSocket frame was answered with close code {code}, not 1009 (message too big)");
    }
    let taken = send_until_refused(&mut socket, size);
    if taken == size {
        bail!("after closing with 1009 the server still took the whole 16 MiB frame");
    }
    Ok(format!("a 16 MiB WebSocket frame: close 1009 on its header, then refused after {} KiB", taken / 1024))
}

/// 60 MiB in 32 KiB fragments: refused once the message passes the limit.
fn fragmented_message(port: u16) -> Result<String> {
    let mut socket = upgrade(port)?;
    let fragment = vec![b'x'; 32 * 1024];
    // Up to the limit and one fragment past it, then the answer.
    let mut sent = 0;
    while sent <= WS_LIMIT {
        let opcode = if sent == 0 { 0x2 } else { 0x0 };
        socket.write_all(&frame_header(opcode, false, fragment.len()))?;
        socket.write_all(&fragment)?;
        sent += fragment.len();
    }
    let code = close_code(&mut socket)?;
    if code != 1009 {
        bail!("a fragmented WebSocket message past the limit was answered with close code {code}, not 1009");
    }
    let mut taken = 0;
    while taken < 60 << 20 {
        let written =
            socket.write_all(&frame_header(0x0, false, fragment.len())).and_then(|()| socket.write_all(&fragment));
        if written.is_err() {
            break;
        }
        taken += fragment.len();
    }
    if taken >= 60 << 20 {
        bail!("after closing with 1009 the server still took 60 MiB more fragments");
    }
    Ok(format!(
        "a fragmented 60 MiB message: close 1009 after {} KiB, then refused after {} KiB more",
        sent / 1024,
        taken / 1024
    ))
}

/// A WebSocket on /ws/echo, past the 101.
fn upgrade(port: u16) -> Result<TcpStream> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.set_write_timeout(Some(Duration::from_secs(5)))?;
    socket.write_all(
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).context("reading the WebSocket handshake's answer")?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("/ws/echo answered {}", String::from_utf8_lossy(&head));
    }
    Ok(socket)
}

/// A client frame's header with a zero mask key (the payload goes as is).
fn frame_header(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
    let mut header = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xffff => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    header.extend_from_slice(&[0, 0, 0, 0]);
    header
}

/// Writes up to `size` payload bytes until the server stops taking them.
fn send_until_refused(socket: &mut TcpStream, size: usize) -> usize {
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        match socket.write(&chunk[..chunk.len().min(size - sent)]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    sent
}

/// The status code of the server's close frame, read without waiting for
/// the end of the connection (0 if it closed or reset without one).
fn close_code(socket: &mut TcpStream) -> Result<u16> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        // Server frames are unmasked: [opcode, len, payload...], a close's
        // payload starting with the status code.
        let mut rest = received.as_slice();
        while rest.len() >= 2 {
            let (opcode, len) = (rest[0] & 0x0f, usize::from(rest[1] & 0x7f));
            if opcode == 0x8 && rest.len() >= 4 && len >= 2 {
                return Ok(u16::from_be_bytes([rest[2], rest[3]]));
            }
            if rest.len() < 2 + len {
                break;
            }
            rest = &rest[2 + len..];
        }
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => return Ok(0),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Clients that post 10 MiB to the echo and never read the answer: the
/// memory budget refuses what would not fit (503), the write timeout closes
/// the rest, and the budget is whole again afterwards.
fn answers_nobody_reads(app: &App) -> Result<String> {
    const CLIENTS: usize = 30;
    const BODY: usize = 10 * 1024 * 1024 - 1;
    let port = app.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || -> String {
                let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else { return "refused".into() };
                let head = format!("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n");
                let sent = socket.write_all(head.as_bytes()).and_then(|()| socket.write_all(&vec![b'e'; BODY]));
                // Past the write timeout, then a look at what arrived.
                std::thread::sleep(TIMEOUT + Duration::from_secs(1));
                let mut start = [0u8; 12];
                match socket.read_exact(&mut start) {
                    Ok(()) => String::from_utf8_lossy(&start[9..12]).into_owned(),
                    Err(_) if sent.is_err() => "cut while sending".into(),
                    Err(_) => "closed unanswered".into(),
                }
            })
        })
        .collect();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        *seen.entry(client.join().unwrap_or_else(|_| "panicked".into())).or_default() += 1;
    }
    if !seen.contains_key("503") {
        bail!("{CLIENTS} clients posting 10 MiB at once were all taken in: {seen:?} (the memory budget never refused)");
    }
    // Every reservation is given back once the unread answers are cut off.
    let echoed = poll_until("the echo to take 10 MiB again", TIMEOUT * 5, Duration::from_millis(200), |last| {
        let response = http::request("POST", port, "/api/echo", &[], Some(&vec![b'f'; BODY]))?;
        *last = format!("/api/echo answered {}", response.status);
        // 200: this frontend's echo calls its (absent) backend.
        Ok(matches!(response.status, 200 | 202).then_some(()))
    });
    echoed?;
    Ok(format!(
        "{CLIENTS} clients posting 10 MiB to /api/echo and never reading: {seen:?} (first 12 bytes read after {:.0} s), \
         then 10 MiB echoed again",
        (TIMEOUT + Duration::from_secs(1)).as_secs_f64()
    ))
}

/// A hundred clients that ask for a 10 MiB stored file and never read it:
/// downloads stream from the file, so they hold a piece each, not the file
/// (read whole, they held 1 GB), and the write timeout closes them.
fn downloads_nobody_reads(app: &App) -> Result<String> {
    const CLIENTS: usize = 100;
    let port = app.port;
    let stored = http::request("POST", port, "/store", &[], Some(&vec![b's'; 10 * 1024 * 1024 - 1]))?;
    if stored.status != 202 {
        bail!("storing 10 MiB answered {}: {}", stored.status, stored.text());
    }
    let hash = serde_json::from_slice::<serde_json::Value>(&stored.body)?["hash"]
        .as_str()
        .context("POST /store answered no hash")?
        .to_owned();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || -> String {
                let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else { return "refused".into() };
                let head = format!("GET /store/{hash} HTTP/1.1\r\nHost: x\r\n\r\n");
                if socket.write_all(head.as_bytes()).is_err() {
                    return "cut while asking".into();
                }
                std::thread::sleep(TIMEOUT + Duration::from_secs(1));
                let mut start = [0u8; 12];
                if socket.read_exact(&mut start).is_err() {
                    return "closed unanswered".into();
                }
                // The rest, until the server gives up on this client.
                let mut rest = [0u8; 64 * 1024];
                let closed = (0..2000).any(|_| matches!(socket.read(&mut rest), Ok(0) | Err(_)));
                let status = String::from_utf8_lossy(&start[9..12]).into_owned();
                if closed { status } else { format!("{status} never closed") }
            })
        })
        .collect();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        *seen.entry(client.join().unwrap_or_else(|_| "panicked".into())).or_default() += 1;
    }
    if seen.get("202") != Some(&CLIENTS) {
        bail!("{CLIENTS} stalled downloads of a 10 MiB file: {seen:?} (each should be served 202 and then cut)");
    }
    Ok(format!(
        "{CLIENTS} downloads of a 10 MiB file read only after {:.0} s: {seen:?}, all ended in {:.1} s",
        (TIMEOUT + Duration::from_secs(1)).as_secs_f64(),
        started.elapsed().as_secs_f64()
    ))
}

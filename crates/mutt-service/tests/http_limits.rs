//! `serve_with`'s limits over real sockets: a head sent too slowly closes the connection, a
//! body sent too slowly gets 408, a handler too slow gets 503, and past the connection limit
//! new connections wait while the accepted ones keep being served.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{get, post};
use mutt_service::HttpLimits;
use mutt_service::http::is_body_timeout;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Reads the body as the ingest handler does: 408 when the body deadline cut it off.
async fn echo_len(body: Body) -> (StatusCode, String) {
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => (StatusCode::OK, b.len().to_string()),
        Err(e) if is_body_timeout(&e) => (StatusCode::REQUEST_TIMEOUT, "body timeout".into()),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn start(limits: HttpLimits) -> (SocketAddr, tokio_util::sync::DropGuard) {
    let router = Router::new()
        .route("/echo", post(echo_len))
        .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(30)).await }))
        .route("/ok", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(mutt_service::serve_with(listener, router, stop.clone(), limits));
    (addr, stop.drop_guard())
}

fn limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        max_connections: 100,
        max_head_bytes: mutt_service::http::DEFAULT_MAX_HEAD_BYTES,
    }
}

/// Reads until the peer closes (or 5 s pass) and returns what came.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on its own connection; the status line's code.
async fn get_status(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    read_to_close(&mut s).await
}

#[tokio::test]
async fn head_sent_byte_by_byte_is_cut_off() {
    let (addr, _stop) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The whole head would take ~4 s; the server gives up after 0.5 s without answering.
    let reply = if closed { String::new() } else { read_to_close(&mut s).await };
    assert!(!reply.contains("200 OK"), "a head slower than the timeout must not be served: {reply}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    assert!(get_status(addr, "/ok").await.starts_with("HTTP/1.1 200"), "the listener still serves");
}

#[tokio::test]
async fn body_sent_slowly_gets_408() {
    let (addr, _stop) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let writer = async {
        for _ in 0..100 {
            if s.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    let reply = read_to_close(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body timeout"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // A body sent at once is unaffected.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc").await.unwrap();
    assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn handler_past_the_request_timeout_gets_503_json() {
    let (addr, _stop) = start(limits()).await;
    let started = Instant::now();
    let reply = get_status(addr, "/slow").await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains(r#""status":"error""#) && reply.contains("request not handled within 2 s"), "{reply}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_and_accepted_ones_are_served() {
    let (addr, _stop) =
        start(HttpLimits { max_connections: 2, header_read_timeout: Duration::from_secs(10), ..limits() }).await;
    // Two keep-alive connections take both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // A third connects (the kernel's backlog) but is not served while both are open.
    let third = tokio::spawn(async move {
        let started = Instant::now();
        let reply = get_status(addr, "/ok").await;
        (reply, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!third.is_finished(), "the third connection was served past the limit");
    // The accepted ones keep being served meanwhile.
    for s in &mut held {
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    }
    // One closes: the waiting connection gets its answer.
    drop(held.pop());
    let (reply, waited) = tokio::time::timeout(Duration::from_secs(5), third).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
}

/// One request with an `X-Big` header of `size` bytes on its own connection; the reply.
async fn with_header_of(addr: SocketAddr, size: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(size);
    s.write_all(format!("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_to_close(&mut s).await
}

#[tokio::test]
async fn a_head_over_the_limit_is_refused_and_bodies_are_not_capped_by_it() {
    // The default: 16 KiB.
    let (addr, _stop) = start(limits()).await;
    assert!(with_header_of(addr, 12 * 1024).await.starts_with("HTTP/1.1 200"));
    let reply = with_header_of(addr, 20 * 1024).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // A body is read in pieces: 200 KiB arrive whole.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = "b".repeat(200 * 1024);
    let req =
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let reply = read_to_close(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("204800"), "{reply}");
    // A larger limit lets the 20 KiB head through, and still refuses past it.
    let (addr, _stop) = start(HttpLimits { max_head_bytes: 64 * 1024, ..limits() }).await;
    assert!(with_header_of(addr, 20 * 1024).await.starts_with("HTTP/1.1 200"));
    let reply = with_header_of(addr, 100 * 1024).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // One below hyper's minimum is raised to it rather than panicking the listener.
    let (addr, _stop) = start(HttpLimits { max_head_bytes: 1024, ..limits() }).await;
    assert!(with_header_of(addr, 4 * 1024).await.starts_with("HTTP/1.1 200"));
}

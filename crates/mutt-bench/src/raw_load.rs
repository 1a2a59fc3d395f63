//! The benchmark phases' load generator: the event mix sent open loop (each request at its due
//! time) over a fixed set of kept-alive HTTP/1.1 connections written by hand on tokio sockets.
//! A general client (reqwest) costs the shared cores more per request than the ingestor
//! itself, which made the generator the limit of the single-event phase.

use crate::pipeline::{Category, INGEST_KEY, request_body};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections kept open (the reqwest generator allowed 128 requests in flight).
const CONNECTIONS: usize = 96;

/// What one connection sent: the accepted sequence numbers with their category, and how
/// many events were refused (an error status or a broken connection).
#[derive(Default)]
struct Sent {
    accepted: Vec<(u64, Category)>,
    refused: u64,
}

/// Sends the event mix to `url` (`http://host:port/path`) at `rate` events/s for `duration`,
/// in requests of `batch` events, starting at sequence `first`; as [`crate::pipeline::offer`].
pub async fn offer_fast(
    url: &str,
    first: u64,
    rate: u64,
    batch: usize,
    duration: Duration,
) -> (Vec<(u64, Category)>, u64) {
    let Some((addr, path)) = split_url(url) else {
        return (Vec::new(), 0);
    };
    let requests_per_sec = (rate as f64 / batch as f64).max(0.1);
    let total = (requests_per_sec * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / requests_per_sec);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, addr, path) = (next.clone(), addr.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = Sent::default();
            let mut conn: Option<TcpStream> = None;
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= total {
                    return sent;
                }
                tokio::time::sleep_until((started + interval.mul_f64(r as f64)).into()).await;
                let seqs: Vec<u64> = (0..batch as u64).map(|i| first + r * batch as u64 + i).collect();
                let (body, cats) = request_body(&seqs);
                let ok = send(&mut conn, &addr, &path, &body).await;
                if ok {
                    sent.accepted.extend(seqs.into_iter().zip(cats));
                } else {
                    sent.refused += batch as u64;
                }
            }
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        if let Ok(s) = t.await {
            accepted.extend(s.accepted);
            refused += s.refused;
        }
    }
    accepted.sort_unstable_by_key(|a| a.0);
    (accepted, refused)
}

/// ("host:port", "/path") of an `http://` URL.
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((addr.to_owned(), format!("/{path}")))
}

/// One POST on the kept connection (opened again after any failure); true on a 2xx.
async fn send(conn: &mut Option<TcpStream>, addr: &str, path: &str, body: &[u8]) -> bool {
    for _ in 0..2 {
        if conn.is_none() {
            *conn = TcpStream::connect(addr).await.ok();
            if let Some(c) = conn.as_ref() {
                let _ = c.set_nodelay(true);
            }
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(10), exchange(c, addr, path, body)).await {
            Ok(Ok(status)) => return (200..300).contains(&status),
            // A connection the server closed (keep-alive timeout) is retried once on a new one.
            _ => *conn = None,
        }
    }
    false
}

/// Writes the request and reads the response (headers and Content-Length body); its status.
async fn exchange(c: &mut TcpStream, addr: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {INGEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut req = Vec::with_capacity(head.len() + body.len());
    req.extend_from_slice(head.as_bytes());
    req.extend_from_slice(body);
    c.write_all(&req).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(status) = complete_response(&buf) {
            return Ok(status);
        }
    }
}

/// The status of a complete response in `buf` (headers and Content-Length body), if complete.
fn complete_response(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + len).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses() {
        assert_eq!(split_url("http://127.0.0.1:8080/ingest"), Some(("127.0.0.1:8080".into(), "/ingest".into())));
        let r = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(complete_response(r), Some(202));
        assert_eq!(complete_response(&r[..r.len() - 1]), None);
    }

    #[tokio::test]
    async fn reaches_the_null_server() {
        let server = crate::null_server::NullServer::start().await.unwrap();
        let (accepted, refused) = offer_fast(&server.url(), 0, 2_000, 10, Duration::from_millis(500)).await;
        assert_eq!((accepted.len(), refused), (1_000, 0));
    }
}

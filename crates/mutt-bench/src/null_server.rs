//! An HTTP server that does nothing: reads each request and answers `200 {}` on a kept-alive
//! connection. What the load generator reaches against it is the generator's own ceiling, the
//! most a benchmark phase could show.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// Binds a loopback port and serves until the runtime ends (the task is aborted on drop).
pub struct NullServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl NullServer {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        Ok(Self { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve(mut stream: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // A whole request (headers and Content-Length body) in `buf`: answer and drop it.
        while let Some(len) = request_len(&buf) {
            if stream.write_all(REPLY).await.is_err() {
                return;
            }
            buf.drain(..len);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the first complete request in `buf`, if it is all there.
fn request_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let body: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= head_end + body).then_some(head_end + body)
}

#[cfg(test)]
mod tests {
    use super::request_len;

    #[test]
    fn finds_whole_requests_only() {
        let r = b"POST /ingest HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(request_len(r), Some(r.len()));
        assert_eq!(request_len(&r[..r.len() - 1]), None);
        assert_eq!(request_len(b"GET / HTTP/1.1\r\n\r\nPOST"), Some(18));
    }
}

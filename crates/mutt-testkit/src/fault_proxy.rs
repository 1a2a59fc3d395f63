//! A TCP proxy that injects network faults between a client and a server (Redis, PostgreSQL,
//! the webhook), switchable at runtime.
//!
//! ```no_run
//! # async fn f() {
//! use mutt_testkit::{FaultMode, FaultProxy};
//! let proxy = FaultProxy::start("127.0.0.1:6379").await.unwrap();
//! // point the client at proxy.addr() ...
//! proxy.set_mode(FaultMode::Blackhole);
//! # }
//! ```
//!
//! Modes (each applies to new connections and to the open ones):
//! - [`FaultMode::Pass`]: bytes are forwarded both ways.
//! - [`FaultMode::Delay`]: every chunk, either way, waits the given time before being forwarded.
//! - [`FaultMode::Blackhole`]: new connections are accepted and never answered (no upstream
//!   connection is made); open ones stop forwarding either way. A connection caught by a
//!   blackhole stays silent until its client closes it, even after the mode changes back, like a
//!   path whose peer vanished without a reset: the client has to notice by a timeout.
//! - [`FaultMode::Reset`]: open connections are reset (RST) and new ones are reset on accept.
//! - [`FaultMode::DropReplies`]: the client's bytes reach the server, but when the server
//!   answers, the client connection is closed instead of receiving the reply: the request was
//!   carried out and its reply lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    Pass,
    Delay(Duration),
    Blackhole,
    Reset,
    DropReplies,
}

/// What the proxy counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Connections accepted from clients.
    pub connections: u64,
    /// Connections open right now (accepted and not yet closed by the proxy or the client).
    pub open: u64,
    /// Bytes forwarded client → server.
    pub bytes_up: u64,
    /// Bytes forwarded server → client.
    pub bytes_down: u64,
    /// Connections reset (on accept or while open).
    pub resets: u64,
    /// Connections closed instead of returning a server reply ([`FaultMode::DropReplies`]).
    pub replies_dropped: u64,
    /// Connections caught by a blackhole.
    pub blackholed: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    resets: AtomicU64,
    replies_dropped: AtomicU64,
    blackholed: AtomicU64,
}

impl Counters {
    fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::Relaxed);
    }
}

/// A running proxy; dropping it stops it and closes every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    target: String,
    mode: watch::Sender<FaultMode>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`), in
    /// [`FaultMode::Pass`].
    pub async fn start(target: impl Into<String>) -> std::io::Result<Self> {
        let target = target.into();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, rx) = watch::channel(FaultMode::Pass);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, target.clone(), rx, counters.clone()));
        Ok(Self { addr, target, mode, counters, task })
    }

    /// The proxy's own address, to give the client instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address forwarded to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Switches the mode; open connections follow at once.
    pub fn set_mode(&self, mode: FaultMode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> FaultMode {
        *self.mode.borrow()
    }

    pub fn counts(&self) -> ProxyCounts {
        let c = &self.counters;
        let get = |f: &AtomicU64| f.load(Ordering::Relaxed);
        ProxyCounts {
            connections: get(&c.connections),
            open: get(&c.open),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
            resets: get(&c.resets),
            replies_dropped: get(&c.replies_dropped),
            blackholed: get(&c.blackholed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks end when the mode sender goes (their `changed()` fails).
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, rx: watch::Receiver<FaultMode>, counters: Arc<Counters>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        Counters::add(&counters.connections, 1);
        Counters::add(&counters.open, 1);
        let (target, rx, counters) = (target.clone(), rx.clone(), counters.clone());
        tokio::spawn(async move {
            serve(client, &target, rx, &counters).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// How a forwarding connection ended.
enum End {
    /// Both sides closed, or the proxy stopped: drop both sockets.
    Closed,
    Reset,
    Blackhole,
    DropReply,
}

async fn serve(client: TcpStream, target: &str, mut rx: watch::Receiver<FaultMode>, counters: &Counters) {
    let _ = client.set_nodelay(true);
    let mode = *rx.borrow_and_update();
    let server = match mode {
        FaultMode::Reset => return reset(client, counters),
        FaultMode::Blackhole => return hold(client, None, rx, counters).await,
        _ => TcpStream::connect(target).await,
    };
    let Ok(mut server) = server else {
        return reset(client, counters);
    };
    let _ = server.set_nodelay(true);
    let mut client = client;
    match pump(&mut client, &mut server, &mut rx, counters).await {
        End::Closed => {}
        End::Reset => reset(client, counters),
        End::Blackhole => hold(client, Some(server), rx, counters).await,
        End::DropReply => Counters::add(&counters.replies_dropped, 1),
    }
}

/// Closes the client connection with a RST.
fn reset(client: TcpStream, counters: &Counters) {
    let _ = client.set_zero_linger();
    Counters::add(&counters.resets, 1);
    drop(client);
}

/// Keeps the connection open and silent: the client's bytes are read and discarded (so its
/// writes never block), nothing is forwarded, until the client closes or the proxy stops.
async fn hold(
    mut client: TcpStream,
    server: Option<TcpStream>,
    mut rx: watch::Receiver<FaultMode>,
    counters: &Counters,
) {
    Counters::add(&counters.blackholed, 1);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) { break },
            changed = rx.changed() => if changed.is_err() { break },
        }
    }
    drop(server);
}

/// Forwards both ways under the current mode until a side closes or the mode says otherwise.
async fn pump(
    client: &mut TcpStream,
    server: &mut TcpStream,
    rx: &mut watch::Receiver<FaultMode>,
    counters: &Counters,
) -> End {
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let (mut up_buf, mut down_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut up_open, mut down_open) = (true, true);
    while up_open || down_open {
        let mode = *rx.borrow_and_update();
        match mode {
            FaultMode::Reset => return End::Reset,
            FaultMode::Blackhole => return End::Blackhole,
            _ => {}
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return End::Closed },
            n = cr.read(&mut up_buf), if up_open => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    up_open = false;
                    let _ = sw.shutdown().await;
                    continue;
                }
                delay(mode).await;
                if sw.write_all(&up_buf[..n]).await.is_err() {
                    return End::Reset;
                }
                Counters::add(&counters.bytes_up, n as u64);
            }
            n = sr.read(&mut down_buf), if down_open => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    down_open = false;
                    let _ = cw.shutdown().await;
                    continue;
                }
                if mode == FaultMode::DropReplies {
                    return End::DropReply;
                }
                delay(mode).await;
                if cw.write_all(&down_buf[..n]).await.is_err() {
                    return End::Closed;
                }
                Counters::add(&counters.bytes_down, n as u64);
            }
        }
    }
    End::Closed
}

async fn delay(mode: FaultMode) {
    if let FaultMode::Delay(d) = mode {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::time::timeout;

    /// An echo server on a free loopback port; returns its address and how many bytes it read.
    async fn echo_server() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        seen.fetch_add(n as u64, Ordering::Relaxed);
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    async fn proxy() -> (FaultProxy, Arc<AtomicU64>) {
        let (echo, seen) = echo_server().await;
        (FaultProxy::start(echo.to_string()).await.unwrap(), seen)
    }

    /// Sends `msg` and reads the echo (up to 2 s).
    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        match timeout(Duration::from_secs(2), s.read_exact(&mut got)).await {
            Ok(r) => r.map(|_| got),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo")),
        }
    }

    async fn wait_for(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !cond() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn pass_forwards_both_ways_and_counts() {
        let (p, _) = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"hello").await.unwrap(), b"hello");
        let big = vec![7u8; 200_000];
        assert_eq!(round_trip(&mut s, &big).await.unwrap(), big);
        let c = p.counts();
        assert_eq!((c.connections, c.open, c.bytes_up, c.bytes_down), (1, 1, 200_005, 200_005));
        drop(s);
        wait_for(|| p.counts().open == 0).await;
        assert_eq!(p.counts().open, 0, "a closed client closes the proxied connection");
    }

    #[tokio::test]
    async fn delay_holds_every_chunk() {
        let (p, _) = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        p.set_mode(FaultMode::Delay(Duration::from_millis(150)));
        let started = Instant::now();
        assert_eq!(round_trip(&mut s, b"x").await.unwrap(), b"x");
        assert!(started.elapsed() >= Duration::from_millis(300), "both ways delayed: {:?}", started.elapsed());
        p.set_mode(FaultMode::Pass);
        let started = Instant::now();
        round_trip(&mut s, b"y").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(150), "pass again: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn blackhole_silences_open_and_new_connections() {
        let (p, seen) = proxy().await;
        let mut open = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut open, b"a").await.unwrap();
        p.set_mode(FaultMode::Blackhole);
        wait_for(|| p.counts().blackholed == 1).await;
        let err = round_trip(&mut open, b"b").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "no answer and no reset on an open connection");
        let mut new = TcpStream::connect(p.addr()).await.expect("a blackhole still accepts");
        let err = round_trip(&mut new, b"c").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(seen.load(Ordering::Relaxed), 1, "nothing reached the server after the blackhole");
        p.set_mode(FaultMode::Pass);
        let err = round_trip(&mut open, b"d").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "a blackholed connection stays silent");
        let mut fresh = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"e").await.unwrap(), b"e", "new connections pass again");
        assert_eq!(p.counts().blackholed, 2);
    }

    #[tokio::test]
    async fn reset_resets_open_and_new_connections() {
        let (p, _) = proxy().await;
        let mut open = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut open, b"a").await.unwrap();
        p.set_mode(FaultMode::Reset);
        wait_for(|| p.counts().resets == 1).await;
        let mut buf = [0u8; 1];
        let err = open.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "RST on an open connection");
        let mut new = TcpStream::connect(p.addr()).await.unwrap();
        let got = timeout(Duration::from_secs(2), new.read(&mut buf)).await.expect("reset at once");
        assert_eq!(got.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset, "RST on accept");
        assert_eq!(p.counts().resets, 2);
        p.set_mode(FaultMode::Pass);
        let mut fresh = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"b").await.unwrap(), b"b");
    }

    #[tokio::test]
    async fn drop_replies_delivers_the_request_and_loses_the_reply() {
        let (p, seen) = proxy().await;
        let mut open = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut open, b"ab").await.unwrap();
        p.set_mode(FaultMode::DropReplies);
        open.write_all(b"cde").await.unwrap();
        let mut buf = [0u8; 8];
        let n = timeout(Duration::from_secs(2), open.read(&mut buf)).await.expect("closed at once");
        assert_eq!(n.unwrap_or(0), 0, "the connection is closed instead of the reply");
        assert_eq!(seen.load(Ordering::Relaxed), 5, "the request reached the server");
        let mut new = TcpStream::connect(p.addr()).await.unwrap();
        new.write_all(b"fg").await.unwrap();
        let n = timeout(Duration::from_secs(2), new.read(&mut buf)).await.expect("closed at once");
        assert_eq!(n.unwrap_or(0), 0);
        assert_eq!(seen.load(Ordering::Relaxed), 7);
        let c = p.counts();
        assert_eq!((c.replies_dropped, c.bytes_up, c.bytes_down), (2, 7, 2));
    }

    #[tokio::test]
    async fn an_unreachable_target_resets_the_client_and_dropping_the_proxy_closes_all() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let p = FaultProxy::start(free.to_string()).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        let mut buf = [0u8; 1];
        let r = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("answered at once");
        assert!(r.is_err() || r.unwrap() == 0);
        let (p, _) = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut s, b"a").await.unwrap();
        drop(p);
        let r = timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("closed on drop");
        assert!(r.is_err() || r.unwrap() == 0);
    }
}

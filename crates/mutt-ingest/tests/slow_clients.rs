//! Slow clients cannot starve the ingest listener: 1,000 connections sending their headers a
//! byte at a time do not delay a normal client's ingest beyond 100 ms, and with a short
//! header-read timeout they are all cut off. Real Redis queue; the listener runs as muttd
//! runs it (`mutt_service::serve_with` with the default limits).

use mutt_core::Secret;
use mutt_ingest::IngestConfig;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Queue, QueueId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const KEY: &str = "slow-client-test-key";
const SLOW_CLIENTS: usize = 1_000;

/// Each connection costs this process two descriptors (client and server side); raises the soft
/// limit to the hard one with prlimit(1) when needed (no unsafe code here) and returns how many
/// slow clients fit.
fn slow_clients_that_fit() -> usize {
    let soft = |_: ()| -> u64 {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(1024)
    };
    let need = (2 * SLOW_CLIENTS + 200) as u64;
    if soft(()) < need {
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("prlimit").args(["--pid", &pid, "--nofile=unlimited:"]).status();
        let _ = std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={need}:")]).status();
    }
    let have = soft(());
    let fit = SLOW_CLIENTS.min(have.saturating_sub(200) as usize / 2);
    if fit < SLOW_CLIENTS {
        eprintln!("open-file limit {have}: testing with {fit} slow clients instead of {SLOW_CLIENTS}");
    }
    fit
}

async fn start(limits: mutt_service::HttpLimits) -> (SocketAddr, RedisQueue, tokio_util::sync::DropGuard) {
    let redis = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    let queue = RedisQueue::connect(&redis).await.unwrap();
    let config = IngestConfig { api_keys: vec![Secret::new(KEY).into()], rate_limit: None, ..IngestConfig::default() };
    let router =
        mutt_ingest::router(Arc::new(queue.clone()), Arc::new(queue.clone()), config, mutt_service::Metrics::new())
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(mutt_service::serve_with(listener, router, stop.clone(), limits));
    (addr, queue, stop.drop_guard())
}

/// Opens `n` connections (all accepted before it returns: each sends its first byte).
async fn connect_all(addr: SocketAddr, n: usize) -> Vec<Option<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&HEAD[..1]).await.unwrap();
        conns.push(Some(c));
    }
    conns
}

const HEAD: &[u8] = b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-KEY: slow-client-test-key\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";

/// Keeps sending one more byte of the request head on each connection every 50 ms until
/// `stop` or until the server has closed them all; returns how many it closed.
async fn trickle(mut conns: Vec<Option<TcpStream>>, stop: CancellationToken) -> usize {
    let mut pos = 1;
    while !stop.is_cancelled() && conns.iter().any(Option::is_some) {
        let byte = [HEAD[pos % HEAD.len()]];
        for slot in conns.iter_mut() {
            if let Some(c) = slot
                && c.write_all(&byte).await.is_err()
            {
                *slot = None;
            }
        }
        pos += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conns.iter().filter(|c| c.is_none()).count()
}

/// The two tests each hold 1,000 connections; one at a time, so neither measures the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn event() -> String {
    serde_json::json!({"hostname": "h", "message": "normal client", "timestamp": "2025-11-08T12:00:00Z"}).to_string()
}

/// One ingest on a fresh connection, as a client without a pool would send it; its time.
async fn timed_ingest(http: &reqwest::Client, addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let resp = http
        .post(format!("http://{addr}/ingest"))
        .header("content-type", "application/json")
        .header("x-api-key", KEY)
        .body(event())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_byte_at_a_time_clients_do_not_delay_a_normal_ingest() {
    let _serial = SERIAL.lock().await;
    let n = slow_clients_that_fit();
    let (addr, queue, _stop) = start(mutt_service::HttpLimits::default()).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let baseline = timed_ingest(&http, addr).await;
    let conns = connect_all(addr, n).await;
    let stop = CancellationToken::new();
    let slow = tokio::spawn(trickle(conns, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        times.push(timed_ingest(&http, addr).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let cut_off = slow.await.unwrap();
    times.sort();
    eprintln!(
        "baseline {baseline:?}; beside {n} slow clients: median {:?}, p95 {:?}, max {:?}",
        times[10], times[18], times[19]
    );
    assert_eq!(cut_off, 0, "the default header timeout (30 s) must not cut the slow clients off yet");
    // Starvation would slow every request; one outlier on a shared, loaded machine is not it.
    assert!(times[18] < Duration::from_millis(100), "ingest p95 {:?} beside {n} slow clients: {times:?}", times[18]);
    assert_eq!(queue.depth(QueueId::Ingest).await.unwrap(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_read_timeout_cuts_the_slow_clients_off() {
    let _serial = SERIAL.lock().await;
    let n = slow_clients_that_fit();
    let limits =
        mutt_service::HttpLimits { header_read_timeout: Duration::from_secs(1), ..mutt_service::HttpLimits::default() };
    let (addr, _queue, _stop) = start(limits).await;
    let conns = connect_all(addr, n).await;
    let stop = CancellationToken::new();
    let slow = tokio::spawn(trickle(conns, stop.clone()));
    // The head takes ~8 s at a byte per 50 ms; a 1 s timeout closes every connection well
    // before (the task ends when all are closed; 20 s bounds the test).
    let cut_off = match tokio::time::timeout(Duration::from_secs(20), slow).await {
        Ok(r) => r.unwrap(),
        Err(_) => {
            stop.cancel();
            panic!("not every slow connection was closed within 20 s");
        }
    };
    assert_eq!(cut_off, n, "every slow connection is closed by the header timeout");
    let http = reqwest::Client::new();
    assert!(timed_ingest(&http, addr).await < Duration::from_secs(1));
}

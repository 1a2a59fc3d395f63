//! The native syslog listeners, in process on both backends: real `logger` (util-linux) over
//! UDP and TCP in RFC 3164 and 5424, framing errors, backpressure, and proptest robustness of
//! the framing decoder and the parser.

use bytes::BytesMut;
use mutt_ingest::syslog::{self, ListenerConfig, Protocol, SyslogMetrics, framing::SyslogCodec};
use mutt_ingest::{Ingest, IngestConfig, IngestMetrics};
use mutt_queue::{ConsumerConfig, QueueId, Settlement, WorkerRole};
use mutt_testapp::{BackendKind, Site, TestBackend};
use proptest::prelude::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

struct Rig {
    _site: Site,
    b: TestBackend,
    metrics: mutt_service::Metrics,
    stop: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn rig(kind: BackendKind, config: IngestConfig) -> (Rig, Ingest, SyslogMetrics) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let metrics = mutt_service::Metrics::new();
    let ingest = Ingest::new(b.queue.clone(), b.coordination.clone(), config, IngestMetrics::register(&metrics));
    let sm = SyslogMetrics::register(&metrics);
    (Rig { _site: site, b, metrics, stop: CancellationToken::new() }, ingest, sm)
}

fn listener(protocol: Protocol) -> ListenerConfig {
    ListenerConfig {
        max_frame_bytes: 8192,
        recv_buffer_bytes: Some(1 << 20),
        ..ListenerConfig::new("127.0.0.1:0".parse().unwrap(), protocol)
    }
}

async fn start(r: &Rig, ingest: &Ingest, sm: &SyslogMetrics, config: ListenerConfig) -> SocketAddr {
    syslog::spawn(ingest.clone(), sm.clone(), config, r.stop.clone()).await.expect("listener").local_addr
}

fn unlimited() -> IngestConfig {
    IngestConfig { rate_limit: None, ..IngestConfig::default() }
}

/// Leases what is queued (settling it when `ack`), waiting until `n` events are there.
async fn take(b: &TestBackend, n: usize, ack: bool) -> Vec<Value> {
    let mut c =
        b.queue.consumer(ConsumerConfig::new(WorkerRole::Alerter, mutt_core::PodName::random("t"))).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Without settling, a second lease hands the first back and gets it again: wait for all
    // `n` before the first lease (the listener pushes the messages one by one).
    while !ack && b.queue.depth(QueueId::Ingest).await.unwrap() < n as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while out.len() < n && tokio::time::Instant::now() < deadline {
        if let Some(lease) = c.lease(100, Duration::from_millis(200)).await.unwrap() {
            out.extend(lease.messages.iter().map(|m| serde_json::from_slice::<Value>(m).unwrap()));
            if ack {
                c.settle(&lease, &Settlement::new()).await.unwrap();
            }
        }
    }
    c.release().await.unwrap();
    c.shutdown().await.unwrap();
    out
}

fn logger(addr: SocketAddr, args: &[&str], message: &str) {
    let port = addr.port().to_string();
    let status = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &port])
        .args(args)
        .arg(message)
        .status()
        .expect("logger (util-linux) runs");
    assert!(status.success(), "logger {args:?} failed");
}

mutt_testapp::both_backends!(
    logger_over_udp_in_3164_and_5424,
    logger_over_tcp_lines_and_octet_counting,
    a_bad_frame_closes_only_its_connection,
    udp_drops_and_counts_when_the_queue_refuses,
    tcp_stops_reading_while_the_queue_refuses,
    connections_over_the_limit_are_closed_at_once_and_counted,
    idle_connections_are_closed,
    native_listeners_are_not_subject_to_the_http_rate_limit,
    udp_over_max_messages_per_second_drops_and_counts,
    tcp_over_max_messages_per_second_slows_down_and_loses_nothing,
);

async fn logger_over_udp_in_3164_and_5424(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let addr = start(&r, &ingest, &sm, listener(Protocol::Udp)).await;
    logger(addr, &["-d", "--rfc3164", "-p", "local3.err", "-t", "bsdapp"], "LINK-DOWN Gi0/1 3164");
    logger(
        addr,
        &[
            "-d",
            "--rfc5424",
            "-p",
            "daemon.warning",
            "-t",
            "app5424",
            "--msgid",
            "ID47",
            "--sd-id",
            "origin@32473",
            "--sd-param",
            "ip=\"10.1.2.3\"",
        ],
        "disk almost full 5424",
    );
    let q = take(&r.b, 2, false).await;
    let bsd = q.iter().find(|e| e["message"] == "LINK-DOWN Gi0/1 3164").unwrap_or_else(|| panic!("3164 queued: {q:?}"));
    assert_eq!(bsd["syslog_severity"], 3, "{bsd}");
    assert_eq!(bsd["syslog_severity_name"], "err");
    assert_eq!(bsd["facility"], "local3");
    assert_eq!(bsd["app_name"], "bsdapp");
    assert_eq!(bsd["source"], "syslog");
    assert_eq!(bsd["source_ip"], "127.0.0.1");
    assert_eq!(bsd["hostname_source"], "message");
    assert!(bsd["_event_id"].is_string());
    let rfc =
        q.iter().find(|e| e["message"] == "disk almost full 5424").unwrap_or_else(|| panic!("5424 queued: {q:?}"));
    assert_eq!(rfc["syslog_severity"], 4, "{rfc}");
    assert_eq!(rfc["facility"], "daemon");
    assert_eq!(rfc["app_name"], "app5424");
    assert_eq!(rfc["msg_id"], "ID47");
    assert!(rfc["proc_id"].is_string() || rfc.get("proc_id").is_none());
    assert_eq!(rfc["structured_data"]["origin@32473"]["ip"], "10.1.2.3", "{rfc}");
    let ts = rfc["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'), "{ts}");
    let text = r.metrics.encode_text();
    assert!(text.contains("mutt_ingest_syslog_messages_total{listener=\"syslog/udp/127.0.0.1:0\"} 2"), "{text}");
}

async fn logger_over_tcp_lines_and_octet_counting(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let addr = start(&r, &ingest, &sm, listener(Protocol::Tcp)).await;
    logger(addr, &["-T", "--rfc3164", "-p", "user.crit"], "tcp line 3164");
    logger(addr, &["-T", "--rfc5424", "--octet-count", "-p", "user.notice"], "tcp counted 5424");
    let q = take(&r.b, 2, false).await;
    let line = q.iter().find(|e| e["message"] == "tcp line 3164").unwrap_or_else(|| panic!("{q:?}"));
    assert_eq!(line["syslog_severity"], 2);
    let counted = q.iter().find(|e| e["message"] == "tcp counted 5424").unwrap_or_else(|| panic!("{q:?}"));
    assert_eq!(counted["syslog_severity"], 5);
    assert_eq!(counted["syslog_severity_name"], "notice");
}

async fn a_bad_frame_closes_only_its_connection(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let mut cfg = listener(Protocol::Tcp);
    cfg.max_frame_bytes = 100;
    let addr = start(&r, &ingest, &sm, cfg).await;
    let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
    bad.write_all(b"99999 <13>oversize\n").await.unwrap();
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"12x <13>garbage\n").await.unwrap();
    good.write_all(b"<13>Dec  1 10:00:00 host1 app: still served\n").await.unwrap();
    good.flush().await.unwrap();
    let q = take(&r.b, 1, false).await;
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["message"], "still served");
    assert_eq!(q[0]["hostname"], "host1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = r.metrics.encode_text();
    assert!(text.contains("reason=\"oversize\"") && text.contains("reason=\"bad_frame\""), "{text}");
}

async fn udp_drops_and_counts_when_the_queue_refuses(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, IngestConfig { max_queue_size: 0, ..unlimited() }).await;
    let addr = start(&r, &ingest, &sm, listener(Protocol::Udp)).await;
    logger(addr, &["-d", "--rfc5424"], "refused");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = r.metrics.encode_text();
        if text.contains("mutt_ingest_dropped_total{listener=\"syslog/udp/127.0.0.1:0\",reason=\"queue_full\"} 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "drop not counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.b.queue.depth(QueueId::Ingest).await.unwrap(), 0);
}

async fn tcp_stops_reading_while_the_queue_refuses(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, IngestConfig { max_queue_size: 1, ..unlimited() }).await;
    let addr = start(&r, &ingest, &sm, listener(Protocol::Tcp)).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"<11>first\n").await.unwrap();
    let first = take(&r.b, 1, false).await;
    assert_eq!(first.len(), 1);
    // The depth the first push returned stands in for a read for 5 ms (pusher::DEPTH_FRESH) and
    // may have been read while `take` held the first leased (0: below the limit): past that
    // window the check reads the queue again, which is what this test is about.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(b"<11>second\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.b.queue.depth(QueueId::Ingest).await.unwrap(), 1, "second held back at the limit");
    let text = r.metrics.encode_text();
    assert!(!text.contains("mutt_ingest_dropped_total{"), "TCP never drops: {text}");
    // Room again: the held submission is retried and queued.
    let mut all = take(&r.b, 2, true).await;
    all.sort_by_key(|e| e["message"].as_str().map(str::to_owned));
    let messages: Vec<&str> = all.iter().filter_map(|e| e["message"].as_str()).collect();
    assert_eq!(messages, ["first", "second"], "{all:?}");
}

/// Whether the peer closed `conn` (EOF or reset) within `within`.
async fn closed_by_peer(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, conn.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric(r: &Rig, prefix: &str) -> u64 {
    let text = r.metrics.encode_text();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn connections_over_the_limit_are_closed_at_once_and_counted(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let addr = start(&r, &ingest, &sm, ListenerConfig { max_connections: 2, ..listener(Protocol::Tcp) }).await;
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Both are being served (their messages queued) before the third comes.
    first.write_all(b"<13>one\n").await.unwrap();
    second.write_all(b"<13>two\n").await.unwrap();
    assert_eq!(take(&r.b, 2, true).await.len(), 2);
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_peer(&mut third, Duration::from_secs(2)).await, "the third connection is closed at once");
    let dropped = r#"mutt_ingest_dropped_total{listener="syslog/tcp/127.0.0.1:0",reason="connection_limit"}"#;
    assert_eq!(metric(&r, dropped), 1);
    assert!(!closed_by_peer(&mut first, Duration::from_millis(200)).await, "the others stay open");
    // A slot freed by a close serves the next connection.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    fourth.write_all(b"<13>four\n").await.unwrap();
    let q = take(&r.b, 1, true).await;
    assert_eq!(q.first().map(|e| e["message"].clone()), Some(Value::from("four")), "{q:?}");
    assert_eq!(metric(&r, dropped), 1);
}

async fn idle_connections_are_closed(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let cfg = ListenerConfig { idle_timeout: Duration::from_millis(500), ..listener(Protocol::Tcp) };
    let addr = start(&r, &ingest, &sm, cfg).await;
    let mut talker = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    for n in 0..4 {
        talker.write_all(format!("<13>tick {n}\n").as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(closed_by_peer(&mut silent, Duration::from_secs(2)).await, "the silent connection is closed");
    assert!(!closed_by_peer(&mut talker, Duration::from_millis(100)).await, "the talking one is not");
    assert_eq!(take(&r.b, 4, true).await.len(), 4);
    assert!(closed_by_peer(&mut talker, Duration::from_secs(2)).await, "once silent, it is closed too");
}

async fn native_listeners_are_not_subject_to_the_http_rate_limit(kind: BackendKind) {
    // One HTTP request a minute: the native listeners do not draw on that budget.
    let limit = mutt_ingest::RateLimit { limit: 1, window: Duration::from_secs(60) };
    let (r, ingest, sm) = rig(kind, IngestConfig { rate_limit: Some(limit), ..IngestConfig::default() }).await;
    let udp = start(&r, &ingest, &sm, listener(Protocol::Udp)).await;
    let tcp = start(&r, &ingest, &sm, listener(Protocol::Tcp)).await;
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for n in 0..20 {
        sender.send_to(format!("<13>udp {n}").as_bytes(), udp).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut conn = tokio::net::TcpStream::connect(tcp).await.unwrap();
    for n in 0..20 {
        conn.write_all(format!("<13>tcp {n}\n").as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(take(&r.b, 40, true).await.len(), 40);
    assert_eq!(metric(&r, "mutt_ingest_rate_limit_hits_total"), 0);
    assert!(ingest.admit("http").await.is_ok(), "the HTTP budget is untouched");
}

async fn udp_over_max_messages_per_second_drops_and_counts(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let addr = start(&r, &ingest, &sm, ListenerConfig { max_messages_per_second: 10, ..listener(Protocol::Udp) }).await;
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for n in 0..100 {
        sender.send_to(format!("<13>burst {n}").as_bytes(), addr).await.unwrap();
    }
    let dropped = r#"mutt_ingest_dropped_total{listener="syslog/udp/127.0.0.1:0",reason="rate_limit"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let queued = r.b.queue.depth(QueueId::Ingest).await.unwrap();
        if queued + metric(&r, dropped) == 100 {
            // A second's budget (10) at once, a few more refilled while the burst was read.
            assert!((10..=20).contains(&queued), "queued {queued}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "queued {queued}, dropped {}", metric(&r, dropped));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tcp_over_max_messages_per_second_slows_down_and_loses_nothing(kind: BackendKind) {
    let (r, ingest, sm) = rig(kind, unlimited()).await;
    let addr =
        start(&r, &ingest, &sm, ListenerConfig { max_messages_per_second: 100, ..listener(Protocol::Tcp) }).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let payload: String = (0..300).map(|n| format!("<13>paced {n}\n")).collect();
    conn.write_all(payload.as_bytes()).await.unwrap();
    let q = take(&r.b, 300, true).await;
    let took = started.elapsed();
    assert_eq!(q.len(), 300);
    // A second's budget at once, the other 200 at 100/s.
    assert!(took >= Duration::from_millis(1800), "300 messages at 100/s took {took:?}");
    assert_eq!(metric(&r, "mutt_ingest_dropped_total{"), 0, "TCP never drops");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn framing_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), max in 1usize..300) {
        let mut codec = SyslogCodec::new(max);
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..data.len() + 2 {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => prop_assert!(frame.len() <= max),
                Ok(None) | Err(_) => break,
            }
        }
        let _ = codec.decode_eof(&mut buf);
    }

    #[test]
    fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let parsed = syslog::parse::to_event(&data, "192.0.2.1".parse().unwrap(), chrono::Utc::now());
        prop_assert!(parsed.event.get("hostname").and_then(Value::as_str).is_some_and(|h| !h.is_empty()));
        prop_assert!(parsed.event.get("timestamp").and_then(Value::as_str).is_some());
    }

    #[test]
    fn syslog_like_text_never_panics(s in "<[0-9]{1,3}>[0-9]? ?[ -~]{0,200}") {
        let _ = syslog::parse::to_event(s.as_bytes(), "192.0.2.1".parse().unwrap(), chrono::Utc::now());
    }
}

/// The benchmark (not in the normal run; figures only mean something in release):
/// `cargo test --release -p mutt-ingest --test syslog -- --ignored --nocapture bench_`.
/// UDP offered at 50,000 messages/s for 3 s: accepted and dropped counts; TCP: 100,000
/// messages over one connection, messages/s until all are queued. Embedded backend, no rate
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_udp_at_50k_per_second_and_tcp_throughput() {
    let (r, ingest, sm) = rig(BackendKind::Embedded, IngestConfig { max_queue_size: u64::MAX, ..unlimited() }).await;
    let udp =
        start(&r, &ingest, &sm, ListenerConfig { recv_buffer_bytes: Some(8 << 20), ..listener(Protocol::Udp) }).await;
    let line = b"<134>Dec  1 10:00:00 bench-host app[42]: LINK-DOWN interface Gi0/1 changed state to down";
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (rate, secs) = (50_000u64, 3u64);
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    // 500 datagrams every 10 ms.
    for tick in 0..(secs * 100) {
        for _ in 0..rate / 100 {
            if sender.send_to(line, udp).await.is_ok() {
                sent += 1;
            }
        }
        tokio::time::sleep_until(started + Duration::from_millis((tick + 1) * 10)).await;
    }
    let offered_for = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = r.b.queue.depth(QueueId::Ingest).await.unwrap();
    let text = r.metrics.encode_text();
    let dropped: u64 = text
        .lines()
        .filter(|l| l.starts_with("mutt_ingest_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum();
    println!(
        "syslog UDP: offered {sent} in {offered_for:.2} s ({:.0}/s): accepted {accepted}, dropped by MUTT {dropped}, lost before MUTT (socket buffer) {}",
        sent as f64 / offered_for,
        sent.saturating_sub(accepted + dropped)
    );

    let tcp = start(&r, &ingest, &sm, listener(Protocol::Tcp)).await;
    let n = 100_000u64;
    let mut payload = Vec::with_capacity(line.len() * n as usize + n as usize);
    for _ in 0..n {
        payload.extend_from_slice(line);
        payload.push(b'\n');
    }
    let before = accepted;
    let started = tokio::time::Instant::now();
    let mut conn = tokio::net::TcpStream::connect(tcp).await.unwrap();
    conn.write_all(&payload).await.unwrap();
    conn.flush().await.unwrap();
    while r.b.queue.depth(QueueId::Ingest).await.unwrap() < before + n {
        assert!(started.elapsed() < Duration::from_secs(120), "TCP messages not all queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    println!("syslog TCP: {n} messages over one connection queued in {took:.2} s ({:.0}/s)", n as f64 / took);
}

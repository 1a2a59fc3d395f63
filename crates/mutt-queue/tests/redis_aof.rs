//! What the queue protocol writes to Redis's append-only file: a lease moves messages without
//! writing their bytes again. With `appendfsync everysec` the AOF is fsynced once a second; on
//! a disk it shares with PostgreSQL that fsync holds up the audit commits, so its size per
//! event shows in the pipeline's p99 (docs/benchmarks.md).

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use mutt_testkit::RedisServer;
use std::time::Duration;

/// Every file of the AOF (base, increments, manifest) as bytes.
fn aof_bytes(server: &RedisServer) -> Vec<u8> {
    let mut out = Vec::new();
    let dir = server.dir().join("appendonlydir");
    for entry in std::fs::read_dir(&dir).expect("the AOF directory exists") {
        out.extend(std::fs::read(entry.expect("a directory entry").path()).expect("an AOF file is readable"));
    }
    out
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Single messages (the one-call lease script) and the forwarder's side (the same script on the
/// alert queue): each message's bytes reach the AOF once, when it is pushed; leasing and
/// settling it add only commands that name keys.
#[tokio::test]
async fn leases_write_what_they_move_to_the_aof_once() {
    let server = RedisServer::start(true).expect("start a private redis-server with AOF");
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = RedisQueue::connect(&RedisConfig::single(server.url(), keys)).await.expect("connect");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let events: Vec<Vec<u8>> =
        (0..6).map(|i| format!(r#"{{"message":"event-{i}-{run}","hostname":"sw1"}}"#).into_bytes()).collect();
    q.push(QueueId::Ingest, &events).await.expect("push");

    let pod = mutt_core::PodName::parse("aof-alerter").expect("pod name");
    let mut alerter = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod)).await.expect("consumer");
    let mut leased = 0;
    let mut alerts = Vec::new();
    // Two leases of at most 4: the script's path, then the same after a BLMOVE took the first.
    while leased < events.len() {
        let lease = alerter.lease(4, Duration::from_millis(500)).await.expect("lease").expect("leased");
        let mut s = Settlement::new();
        for m in &lease.messages {
            let alert = format!("alert-of-{}", String::from_utf8_lossy(m));
            s.emit(alert.clone());
            alerts.push(alert);
        }
        leased += lease.len();
        alerter.settle(&lease, &s).await.expect("settle");
    }
    let pod = mutt_core::PodName::parse("aof-forwarder").expect("pod name");
    let mut forwarder = q.consumer(ConsumerConfig::new(WorkerRole::Forwarder, pod)).await.expect("consumer");
    let mut forwarded = 0;
    while forwarded < alerts.len() {
        let lease = forwarder.lease(4, Duration::from_millis(500)).await.expect("lease").expect("leased");
        forwarded += lease.len();
        forwarder.settle(&lease, &Settlement::new()).await.expect("settle");
    }

    // Written in the event loop before the replies went out (appendfsync everysec).
    let aof = aof_bytes(&server);
    for i in 0..events.len() {
        let marker = format!("event-{i}-{run}");
        // Once in the ingest push, once inside the alert pushed for it.
        assert_eq!(occurrences(&aof, marker.as_bytes()), 2, "{marker} in the AOF");
        assert_eq!(occurrences(&aof, format!("alert-of-{{\"message\":\"{marker}").as_bytes()), 1);
    }
}

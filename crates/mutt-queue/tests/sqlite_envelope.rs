//! The embedded queue with batch envelopes (`embedded.batch_envelope`): the whole conformance
//! suite, plus what only envelopes do (rows in the Redis format, depths in events, leases that
//! stop at envelope boundaries, a crashed worker's envelope coming back as its events).

#[macro_use]
mod suite;

use mutt_core::PodName;
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{Backend, ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use mutt_sqlite::{Database, DbOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn database(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("mutt.db"), DbOptions::default()).expect("open the data file")
}

async fn open(dir: &tempfile::TempDir) -> SqliteQueue {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SqliteQueue::open(database(dir), KeySpace::default()).await {
            Ok(q) => return q.with_batch_envelope(100),
            // The previous owner's last handles may still be dropping.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "still locked");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

async fn backend() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Arc::new(open(&dir).await), dir)
}

conformance!(tests);

fn event(i: usize) -> Vec<u8> {
    format!(r#"{{"seq":{i},"hostname":"sw1","message":"m{i}"}}"#).into_bytes()
}

fn events(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(event).collect()
}

/// The rows of a queue in line order: (events, body).
async fn rows(q: &SqliteQueue, queue: &str) -> Vec<(i64, Vec<u8>)> {
    let queue = queue.to_owned();
    q.database()
        .read(move |c| {
            let mut s = c.prepare("SELECT events, body FROM queue_message WHERE queue = ?1 ORDER BY seq, id")?;
            s.query_map([queue], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ingest_push_is_one_row_per_hundred_events_in_the_redis_format() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), KeySpace::default());
    let q = open(&dir).await;
    assert_eq!(q.push_ingest(&events(0..250), chrono::Utc::now()).await.unwrap(), 250);
    let rows = rows(&q, &keys.ingest_queue).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![100, 100, 50]);
    let text = String::from_utf8(rows[0].1.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"_mutt_batch":100}"#);
    assert_eq!(lines[1], std::str::from_utf8(&event(0)).unwrap());
    assert_eq!(lines.len(), 101);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 250, "depth counts events");
    assert_eq!(q.status().await.unwrap().queues[0].depth, 250);
    // A view from another process (`muttd status`) counts events too.
    let view = SqliteQueue::attach(database(&dir), KeySpace::default()).await.unwrap();
    assert_eq!(view.depth(QueueId::Ingest).await.unwrap(), 250);
    // Replays and remediation (`push`) stay one row per event.
    q.push(QueueId::Ingest, &events(250..253)).await.unwrap();
    assert_eq!(crate::rows(&q, &keys.ingest_queue).await.len(), 6);
}

#[tokio::test]
async fn leases_stop_at_envelope_boundaries_and_take_at_least_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir).await;
    q.push_ingest(&events(0..100), chrono::Utc::now()).await.unwrap();
    q.push_ingest(&events(100..150), chrono::Utc::now()).await.unwrap();
    q.push(QueueId::Ingest, &events(150..151)).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("a"))).await.unwrap();
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    // 40 is smaller than the first envelope: it comes whole rather than stuck; 120 takes the
    // next envelope (50) and the plain row after it, and no more.
    for max in [40, 120] {
        let lease = c.lease(max, Duration::from_millis(100)).await.unwrap().unwrap();
        sizes.push(lease.len());
        got.extend(lease.messages.clone());
        c.settle(&lease, &Settlement::new()).await.unwrap();
        assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 151 - got.len() as u64);
    }
    assert_eq!(sizes, vec![100, 51]);
    assert_eq!(got, events(0..151), "every event once, in order");
    c.shutdown().await.unwrap();
}

#[tokio::test]
async fn emitted_alerts_travel_as_one_row_and_put_backs_keep_their_place() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), KeySpace::default());
    let q = open(&dir).await;
    q.push_ingest(&events(0..10), chrono::Utc::now()).await.unwrap();
    let mut a = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("a"))).await.unwrap();
    let lease = a.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    let mut s = Settlement::new();
    for m in &lease.messages {
        s.emit(m.clone());
    }
    a.settle(&lease, &s).await.unwrap();
    assert_eq!(rows(&q, &keys.alert_queue).await.len(), 1);
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 10);
    let mut f = q.consumer(ConsumerConfig::new(WorkerRole::Forwarder, PodName::random("f"))).await.unwrap();
    let alerts = f.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(alerts.messages, events(0..10));
    // Rate limited: the rest goes back to the front, still counted.
    let mut s = Settlement::new();
    for m in &alerts.messages[4..] {
        s.put_back(m);
    }
    f.settle(&alerts, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 6);
    let again = f.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(again.messages, events(4..10));
    f.settle(&again, &Settlement::new()).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 0);
    a.shutdown().await.unwrap();
    f.shutdown().await.unwrap();
}

/// A process that dies holding envelopes gets their events back one by one at the next open,
/// in order and counted as crashes each, so that a poison event is dead-lettered alone.
#[tokio::test]
async fn a_crashed_owners_envelopes_come_back_as_their_events_and_only_the_poison_one_is_dead_lettered() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), KeySpace::default());
    {
        let q = open(&dir).await;
        q.push_ingest(&events(0..5), chrono::Utc::now()).await.unwrap();
    }
    let max_crashes = mutt_queue::ConsumerConfig::DEFAULT_MAX_CRASHES as usize;
    // Each round the process "dies" holding what it leased: no settle, no shutdown. In the
    // second round it settles the good events first and leases event 2 again (a put-back is a
    // new row: its crash count starts again), so from then on only event 2 keeps dying.
    for round in 0..=max_crashes + 1 {
        let q = open(&dir).await;
        assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), if round < 2 { 5 } else { 1 }, "round {round}");
        let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("a"))).await.unwrap();
        let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
        if round == 0 {
            assert_eq!(lease.messages, events(0..5), "the whole envelope");
            assert_eq!(rows(&q, &keys.ingest_queue).await.len(), 1);
        } else if round == 1 {
            assert_eq!(lease.messages, events(0..5), "split, in order");
            assert_eq!(rows(&q, &keys.ingest_queue).await.len(), 5, "one row per event after the crash");
            let mut s = Settlement::new();
            s.put_back(&event(2));
            c.settle(&lease, &s).await.unwrap();
            let _ = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
        } else {
            assert_eq!(lease.messages, vec![event(2)]);
        }
    }
    let q = open(&dir).await;
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    let dead = rows(&q, &keys.alerter_dlq).await;
    assert_eq!(dead.len(), 1, "only the poison event");
    let v: serde_json::Value = serde_json::from_slice(&dead[0].1).unwrap();
    assert_eq!(v["_dlq_reason"], "worker_crashed");
    assert_eq!(v["raw"].as_str().unwrap().as_bytes(), event(2).as_slice());
}

#[tokio::test]
async fn a_handed_back_envelope_stays_whole_and_counted() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), KeySpace::default());
    let q = open(&dir).await;
    q.push_ingest(&events(0..30), chrono::Utc::now()).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("a"))).await.unwrap();
    let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    let leased = q.status().await.unwrap().processing_lists;
    assert_eq!(leased.iter().map(|p| p.depth).sum::<u64>(), 30, "leased counted in events: {leased:?}");
    assert_eq!(c.release().await.unwrap(), 30);
    drop(lease);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 30);
    assert_eq!(rows(&q, &keys.ingest_queue).await.len(), 1, "a clean hand-back keeps the envelope");
    c.shutdown().await.unwrap();
}

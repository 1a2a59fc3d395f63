//! Conformance tests of the queue interface against the embedded backend (a fresh SQLite file
//! per test), plus what only the embedded backend does: the owner lock, and taking back at
//! open what a crashed previous owner left leased.

mod suite;

use mutt_core::PodName;
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use mutt_sqlite::{Database, DbOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn database(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("mutt.db"), DbOptions::default()).expect("open the data file")
}

async fn queue() -> (Arc<dyn Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(database(&dir), KeySpace::default()).await.expect("open the embedded queue");
    (Arc::new(q), dir)
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (q, _dir) = queue().await;
                suite::$name(q).await;
            }
        )*
    };
}

conformance!(
    fifo_order,
    batch_lease_and_ack,
    settle_emits_to_output_and_is_idempotent,
    retry_counts_and_dead_letters,
    delayed_retry_waits_until_due,
    dead_letter_records_reason,
    put_back_keeps_message_unchanged_at_front,
    janitor_recovers_dead_worker,
    janitor_leaves_live_worker_alone,
    shutdown_hands_back_lease,
    restart_with_same_pod_takes_back_own_lease,
    lease_waits_for_first_message,
    status_reports_depths_and_workers,
    rate_limit_is_a_sliding_window,
    message_that_keeps_killing_workers_is_dead_lettered,
    unhandled_counter_fires_once_at_the_threshold,
    rate_limit_grants_part_of_a_batch,
    circuit_breaker_opens_half_opens_with_one_probe_and_closes,
    delivered_ids_are_remembered,
    dynamic_configuration_is_set_and_read_live,
);

/// Opens the file as owner, retrying while the previous owner's last handles are dropped.
async fn reopen(dir: &tempfile::TempDir) -> SqliteQueue {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SqliteQueue::open(database(dir), KeySpace::default()).await {
            Ok(q) => return q,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "still locked");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[tokio::test]
async fn a_second_owner_is_refused_with_a_clear_error() {
    let (_q, dir) = queue().await;
    let err = SqliteQueue::open(database(&dir), KeySpace::default()).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("another muttd process") && text.contains(&std::process::id().to_string()), "{text}");
    // A read-only view (`muttd status`) is fine while the owner runs.
    let view = SqliteQueue::attach(database(&dir), KeySpace::default()).await.unwrap();
    assert_eq!(view.depth(QueueId::Ingest).await.unwrap(), 0);
}

#[tokio::test]
async fn reopening_takes_back_what_a_crashed_owner_left_leased() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SqliteQueue::open(database(&dir), KeySpace::default()).await.unwrap();
        let msgs: Vec<Vec<u8>> = (0..10).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        q.push(QueueId::Ingest, &msgs).await.unwrap();
        let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("alerter"))).await.unwrap();
        let lease = c.lease(4, Duration::from_millis(100)).await.unwrap().unwrap();
        assert_eq!(lease.len(), 4);
        // The process "dies": no settle, no shutdown; its heartbeat would still look fresh.
    }
    let q = reopen(&dir).await;
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 10, "every message is ready again at once");
    let status = q.status().await.unwrap();
    assert!(status.processing_lists.is_empty(), "{status:?}");
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("alerter"))).await.unwrap();
    let lease = c.lease(100, Duration::from_millis(100)).await.unwrap().unwrap();
    assert_eq!(lease.messages[0], b"{\"n\":0}".to_vec(), "in their original order");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

#[tokio::test]
async fn attaching_to_a_file_without_queue_tables_creates_them() {
    // As after `muttd rules import` on a fresh data directory, before the first `muttd run`.
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    db.write(|c| c.execute_batch("CREATE TABLE alert_rules (id INTEGER PRIMARY KEY)")).await.unwrap();
    let view = SqliteQueue::attach(db, KeySpace::default()).await.unwrap();
    assert_eq!(view.set_config_value("moog_rate_limit", "100").await.unwrap(), None);
    assert_eq!(view.depth(QueueId::Alert).await.unwrap(), 0);
    assert!(
        view.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("a"))).await.is_err(),
        "not the owner"
    );
}

//! Conformance tests of the queue interface against the embedded backend (a fresh SQLite file
//! per test), plus what only the embedded backend does: the owner lock, and taking back at
//! open what a crashed previous owner left leased.

#[macro_use]
mod suite;

use mutt_core::PodName;
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{Backend, ConsumerConfig, Coordination, Queue, QueueId, Settlement, WorkerRole};
use mutt_sqlite::{Database, DbOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn database(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("mutt.db"), DbOptions::default()).expect("open the data file")
}

async fn backend() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(database(&dir), KeySpace::default()).await.expect("open the embedded queue");
    (Arc::new(q), dir)
}

conformance!(tests);

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
    let (_q, dir) = backend().await;
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

#[tokio::test]
async fn a_full_disk_refuses_whole_pushes_and_loses_nothing_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let q = SqliteQueue::open(db.clone(), KeySpace::default()).await.unwrap();
    let pages: i64 = db.read(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0))).await.unwrap();
    // SQLITE_FULL from here on, as on a full disk (the limit applies to the writer connection).
    db.exclusive(move |c| c.query_row(&format!("PRAGMA max_page_count = {}", pages + 2), [], |_| Ok(())))
        .await
        .unwrap()
        .unwrap();
    let big = |i: usize| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(2000)).into_bytes();
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..50 {
        match q.push(QueueId::Ingest, &[big(i), big(i + 1000)]).await {
            Ok(_) => accepted += 2,
            Err(e) => {
                assert!(e.is_connection(), "a full disk is worth waiting for: {e}");
                refused += 1;
            }
        }
    }
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), accepted, "depth counts only what was committed");
    // Space comes back: what was accepted is all there, whole, and work goes on.
    db.exclusive(|c| c.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))).await.unwrap().unwrap();
    q.push(QueueId::Ingest, &[big(9999)]).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::random("alerter"))).await.unwrap();
    let mut seen = 0;
    while let Some(lease) = c.lease(100, Duration::from_millis(100)).await.unwrap() {
        seen += lease.len() as u64;
        c.settle(&lease, &Settlement::new()).await.unwrap();
    }
    assert_eq!(seen, accepted + 1);
    let rows: i64 = db.read(|c| c.query_row("SELECT count(*) FROM queue_message", [], |r| r.get(0))).await.unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn another_process_changing_the_configuration_reaches_the_owners_watchers() {
    // `muttd config set` writes the file through a view of its own; the owner polls for it.
    let (owner, dir) = backend().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    let stop = tokio_util::sync::CancellationToken::new();
    let on_change = Box::new(move |key: Option<&str>| {
        let _ = tx.send(key.map(str::to_owned));
    });
    let watch = {
        let (owner, stop) = (owner.clone(), stop.clone());
        tokio::spawn(async move { owner.watch_config_changes(on_change, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view = SqliteQueue::attach(database(&dir), KeySpace::default()).await.unwrap();
    view.set_config_value("max_ingest_queue_size", "5").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await.expect("seen within the poll").unwrap();
    assert_eq!(got, None, "another process's change names no key");
    stop.cancel();
    watch.await.unwrap();
}

/// Expired unhandled counters are deleted (one row per host and message signature ever
/// counted would otherwise grow the file without end), as their Redis keys expire.
#[tokio::test]
async fn expired_unhandled_counters_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let q = SqliteQueue::open(db.clone(), KeySpace::default()).await.unwrap();
    let key = |i: usize| mutt_queue::UnhandledKey::new(format!("host-{i}"), "0123456789abcdef", format!("e{i}"), "");
    let rows = || async {
        db.read(|c| c.query_row("SELECT COUNT(*) FROM unhandled_counter", [], |r| r.get::<_, i64>(0))).await.unwrap()
    };
    let many: Vec<_> = (0..200).map(key).collect();
    // Threshold 2: host-0 fires on its second event, so it has a live trigger record too.
    q.count_unhandled(&many, 2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(q.count_unhandled(&[key(0)], 2, Duration::from_secs(1)).await.unwrap(), vec![true]);
    assert_eq!(rows().await, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The next count prunes what expired; the fresh key is the only row left.
    q.count_unhandled(&[key(1000)], 2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(rows().await, 1);
    // A pruned counter starts again from 1, as an expired one did.
    assert_eq!(q.count_unhandled(&[key(5)], 2, Duration::from_secs(1)).await.unwrap(), vec![false]);
}

#[tokio::test]
async fn a_live_sample_is_kept_until_it_expires_across_a_restart_too() {
    let dir = tempfile::tempdir().unwrap();
    let sample = |text: &str| [mutt_queue::UnhandledSample::new("sw1", "0123456789abcdef", text)];
    let message = |q: SqliteQueue| async move {
        q.unhandled_counts(10).await.unwrap().into_iter().find_map(|c| c.message).unwrap_or_default()
    };
    let expiry = Duration::from_secs(1);
    let q = reopen(&dir).await;
    q.keep_unhandled_samples(&sample("first"), expiry).await.unwrap();
    q.keep_unhandled_samples(&sample("second"), expiry).await.unwrap();
    assert_eq!(message(q.clone()).await, "first", "the first sample of a window wins");
    drop(q);
    // A new owner does not know the live sample from memory: the file still decides.
    let q = reopen(&dir).await;
    q.keep_unhandled_samples(&sample("third"), expiry).await.unwrap();
    assert_eq!(message(q.clone()).await, "first", "still live after the restart");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    q.keep_unhandled_samples(&sample("fourth"), expiry).await.unwrap();
    assert_eq!(message(q.clone()).await, "fourth", "an expired sample is replaced");
    q.keep_unhandled_samples(&sample("fifth"), expiry).await.unwrap();
    assert_eq!(message(q).await, "fourth");
}

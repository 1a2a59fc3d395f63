//! The dead-letter toolbox on the embedded backend (`dlq_suite`), plus what only it needs:
//! a `muttd dlq` process writing to a file another process owns.

#[macro_use]
mod dlq_suite;

use mutt_queue::dlq::{self, Dlq, Selection};
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{Backend, Queue, QueueId};
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

dlq_tests!();

#[tokio::test]
async fn a_replay_from_another_process_reaches_the_owners_depth_count() {
    let (owner, dir) = backend().await;
    let entries: Vec<Vec<u8>> = (0..5).map(|n| format!(r#"{{"n":{n},"_dlq_reason":"shed"}}"#).into_bytes()).collect();
    owner.dead_letters().dlq_push(Dlq::Alerter, &entries).await.unwrap();
    // `muttd dlq replay` while `muttd run` owns the file: a view attached to it.
    let view = SqliteQueue::attach(database(&dir), KeySpace::default()).await.unwrap();
    let r =
        dlq::replay(view.dead_letters().as_ref(), Dlq::Alerter, &Selection::all(), false, &|_, _| {}).await.unwrap();
    assert_eq!(r.total(), 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while owner.depth(QueueId::Ingest).await.unwrap() != 5 {
        assert!(Instant::now() < deadline, "the owner never counted the replayed events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(owner.dead_letter_depth(mutt_queue::WorkerRole::Alerter).await.unwrap(), 0);
}

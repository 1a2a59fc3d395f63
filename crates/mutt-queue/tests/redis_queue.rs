//! Conformance tests of the queue interface against a real redis-server.
//! (The embedded backend will run the same `suite` functions.)

#[macro_use]
mod suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use std::sync::Arc;

async fn backend() -> (Arc<dyn mutt_queue::Backend>, ()) {
    let config = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    (Arc::new(RedisQueue::connect(&config).await.expect("connect to test redis")), ())
}

conformance!(tests);

#[tokio::test]
async fn pod_names_with_colons_are_rejected() {
    assert!(mutt_core::PodName::parse("alerter:1").is_err());
}

/// Whatever sits in a worker's processing list when it leases (here written there behind its
/// back) is handed back first: the lease script refuses to add to a non-empty list, so a
/// settle can only ever remove the lease's own messages.
#[tokio::test]
async fn a_lease_never_joins_a_non_empty_processing_list() {
    use mutt_queue::{ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys.clone())).await.unwrap();
    let pod = mutt_core::PodName::parse("joiner").unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod)).await.unwrap();
    q.push(QueueId::Ingest, &[b"queued".to_vec()]).await.unwrap();
    let mut conn = q.connection();
    let list = keys.processing_list(WorkerRole::Alerter, "joiner");
    let _: () = redis::cmd("LPUSH").arg(&list).arg("stray").query_async(&mut conn).await.unwrap();
    let lease = c.lease(10, std::time::Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, vec![b"stray".to_vec(), b"queued".to_vec()], "handed back, then leased in order");
    let held: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(&list).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(held.len(), 2, "exactly the lease");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let left: u64 = redis::cmd("LLEN").arg(&list).query_async(&mut conn).await.unwrap();
    assert_eq!(left, 0);
    c.shutdown().await.unwrap();
}

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

/// A message seen once gets no sample key (one-off messages are most of what goes unhandled);
/// the second sighting keeps one, the first sample kept stays, and of a batch the first
/// message of a (host, signature) is the one kept. Only wanted messages reach Redis.
#[tokio::test]
async fn unhandled_samples_are_kept_from_the_second_sighting() {
    use mutt_queue::{Coordination, UnhandledKey};
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys.clone())).await.unwrap();
    let expiry = std::time::Duration::from_secs(60);
    let key = |host: &str, id: &str, text: &str| UnhandledKey::new(host, "0123456789abcdef", id, text);
    let stored = |host: &str| {
        let mut c = q.connection();
        let k = format!("{}:sample", keys.unhandled(host, "0123456789abcdef").0);
        async move { redis::cmd("GET").arg(k).query_async::<Option<String>>(&mut c).await.unwrap() }
    };
    q.count_unhandled(&[key("sw1", "e1", "first")], 100, expiry).await.unwrap();
    assert_eq!(stored("sw1").await, None, "seen once: no key");
    q.count_unhandled(&[key("sw1", "e2", "second")], 100, expiry).await.unwrap();
    q.count_unhandled(&[key("sw1", "e3", "third")], 100, expiry).await.unwrap();
    assert_eq!(stored("sw1").await.as_deref(), Some("second"), "kept from the second sighting, first one wins");
    let counts = q.unhandled_counts(10).await.unwrap();
    assert_eq!((counts[0].count, counts[0].message.as_deref()), (3, Some("second")));
    // Twice in one batch: the batch's first message; once in a batch: none.
    let batch = [key("sw2", "e4", "sw2 first"), key("sw3", "e5", "sw3 once"), key("sw2", "e6", "sw2 later")];
    q.count_unhandled(&batch, 100, expiry).await.unwrap();
    assert_eq!((stored("sw2").await.as_deref(), stored("sw3").await), (Some("sw2 first"), None));
    // Reaching a threshold of 1 at the first sighting keeps one.
    q.count_unhandled(&[key("sw4", "e7", "fired at once")], 1, expiry).await.unwrap();
    assert_eq!(stored("sw4").await.as_deref(), Some("fired at once"));
}

/// The counter's window is anchored at its first count (spec §3.6a): created with the expiry,
/// counted on without renewing it; a counter left without one (written by hand, or by the
/// original between its `INCR` and `EXPIRE`) is counted on as it is.
#[tokio::test]
async fn an_unhandled_counter_gets_its_expiry_at_the_first_count_only() {
    use mutt_queue::{Coordination, UnhandledKey};
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys.clone())).await.unwrap();
    let mut c = q.connection();
    let counter = keys.unhandled("sw1", "0123456789abcdef").0;
    let key = |id: &str| UnhandledKey::new("sw1", "0123456789abcdef", id, "text");
    let read = |c: &mut mutt_queue::redis::AnyConnection| {
        let (mut c, counter) = (c.clone(), counter.clone());
        async move {
            let v: Option<u64> = redis::cmd("GET").arg(&counter).query_async(&mut c).await.unwrap();
            let ttl: i64 = redis::cmd("TTL").arg(&counter).query_async(&mut c).await.unwrap();
            (v, ttl)
        }
    };
    q.count_unhandled(&[key("e1")], 100, std::time::Duration::from_secs(600)).await.unwrap();
    let (n, ttl) = read(&mut c).await;
    assert_eq!(n, Some(1));
    assert!((590..=600).contains(&ttl), "created with the expiry: {ttl}");
    let _: () = redis::cmd("EXPIRE").arg(&counter).arg(100).query_async(&mut c).await.unwrap();
    q.count_unhandled(&[key("e2"), key("e3")], 100, std::time::Duration::from_secs(600)).await.unwrap();
    let (n, ttl) = read(&mut c).await;
    assert_eq!(n, Some(3));
    assert!(ttl <= 100, "counted on without renewing the window: {ttl}");
    let _: () = redis::cmd("SET").arg(&counter).arg(7).query_async(&mut c).await.unwrap();
    q.count_unhandled(&[key("e4")], 100, std::time::Duration::from_secs(600)).await.unwrap();
    assert_eq!(read(&mut c).await, (Some(8), -1), "a counter without expiry is counted on as it is");
}

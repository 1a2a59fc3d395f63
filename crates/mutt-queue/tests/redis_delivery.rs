//! The Redis side of the forwarder's cheaper batches: leases tell first deliveries from
//! redeliveries, the rate limit is one GCRA key, and a settle removes its lease with one
//! LTRIM while leaving alone whatever came into the processing list after it.

use mutt_core::PodName;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Coordination, Queue, QueueId, Settlement, WorkerRole};
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(200);

async fn queue() -> (RedisQueue, KeySpace) {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys.clone())).await.unwrap();
    (q, keys)
}

fn forwarder(pod: &str) -> ConsumerConfig {
    ConsumerConfig::new(WorkerRole::Forwarder, PodName::parse(pod).unwrap())
}

fn flags(lease: &mutt_queue::Lease) -> Vec<bool> {
    (0..lease.len()).map(|i| lease.possibly_redelivered(i)).collect()
}

#[tokio::test]
async fn only_messages_leased_before_are_flagged_as_redeliveries() {
    let (q, keys) = queue().await;
    q.push(QueueId::Alert, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).await.unwrap();
    let mut c = q.consumer(forwarder("flags")).await.unwrap();
    let lease = c.lease(2, WAIT).await.unwrap().unwrap();
    assert_eq!((lease.messages.clone(), flags(&lease)), (vec![b"a".to_vec(), b"b".to_vec()], vec![false, false]));
    // An error between lease and settle: the worker hands the batch back.
    c.release().await.unwrap();
    let lease = c.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!(lease.messages, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(flags(&lease), vec![true, true, false], "the handed-back two only");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let mut conn = q.connection();
    let left: u64 =
        redis::cmd("EXISTS").arg(keys.redelivered(WorkerRole::Forwarder)).query_async(&mut conn).await.unwrap();
    assert_eq!(left, 0, "each redelivery is counted off when leased again");
    // The blocking path (BLMOVE, then the lease script) says so too.
    let waiter = tokio::spawn(async move {
        let lease = c.lease(10, Duration::from_secs(5)).await.unwrap().unwrap();
        c.settle(&lease, &Settlement::new()).await.unwrap();
        (lease.messages.clone(), flags(&lease))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.push(QueueId::Alert, &[b"d".to_vec()]).await.unwrap();
    assert_eq!(waiter.await.unwrap(), (vec![b"d".to_vec()], vec![false]));
}

#[tokio::test]
async fn a_dead_forwarders_batch_is_flagged_when_a_janitor_recovers_it() {
    let (q, _) = queue().await;
    q.push(QueueId::Alert, &[b"x".to_vec(), b"y".to_vec()]).await.unwrap();
    let mut dead = forwarder("dies");
    dead.heartbeat_ttl = Duration::from_secs(1);
    let mut c = q.consumer(dead).await.unwrap();
    let _held = c.lease(10, WAIT).await.unwrap().unwrap();
    drop(c); // stops its heartbeat
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut live = q.consumer(forwarder("lives")).await.unwrap();
    let lease = live.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!((lease.messages.clone(), flags(&lease)), (vec![b"x".to_vec(), b"y".to_vec()], vec![true, true]));
    live.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_alerter_does_not_track_redeliveries() {
    let (q, keys) = queue().await;
    q.push(QueueId::Ingest, &[b"e".to_vec()]).await.unwrap();
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::parse("al").unwrap())).await.unwrap();
    let lease = c.lease(10, WAIT).await.unwrap().unwrap();
    c.release().await.unwrap();
    assert!(lease.possibly_redelivered(0), "unknown counts as possibly");
    let mut conn = q.connection();
    let n: u64 = redis::cmd("EXISTS").arg(keys.redelivered(WorkerRole::Alerter)).query_async(&mut conn).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_rate_limit_is_one_key_that_frees_a_slot_per_interval() {
    let (q, keys) = queue().await;
    let key = format!("{}rate_limit:gcra", keys.prefix);
    let mut conn = q.connection();
    // What the sliding window left (a sorted set) is replaced, not an error.
    let _: () = redis::cmd("ZADD").arg(&key).arg(1).arg("old").query_async(&mut conn).await.unwrap();
    let window = Duration::from_millis(1000);
    let g = q.rate_limit_take("gcra", 10, window, 1000).await.unwrap();
    assert_eq!(g.granted, 10, "a burst of the whole limit");
    assert!(g.retry_after > Duration::ZERO && g.retry_after <= Duration::from_millis(100), "{g:?}");
    let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "string", "one key, whatever the count");
    // One slot frees every window / limit = 100 ms.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let g = q.rate_limit_take("gcra", 10, window, 1000).await.unwrap();
    assert_eq!(g.granted, 2);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 2_100, "kept about a window, {ttl} ms");
}

#[tokio::test]
async fn a_settle_leaves_what_came_into_the_list_after_its_lease() {
    let (q, keys) = queue().await;
    q.push(QueueId::Alert, &[b"1".to_vec(), b"2".to_vec()]).await.unwrap();
    let mut c = q.consumer(forwarder("trim")).await.unwrap();
    let lease = c.lease(10, WAIT).await.unwrap().unwrap();
    // A BLMOVE whose reply was given up lands after the lease (left end of the list).
    let list = keys.processing_list(WorkerRole::Forwarder, "trim");
    let mut conn = q.connection();
    let _: () = redis::cmd("LPUSH").arg(&list).arg("late").query_async(&mut conn).await.unwrap();
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let held: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(&list).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(held, vec![b"late".to_vec()], "the lease's two removed, the late one kept");
    // Nothing else can come into a processing list (leases start in an empty list and a late
    // BLMOVE lands at the left end), so the settle trims the lease's count off the tail without
    // reading the bytes back.
    c.shutdown().await.unwrap_or(());
}

#[tokio::test]
async fn ingest_pushes_count_into_buckets_that_expire_from_their_first_event() {
    let (q, keys) = queue().await;
    let now = chrono::Utc::now();
    assert_eq!(q.push_ingest(&[b"1".to_vec(), b"2".to_vec(), b"3".to_vec()], now).await.unwrap(), 3);
    assert_eq!(q.push_ingest(&[b"4".to_vec(), b"5".to_vec()], now).await.unwrap(), 5, "the new depth");
    let minute = format!("{}:1m:{}", keys.metrics_prefix, now.format("%Y-%m-%dT%H:%M"));
    let day = format!("{}:24h:{}", keys.metrics_prefix, now.format("%Y-%m-%d"));
    let mut conn = q.connection();
    let counts: Vec<u64> = redis::cmd("MGET").arg(&minute).arg(&day).query_async(&mut conn).await.unwrap();
    assert_eq!(counts, vec![5, 5]);
    let ttls: (i64, i64) =
        redis::pipe().cmd("TTL").arg(&minute).cmd("TTL").arg(&day).query_async(&mut conn).await.unwrap();
    assert!(ttls.0 > 7_000 && ttls.0 <= 7_200 && ttls.1 > 2_590_000, "{ttls:?}");
    let queued: Vec<Vec<u8>> =
        redis::cmd("LRANGE").arg(&keys.ingest_queue).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(queued.last().map(Vec::as_slice), Some(&b"1"[..]), "oldest at the front (right end)");
}

/// The breaker's outcomes and the delivered ids go in one pipeline with the script by
/// `EVALSHA`: after Redis lost its scripts (a restart, `SCRIPT FLUSH`) the script is loaded and
/// the pipeline sent again, and the ids written twice are still one each.
#[tokio::test]
async fn a_delivery_is_recorded_after_redis_lost_its_scripts() {
    use mutt_queue::{BreakerOutcomes, BreakerState};
    let (q, keys) = queue().await;
    let mut conn = q.connection();
    let ids: Vec<String> = vec!["e1".into(), "e2".into()];
    let outcomes = BreakerOutcomes { name: "flushed", successes: &[false, false], trip: false, threshold: 2 };
    // Other tests' scripts go too; their calls load them again as this one does.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    let (states, failures) = q.record_delivery(Some(outcomes), &ids, Duration::from_secs(60)).await.unwrap();
    assert_eq!((states, failures), (vec![BreakerState::Closed, BreakerState::Open], 2));
    assert_eq!(q.already_delivered(&ids).await.unwrap(), vec![true, true]);
    let n: u64 = redis::cmd("ZCARD").arg(keys.delivered_set()).query_async(&mut conn).await.unwrap();
    assert_eq!(n, 2);
    // Ids alone (no breaker) need no script at all.
    q.record_delivery(None, &["e3".to_owned()], Duration::from_secs(60)).await.unwrap();
    assert_eq!(q.already_delivered(&["e3".to_owned()]).await.unwrap(), vec![true]);
}

/// muttd's own ids go to one string per second of their making, 24 bytes each, and nothing to
/// the sorted set; the original's ids go to the sorted set; an id an earlier muttd recorded in
/// the sorted set is still found; a record written twice (the pipeline sent again after
/// `NOSCRIPT`) reads as once.
#[tokio::test]
async fn muttds_delivered_ids_are_appended_by_the_second_of_their_making() {
    use mutt_queue::{BreakerOutcomes, BreakerState};
    let (q, keys) = queue().await;
    let mut conn = q.connection();
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let legacy = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"original").to_string();
    let mut all = ids.clone();
    all.push(legacy.clone());
    let ttl = Duration::from_secs(600);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    let outcomes = BreakerOutcomes { name: "appended", successes: &[true], trip: false, threshold: 2 };
    let (states, _) = q.record_delivery(Some(outcomes), &all, ttl).await.unwrap();
    assert_eq!(states, vec![BreakerState::Closed]);
    assert_eq!(q.already_delivered(&all).await.unwrap(), vec![true; 4]);

    let set: Vec<String> =
        redis::cmd("ZRANGE").arg(keys.delivered_set()).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(set, vec![legacy], "only the original's id is in the sorted set");
    let mut bytes = 0;
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        let second = uuid.get_timestamp().unwrap().to_unix().0;
        let key = keys.delivered_second(second as i64);
        let records: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(records.len().is_multiple_of(24) && records.chunks(24).any(|r| &r[..16] == uuid.as_bytes()), "{key}");
        let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!((600_000..=660_000).contains(&ttl_ms), "{key} expires after the records: {ttl_ms}");
        bytes = bytes.max(records.len());
    }
    // Three ids in one or two seconds, each written twice (sent again after NOSCRIPT) at most.
    assert!(bytes <= 2 * 3 * 24, "{bytes} bytes");

    // Recorded by an earlier muttd (a sorted-set member scored by its expiry).
    let older = uuid::Uuid::now_v7().to_string();
    let until = chrono::Utc::now().timestamp_millis() + 60_000;
    let _: () =
        redis::cmd("ZADD").arg(keys.delivered_set()).arg(until).arg(&older).query_async(&mut conn).await.unwrap();
    assert_eq!(q.delivered_until(&[older, uuid::Uuid::now_v7().to_string()]).await.unwrap(), vec![Some(until), None]);
}

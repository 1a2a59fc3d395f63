//! The Redis queue with every settle that delays nothing sent as `WATCH` + `MULTI`/`EXEC`
//! instead of the settle script (in production only settles of 16 KiB or more go that way):
//! the whole conformance suite, and a settle racing the recovery of its lease.

#[macro_use]
mod suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Consumer, ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use std::sync::Arc;
use std::time::Duration;

async fn connect(keys: &KeySpace) -> RedisQueue {
    let config = RedisConfig::single(mutt_testkit::redis_url(), keys.clone());
    RedisQueue::connect(&config).await.expect("connect to test redis").with_native_settle_from(0)
}

async fn backend() -> (Arc<dyn mutt_queue::Backend>, ()) {
    (Arc::new(connect(&KeySpace::with_prefix(&mutt_testkit::unique_prefix())).await), ())
}

conformance!(tests);

fn worker(pod: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(WorkerRole::Alerter, mutt_core::PodName::parse(pod).unwrap());
    c.heartbeat_ttl = Duration::from_secs(1);
    c.janitor_interval = Duration::from_secs(3600);
    c
}

/// A janitor recovers a lease (its worker's heartbeat gone) while the worker settles it: each
/// round ends either settled (the events gone, their alerts emitted once) or recovered (the
/// events back in the queue, nothing emitted), never both and never neither. The recovery
/// starts at a different moment each round, so some land between the settle's check and its
/// write, where only `WATCH` keeps the settle from applying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_racing_the_recovery_of_its_lease_applies_all_or_nothing() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    let mut conn = q.connection();
    let mut worker_a = q.consumer(worker("racer")).await.unwrap();
    let janitor: Arc<dyn Consumer> = Arc::from(q.consumer(worker("janitor")).await.unwrap());
    let heartbeat = keys.heartbeat(WorkerRole::Alerter, "racer");
    let (mut settled, mut recovered) = (0, 0);
    for round in 0..200u64 {
        let events: Vec<Vec<u8>> = (0..4).map(|i| format!(r#"{{"round":{round},"i":{i}}}"#).into_bytes()).collect();
        q.push(QueueId::Ingest, &events).await.unwrap();
        let lease = worker_a.lease(10, Duration::from_millis(500)).await.unwrap().expect("leased");
        assert_eq!(lease.len(), 4);
        let mut s = Settlement::new();
        s.emit(format!(r#"{{"alert_of_round":{round}}}"#));
        // The worker looks dead to the janitor from now on (its heartbeat refresh is 10 s away).
        let _: () = redis::cmd("DEL").arg(&heartbeat).query_async(&mut conn).await.unwrap();
        // The janitor reads the workers and heartbeats before it moves a list: the settle
        // starts somewhere from before that to after the move (a spin, not a timer: tokio's
        // timers tick in milliseconds).
        let recovery = tokio::spawn({
            let janitor = janitor.clone();
            async move { janitor.recover_dead_workers().await }
        });
        let until = std::time::Instant::now() + Duration::from_micros((round * 37) % 1500);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        worker_a.settle(&lease, &s).await.unwrap();
        let moved = recovery.await.unwrap().unwrap();
        let queued = q.depth(QueueId::Ingest).await.unwrap();
        let alerts: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(keys.queue(QueueId::Alert)).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        match (moved, queued, alerts.len()) {
            (0, 0, 1) => settled += 1,
            (4, 4, 0) => recovered += 1,
            other => panic!("round {round}: recovered, queued, alerts = {other:?}: not all or nothing"),
        }
        let _: () = redis::cmd("DEL")
            .arg(keys.queue(QueueId::Alert))
            .arg(keys.queue(QueueId::Ingest))
            .arg(keys.events(QueueId::Ingest))
            .arg(keys.events(QueueId::Alert))
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () =
            redis::cmd("SET").arg(&heartbeat).arg("alive").arg("EX").arg(60).query_async(&mut conn).await.unwrap();
    }
    eprintln!("settled {settled}, recovered {recovered}");
    assert_eq!(settled + recovered, 200);
    assert!(settled > 0 && recovered > 0, "both sides won some rounds: settled {settled}, recovered {recovered}");
    worker_a.shutdown().await.unwrap();
}

/// After a settle that did not apply (its lease recovered), the next settle on the same
/// connection is not spoiled by what the first one watched.
#[tokio::test]
async fn a_refused_native_settle_leaves_no_watch_behind() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    let mut a = q.consumer(worker("refused")).await.unwrap();
    q.push(QueueId::Ingest, &[b"one".to_vec()]).await.unwrap();
    let first = a.lease(10, Duration::from_millis(500)).await.unwrap().unwrap();
    a.release().await.unwrap();
    let mut s = Settlement::new();
    s.emit("never");
    a.settle(&first, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 0, "a released lease's settle emits nothing");
    let second = a.lease(10, Duration::from_millis(500)).await.unwrap().unwrap();
    // Someone else changes the list the refused settle looked at; the next settle must apply.
    let mut conn = q.connection();
    let _: () = redis::cmd("RPUSH").arg(keys.queue(QueueId::Ingest)).arg("other").query_async(&mut conn).await.unwrap();
    let mut s = Settlement::new();
    s.emit("alert");
    a.settle(&second, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 1);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 1, "only the unrelated message is left");
    a.shutdown().await.unwrap();
}

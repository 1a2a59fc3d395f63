//! The Redis queue with batch envelopes (`redis.batch_envelope`): the whole conformance suite,
//! plus what only envelopes do (a worker that dies holding one, mixed queues, depths in events,
//! the format as `redis-cli` shows it).

#[macro_use]
mod suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Consumer, ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use std::sync::Arc;
use std::time::Duration;

async fn connect(keys: &KeySpace) -> RedisQueue {
    let config = RedisConfig::single(mutt_testkit::redis_url(), keys.clone());
    RedisQueue::connect(&config).await.expect("connect to test redis").with_batch_envelope(100)
}

async fn backend() -> (Arc<dyn mutt_queue::Backend>, ()) {
    (Arc::new(connect(&KeySpace::with_prefix(&mutt_testkit::unique_prefix())).await), ())
}

conformance!(tests);

fn event(i: usize) -> Vec<u8> {
    format!(r#"{{"seq":{i},"hostname":"sw1","message":"m{i}"}}"#).into_bytes()
}

fn events(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(event).collect()
}

async fn raw_list(q: &RedisQueue, key: &str) -> Vec<Vec<u8>> {
    redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut q.connection()).await.unwrap()
}

fn pod(name: &str) -> mutt_core::PodName {
    mutt_core::PodName::parse(name).unwrap()
}

#[tokio::test]
async fn a_push_is_one_element_per_hundred_events_readable_line_by_line() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    assert_eq!(q.push_ingest(&events(0..250), chrono::Utc::now()).await.unwrap(), 250);
    let list = raw_list(&q, &keys.ingest_queue).await;
    assert_eq!(list.len(), 3, "three envelopes");
    // Newest element at the head (LPUSH): the first hundred are at the tail.
    let text = String::from_utf8(list[2].clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"_mutt_batch":100}"#);
    assert_eq!(lines.len(), 101);
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 250, "depth counts events");
    let status = q.status().await.unwrap();
    assert_eq!(status.queues[0].depth, 250);
}

#[tokio::test]
async fn plain_messages_from_an_older_producer_and_envelopes_are_leased_in_order() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    let mut conn = q.connection();
    // The original (or muttd without envelopes) pushes one event per element, uncounted.
    for e in events(0..3) {
        let _: () = redis::cmd("LPUSH").arg(&keys.ingest_queue).arg(e).query_async(&mut conn).await.unwrap();
    }
    q.push_ingest(&events(3..53), chrono::Utc::now()).await.unwrap();
    let _: () = redis::cmd("LPUSH").arg(&keys.ingest_queue).arg(event(53)).query_async(&mut conn).await.unwrap();
    // The older producer's pushes are not counted: the depth is the counter (50), never less
    // than the list's length (5); it is exact again once the queue drains.
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 50);
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod("mixed"))).await.unwrap();
    let mut got = Vec::new();
    while let Some(lease) = c.lease(20, Duration::from_millis(200)).await.unwrap() {
        // The envelope of 50 alone is the one lease larger than its size (a first element is
        // taken whatever its size, so none is stuck).
        assert!(lease.len() <= 20 || lease.len() == 50, "a lease of {} events", lease.len());
        got.extend(lease.messages.clone());
        c.settle(&lease, &Settlement::new()).await.unwrap();
    }
    assert_eq!(got, events(0..54), "every event once, in order");
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    let counter: Option<i64> =
        redis::cmd("GET").arg(keys.events(QueueId::Ingest)).query_async(&mut conn).await.unwrap();
    assert_eq!(counter, None, "an empty queue drops its counter, so drift never outlives a drain");
    c.shutdown().await.unwrap();
}

/// A lone post travels as a plain message, posts coalesced under load as envelopes: a lease
/// that begins with a plain message pops the rest in one call, and must stop before the
/// first envelope that would take it past its size (it once took up to `max` elements
/// whatever they carried: a lease of 100 held thousands of events).
#[tokio::test]
async fn a_lease_that_begins_with_a_plain_message_stops_before_an_envelope_that_would_not_fit() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    q.push_ingest(&events(0..1), chrono::Utc::now()).await.unwrap();
    for (from, to) in [(1, 31), (31, 61), (61, 91)] {
        q.push_ingest(&events(from..to), chrono::Utc::now()).await.unwrap();
    }
    assert_eq!(raw_list(&q, &keys.ingest_queue).await.len(), 4, "one plain message, three envelopes");
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod("plain-first"))).await.unwrap();
    let lease = c.lease(50, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(0..31), "1 + 30 fit in 50; another 30 would make 61");
    assert_eq!(raw_list(&q, &keys.processing_list(WorkerRole::Alerter, "plain-first")).await.len(), 2);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 60, "the two put back are counted again");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    for range in [31..61, 61..91] {
        let lease = c.lease(50, Duration::from_millis(200)).await.unwrap().unwrap();
        assert_eq!(lease.messages, events(range), "the ones put back, in order");
        c.settle(&lease, &Settlement::new()).await.unwrap();
    }
    assert!(c.lease(50, Duration::from_millis(50)).await.unwrap().is_none());
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    c.shutdown().await.unwrap();
}

/// The same bound when the lease waited: BLMOVE takes the first element, and the script that
/// pops the rest must not take an envelope past the size as if it were the first.
#[tokio::test]
async fn a_lease_that_waited_for_a_plain_message_leaves_an_envelope_that_would_not_fit() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod("waited"))).await.unwrap();
    let waiting = tokio::spawn(async move {
        let lease = c.lease(20, Duration::from_secs(5)).await;
        (c, lease)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let envelope = mutt_queue::envelope::pack(&events(1..31), 100).remove(0);
    // One command, so both are there when BLMOVE wakes; the plain message is the front.
    let _: () = redis::pipe()
        .atomic()
        .cmd("LPUSH")
        .arg(&keys.ingest_queue)
        .arg(event(0))
        .arg(&envelope)
        .cmd("INCRBY")
        .arg(keys.events(QueueId::Ingest))
        .arg(31)
        .query_async(&mut q.connection())
        .await
        .unwrap();
    let (mut c, lease) = waiting.await.unwrap();
    let lease = lease.unwrap().expect("the wait ends with the plain message");
    assert_eq!(lease.messages, events(0..1), "1 + 30 would make 31 in a lease of 20");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let lease = c.lease(20, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(1..31), "a first element is taken whatever its size");
    c.settle(&lease, &Settlement::new()).await.unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    c.shutdown().await.unwrap();
}

/// Pushes three envelopes (`pushes`, event ranges), then leases 100 events twice from pod
/// "sizes": the first lease takes the first two envelopes (its processing list holds exactly
/// them) and the third goes back to the front, where the second lease finds it.
async fn lease_two_then_the_put_back(
    q: &RedisQueue,
    c: &mut Box<dyn Consumer>,
    pushes: [(usize, usize); 3],
    why: &str,
) {
    for (from, to) in pushes {
        q.push_ingest(&events(from..to), chrono::Utc::now()).await.unwrap();
    }
    let [(start, _), (_, second_end), (_, end)] = pushes;
    let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(start..second_end), "{why}");
    assert_eq!(raw_list(q, &q.keys().processing_list(WorkerRole::Alerter, "sizes")).await.len(), 2);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), (end - second_end) as u64);
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(second_end..end), "the one put back, first in line");
    c.settle(&lease, &Settlement::new()).await.unwrap();
}

/// A lease takes whole elements up to its size, whether a script pops them (small elements) or
/// they move natively (envelopes of many events, after a lease that began with one): what went
/// past the size goes back to the front, in order.
#[tokio::test]
async fn a_lease_takes_whole_envelopes_up_to_its_size_and_puts_back_what_did_not_fit() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    for (from, to) in [(0, 40), (40, 80), (80, 120)] {
        q.push_ingest(&events(from..to), chrono::Utc::now()).await.unwrap();
    }
    let mut c = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod("sizes"))).await.unwrap();
    let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(0..80), "two envelopes of 40 fit in 100, a third would not");
    assert_eq!(raw_list(&q, &keys.processing_list(WorkerRole::Alerter, "sizes")).await.len(), 2);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 40);
    c.settle(&lease, &Settlement::new()).await.unwrap();

    let lease = c.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.messages, events(80..120));
    c.settle(&lease, &Settlement::new()).await.unwrap();

    // Envelopes this large move natively: 40, then one of its size fits (a 10 comes), then
    // five more of that size would, one 60 comes and goes back.
    lease_two_then_the_put_back(&q, &mut c, [(300, 340), (340, 350), (350, 410)], "40 and 10; the 60 would make 110")
        .await;

    // 10 first: nine more of its size are asked for at once, two envelopes of 50 come, the
    // second goes back to the front.
    lease_two_then_the_put_back(
        &q,
        &mut c,
        [(200, 210), (210, 260), (260, 310)],
        "10 and 50; another 50 would make 110",
    )
    .await;
    assert!(c.lease(100, Duration::from_millis(50)).await.unwrap().is_none());
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    c.shutdown().await.unwrap();
}

#[tokio::test]
async fn emitted_alerts_travel_as_one_envelope_and_the_forwarder_unpacks_them() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    q.push_ingest(&events(0..10), chrono::Utc::now()).await.unwrap();
    let mut a = q.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod("a"))).await.unwrap();
    let lease = a.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(lease.len(), 10);
    let mut s = Settlement::new();
    for m in &lease.messages {
        s.emit(m.clone());
    }
    a.settle(&lease, &s).await.unwrap();
    assert_eq!(raw_list(&q, &keys.alert_queue).await.len(), 1);
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 10);
    let mut f = q.consumer(ConsumerConfig::new(WorkerRole::Forwarder, pod("f"))).await.unwrap();
    let alerts = f.lease(100, Duration::from_millis(200)).await.unwrap().unwrap();
    assert_eq!(alerts.messages, events(0..10));
    assert!((0..10).all(|i| !alerts.possibly_redelivered(i)), "first deliveries");
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

/// A worker that dies holding an envelope gets its events back one by one, so that a poison
/// event is dead-lettered alone after its crashes while its neighbours go through.
#[tokio::test]
async fn a_dead_workers_envelope_comes_back_as_its_events_and_only_the_poison_one_is_dead_lettered() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let q = connect(&keys).await;
    q.push_ingest(&events(0..5), chrono::Utc::now()).await.unwrap();
    let config = |name: &str| {
        let mut c = ConsumerConfig::new(WorkerRole::Alerter, pod(name));
        c.heartbeat_ttl = Duration::from_secs(1);
        c.max_crashes = 2;
        c
    };
    // Three workers in turn die holding what they leased (their heartbeat runs out); event 2
    // is the one that "kills" them: after the split each survivor settles everything but it.
    for round in 0..4 {
        let mut w = q.consumer(config(&format!("victim{round}"))).await.unwrap();
        let lease = w.lease(100, Duration::from_millis(500)).await.unwrap().expect("events come back");
        if round == 0 {
            assert_eq!(lease.messages, events(0..5), "the whole envelope");
        } else {
            // Survivors: settle all but the poison one, which stays leased when they die.
            let poison: Vec<Vec<u8>> = lease.messages.iter().filter(|m| **m == event(2)).cloned().collect();
            assert_eq!(poison.len(), 1, "round {round}: {:?}", lease.messages.len());
            if round == 1 {
                assert_eq!(lease.messages, events(0..5), "split, in order");
            }
        }
        drop(w); // dies: no release, no shutdown, its heartbeat stops (as a kill -9)
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let janitor = q.consumer(config(&format!("janitor{round}"))).await.unwrap();
        drop(janitor);
        if round == 1 {
            // From here on, take the good events out so only the poison one keeps dying.
            let mut good = q.consumer(config("good")).await.unwrap();
            let lease = good.lease(100, Duration::from_millis(500)).await.unwrap().unwrap();
            let mut s = Settlement::new();
            for m in lease.messages.iter().filter(|m| **m == event(2)) {
                s.put_back(m);
            }
            good.settle(&lease, &s).await.unwrap();
            good.shutdown().await.unwrap();
        }
        let dead: Vec<Vec<u8>> = raw_list(&q, &keys.alerter_dlq).await;
        if !dead.is_empty() {
            assert_eq!(dead.len(), 1, "only the poison event");
            let v: serde_json::Value = serde_json::from_slice(&dead[0]).unwrap();
            assert_eq!(v["_dlq_reason"], "worker_crashed");
            assert_eq!(v["raw"].as_str().unwrap().as_bytes(), event(2).as_slice());
            assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
            return;
        }
    }
    panic!("the poison event was never dead-lettered");
}

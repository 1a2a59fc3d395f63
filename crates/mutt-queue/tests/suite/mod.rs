//! The queue conformance suite: each function takes a fresh, empty queue.
//!
//! `conformance!(tests)` makes one `#[tokio::test]` per function, each on a queue from the
//! including file's `async fn backend() -> (Arc<dyn Backend>, impl Sized)` (the second value
//! lives until the test ends); `conformance!(run make)` runs them all in turn on queues from
//! `make`. The list of functions is here only.

/// See the module documentation.
macro_rules! conformance {
    (tests) => {
        conformance! { @each [tests] }
    };
    (run $make:expr) => {
        conformance! { @each [run $make] }
    };
    (@each [$($mode:tt)*]) => {
        conformance! { @go [$($mode)*]
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
        unhandled_examples_are_kept_from_the_second_sighting,
        rate_limit_grants_part_of_a_batch,
        circuit_breaker_opens_half_opens_with_one_probe_and_closes,
        delivered_ids_are_remembered,
        delivered_uuidv7s_are_remembered_with_their_expiry,
        dynamic_configuration_is_set_and_read_live,
        configuration_changes_are_announced_to_watchers,
        an_unsettled_lease_is_handed_back_before_the_next,
        a_stale_settle_cannot_touch_the_next_lease,
        a_settle_after_release_changes_nothing,
        settling_twice_pushes_once,
        flap_windows_forward_up_to_the_threshold_and_are_claimed_once,
        a_closed_flap_window_waits_for_its_claim_while_the_next_one_counts,
        a_flap_claim_not_acknowledged_is_claimed_again_after_its_lease,
        a_recovered_message_is_leased_as_a_possible_redelivery,
        admission_and_delivery_are_recorded_in_one_step_each }
    };
    (@go [tests] $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (queue, _keep) = backend().await;
                suite::$name(queue).await;
            }
        )*
    };
    (@go [run $make:expr] $($name:ident),*) => {{
        let make = $make;
        $( suite::$name(make().await).await; )*
    }};
}

mod delivery;
pub use delivery::*;

use mutt_core::PodName;
use mutt_queue::{Backend, Consumer, ConsumerConfig, QueueId, RetryOutcome, RetryPolicy, Settlement, WorkerRole};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_millis(200);

fn msg(i: usize) -> Vec<u8> {
    json!({"n": i, "message": format!("m{i}")}).to_string().into_bytes()
}

fn n_of(raw: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(raw).unwrap();
    v["n"].as_u64().unwrap()
}

fn config(role: WorkerRole, pod: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(role, PodName::parse(pod).unwrap());
    c.heartbeat_interval = Duration::from_millis(300);
    c.heartbeat_ttl = Duration::from_secs(1);
    c.janitor_interval = Duration::from_secs(3600);
    c.delayed_poll_interval = Duration::from_millis(50);
    c
}

async fn consumer(q: &Arc<dyn Backend>, pod: &str) -> Box<dyn Consumer> {
    q.consumer(config(WorkerRole::Alerter, pod)).await.unwrap()
}

async fn push_n(q: &Arc<dyn Backend>, queue: QueueId, n: usize) {
    let msgs: Vec<Vec<u8>> = (0..n).map(msg).collect();
    q.push(queue, &msgs).await.unwrap();
}

async fn drain(c: &mut Box<dyn Consumer>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(lease) = c.lease(100, WAIT).await.unwrap() {
        out.extend(lease.messages.iter().cloned());
        c.settle(&lease, &Settlement::new()).await.unwrap();
    }
    out
}

fn processing_depth(status: &mutt_queue::QueueStatus, pod: &str) -> u64 {
    status.processing_lists.iter().filter(|p| p.pod == pod).map(|p| p.depth).sum()
}

pub async fn fifo_order(q: Arc<dyn Backend>) {
    for i in 0..5 {
        q.push(QueueId::Ingest, &[msg(i)]).await.unwrap();
    }
    let mut c = consumer(&q, "fifo").await;
    let got: Vec<u64> = drain(&mut c).await.iter().map(|m| n_of(m)).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

pub async fn batch_lease_and_ack(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 250).await;
    let mut c = consumer(&q, "batch").await;
    let lease = c.lease(100, WAIT).await.unwrap().unwrap();
    assert_eq!(lease.len(), 100);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 150);
    assert_eq!(processing_depth(&q.status().await.unwrap(), "batch"), 100);
    // The lease holds exactly the first 100, oldest first, byte for byte.
    for (i, m) in lease.messages.iter().enumerate() {
        assert_eq!(m, &msg(i));
    }
    c.settle(&lease, &Settlement::new()).await.unwrap();
    assert_eq!(processing_depth(&q.status().await.unwrap(), "batch"), 0);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 150);
    let rest = drain(&mut c).await;
    assert_eq!(rest.len(), 150);
    assert_eq!(n_of(&rest[0]), 100);
}

pub async fn settle_emits_to_output_and_is_idempotent(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 3).await;
    let mut c = consumer(&q, "emit").await;
    let lease = c.lease(10, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.emit(b"alert-1".to_vec());
    s.emit(b"alert-2".to_vec());
    c.settle(&lease, &s).await.unwrap();
    // A second settle of the same lease (e.g. after a lost reply) changes nothing.
    c.settle(&lease, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 2);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
    let mut f = q.consumer(config(WorkerRole::Forwarder, "emit-f")).await.unwrap();
    let alerts = f.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!(alerts.messages, vec![b"alert-1".to_vec(), b"alert-2".to_vec()]);
}

pub async fn retry_counts_and_dead_letters(q: Arc<dyn Backend>) {
    let policy = RetryPolicy { field: WorkerRole::Alerter.retry_field(), max_retries: 3 };
    push_n(&q, QueueId::Ingest, 1).await;
    let mut c = consumer(&q, "retry").await;
    let mut attempts = 0;
    loop {
        let lease = c.lease(1, Duration::from_secs(2)).await.unwrap().expect("message comes back");
        attempts += 1;
        let mut s = Settlement::new();
        let outcome = s.retry(policy, &lease.messages[0], Duration::ZERO, "db down");
        c.settle(&lease, &s).await.unwrap();
        if outcome == RetryOutcome::DeadLettered {
            break;
        }
        let v: Value = serde_json::from_slice(&s_first_delayed(&lease.messages[0], policy)).unwrap();
        assert_eq!(v["_retry_count"], attempts);
    }
    // Attempts with counts 0, 1, 2, 3, then the DLQ: 4 attempts, as the original.
    assert_eq!(attempts, 4);
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

fn s_first_delayed(raw: &[u8], policy: RetryPolicy) -> Vec<u8> {
    // What the retry of `raw` looks like (the counter incremented).
    let mut v: Value = serde_json::from_slice(raw).unwrap();
    let n = v.get(policy.field).and_then(Value::as_u64).unwrap_or(0) + 1;
    v[policy.field] = json!(n);
    serde_json::to_vec(&v).unwrap()
}

pub async fn delayed_retry_waits_until_due(q: Arc<dyn Backend>) {
    let policy = RetryPolicy { field: "_retry_count", max_retries: 3 };
    push_n(&q, QueueId::Ingest, 1).await;
    let mut c = consumer(&q, "delay").await;
    let lease = c.lease(1, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.retry(policy, &lease.messages[0], Duration::from_millis(800), "later");
    let t0 = Instant::now();
    c.settle(&lease, &s).await.unwrap();
    assert!(c.lease(1, Duration::from_millis(300)).await.unwrap().is_none(), "not due yet");
    let back = c.lease(1, Duration::from_secs(3)).await.unwrap().expect("due retry comes back");
    assert!(t0.elapsed() >= Duration::from_millis(700), "came back after {:?}", t0.elapsed());
    let v: Value = serde_json::from_slice(&back.messages[0]).unwrap();
    assert_eq!(v["_retry_count"], 1);
    assert_eq!(v["n"], 0);
}

pub async fn dead_letter_records_reason(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 2).await;
    let mut c = consumer(&q, "dlq").await;
    let lease = c.lease(2, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.dead_letter(&lease.messages[0], "bad_timestamp", "timestamp \"x\" is not a date");
    c.settle(&lease, &s).await.unwrap();
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0, "the batch-mate was settled normally");
}

pub async fn put_back_keeps_message_unchanged_at_front(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 3).await;
    let mut c = consumer(&q, "back").await;
    let lease = c.lease(1, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.put_back(&lease.messages[0]);
    c.settle(&lease, &s).await.unwrap();
    let again = c.lease(1, WAIT).await.unwrap().unwrap();
    assert_eq!(again.messages[0], lease.messages[0], "same bytes, first in line");
}

pub async fn janitor_recovers_dead_worker(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 5).await;
    let mut dead = consumer(&q, "dead-worker").await;
    let lease = dead.lease(3, WAIT).await.unwrap().unwrap();
    assert_eq!(lease.len(), 3);
    // Dropping without shutdown stops the heartbeat, as a kill -9 would.
    drop(dead);
    let mut live_config = config(WorkerRole::Alerter, "live-worker");
    let metrics = mutt_queue::QueueMetrics::default();
    live_config.metrics = metrics.clone();
    let live = q.consumer(live_config).await.unwrap();
    // The heartbeat (TTL 1 s) may still exist right after the drop.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut recovered = 0;
    while recovered < 3 && Instant::now() < deadline {
        recovered += live.recover_dead_workers().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, 3);
    let counted = metrics.janitor_recovered.get_or_create(&mutt_queue::metrics::RoleLabel { role: "alerter" }).get();
    assert_eq!(counted, 3, "janitor recoveries are counted in mutt_janitor_recovered_total");
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 5);
    assert_eq!(processing_depth(&q.status().await.unwrap(), "dead-worker"), 0);
    drop(live);
    // Order is kept: the recovered messages are first in line again.
    let mut c = consumer(&q, "after").await;
    let got: Vec<u64> = drain(&mut c).await.iter().map(|m| n_of(m)).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

pub async fn janitor_leaves_live_worker_alone(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 4).await;
    let mut busy = consumer(&q, "busy-worker").await;
    let lease = busy.lease(4, WAIT).await.unwrap().unwrap();
    let other = consumer(&q, "other-worker").await;
    // Longer than the heartbeat TTL: the refresh task keeps the busy worker alive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(other.recover_dead_workers().await.unwrap(), 0);
    assert_eq!(processing_depth(&q.status().await.unwrap(), "busy-worker"), 4);
    busy.settle(&lease, &Settlement::new()).await.unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

pub async fn shutdown_hands_back_lease(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 3).await;
    let mut c = consumer(&q, "stopping").await;
    let _lease = c.lease(2, WAIT).await.unwrap().unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 3);
    let status = q.status().await.unwrap();
    assert!(!status.processing_lists.iter().any(|p| p.pod == "stopping"), "{status:?}");
    let mut c = consumer(&q, "next").await;
    let got: Vec<u64> = drain(&mut c).await.iter().map(|m| n_of(m)).collect();
    assert_eq!(got, vec![0, 1, 2]);
}

pub async fn restart_with_same_pod_takes_back_own_lease(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 3).await;
    let mut first = consumer(&q, "fixed-pod").await;
    let _lease = first.lease(3, WAIT).await.unwrap().unwrap();
    drop(first); // crash: heartbeat still alive for up to a second
    let mut again = consumer(&q, "fixed-pod").await;
    let got: Vec<u64> = drain(&mut again).await.iter().map(|m| n_of(m)).collect();
    assert_eq!(got, vec![0, 1, 2]);
}

pub async fn lease_waits_for_first_message(q: Arc<dyn Backend>) {
    let mut c = consumer(&q, "waiter").await;
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            q.push(QueueId::Ingest, &[msg(7)]).await.unwrap();
        })
    };
    let t0 = Instant::now();
    let lease = c.lease(10, Duration::from_secs(5)).await.unwrap().expect("woken by the push");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(n_of(&lease.messages[0]), 7);
    producer.await.unwrap();
    // Nothing there: returns None after roughly the wait.
    c.settle(&lease, &Settlement::new()).await.unwrap();
    let t0 = Instant::now();
    assert!(c.lease(10, Duration::from_millis(300)).await.unwrap().is_none());
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

pub async fn status_reports_depths_and_workers(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 2).await;
    push_n(&q, QueueId::Alert, 1).await;
    let _c = consumer(&q, "visible").await;
    let s = q.status().await.unwrap();
    assert_eq!(s.queues.iter().map(|d| d.depth).collect::<Vec<_>>(), vec![2, 1]);
    assert!(s.processing_lists.iter().any(|p| p.pod == "visible" && p.alive));
}

pub async fn rate_limit_is_a_sliding_window(q: Arc<dyn Backend>) {
    use mutt_queue::RateDecision;
    let window = Duration::from_millis(800);
    for _ in 0..3 {
        assert_eq!(q.rate_limit("t", 3, window).await.unwrap(), RateDecision::Allowed);
    }
    match q.rate_limit("t", 3, window).await.unwrap() {
        RateDecision::Limited { retry_after } => assert!(retry_after <= window, "{retry_after:?}"),
        other => panic!("{other:?}"),
    }
    // Another limiter name is independent.
    assert_eq!(q.rate_limit("other", 1, window).await.unwrap(), RateDecision::Allowed);
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(q.rate_limit("t", 3, window).await.unwrap(), RateDecision::Allowed);
}

pub async fn message_that_keeps_killing_workers_is_dead_lettered(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 2).await;
    let mut c = config(WorkerRole::Alerter, "crashy");
    c.max_crashes = 2;
    for round in 1..=3 {
        let mut w = q.consumer(c.clone()).await.unwrap();
        let lease = w.lease(1, WAIT).await.unwrap().expect("the poison message is first in line");
        assert_eq!(n_of(&lease.messages[0]), 0, "round {round}");
        drop(w); // dies holding it; the next start under this pod name hands it back
    }
    // The third crash is one too many: the message goes to the DLQ, its neighbour goes on.
    let mut w = q.consumer(c).await.unwrap();
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
    let rest = drain(&mut w).await;
    assert_eq!(rest.iter().map(|m| n_of(m)).collect::<Vec<_>>(), vec![1]);
    // A graceful hand-back does not count as a crash.
    push_n(&q, QueueId::Ingest, 1).await;
    for _ in 0..4 {
        let _ = w.lease(1, WAIT).await.unwrap().unwrap();
        w.release().await.unwrap();
    }
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
}

pub async fn unhandled_counter_fires_once_at_the_threshold(q: Arc<dyn Backend>) {
    use mutt_queue::UnhandledKey;
    let key = |host: &str, id: &str| UnhandledKey::new(host, "abcdef0123456789", id, "");
    let expiry = Duration::from_secs(60);
    let mut fired = Vec::new();
    for i in 0..5 {
        fired.extend(q.count_unhandled(&[key("r1", &format!("e{i}"))], 3, expiry).await.unwrap());
    }
    assert_eq!(fired, vec![false, false, true, false, false]);
    // The triggering event, redelivered, fires again (same meta-alert); others do not.
    assert_eq!(q.count_unhandled(&[key("r1", "e2"), key("r1", "e9")], 3, expiry).await.unwrap(), vec![true, false]);
    // Another host counts on its own, within one batch call.
    let batch: Vec<_> = (0..3).map(|i| key("r2", &format!("x{i}"))).collect();
    assert_eq!(q.count_unhandled(&batch, 3, expiry).await.unwrap(), vec![false, false, true]);
}

/// Both backends keep an example message the same way: none for a message seen once so far
/// (one-off messages are most of what goes unhandled), the first one kept stays for its
/// window, and of a batch the first message of a (host, signature) is the one kept.
pub async fn unhandled_examples_are_kept_from_the_second_sighting(q: Arc<dyn Backend>) {
    use mutt_queue::UnhandledKey;
    let key = |host: &str, id: &str, text: &str| UnhandledKey::new(host, "0123456789abcdef", id, text);
    let expiry = Duration::from_secs(60);
    let kept = |host: &'static str| {
        let q = q.clone();
        async move {
            let counts = q.unhandled_counts(100).await.unwrap();
            let c = counts.into_iter().find(|c| c.hostname == host).expect("a counter for the host");
            (c.count, c.message)
        }
    };
    q.count_unhandled(&[key("sw1", "e1", "first")], 100, expiry).await.unwrap();
    assert_eq!(kept("sw1").await, (1, None), "seen once: no example");
    q.count_unhandled(&[key("sw1", "e2", "second")], 100, expiry).await.unwrap();
    q.count_unhandled(&[key("sw1", "e3", "third")], 100, expiry).await.unwrap();
    assert_eq!(kept("sw1").await, (3, Some("second".into())), "kept from the second sighting; the first kept stays");
    // Twice in one batch: the batch's first message; once in a batch: none.
    let batch = [key("sw2", "e4", "sw2 first"), key("sw3", "e5", "sw3 once"), key("sw2", "e6", "sw2 later")];
    q.count_unhandled(&batch, 100, expiry).await.unwrap();
    assert_eq!(kept("sw2").await, (2, Some("sw2 first".into())));
    assert_eq!(kept("sw3").await, (1, None));
    // Reaching a threshold of 1 at the first sighting keeps one (its counter starts over).
    assert_eq!(q.count_unhandled(&[key("sw4", "e7", "fired at once")], 1, expiry).await.unwrap(), vec![true]);
    assert_eq!(kept("sw4").await.1.as_deref(), Some("fired at once"));
}

pub async fn rate_limit_grants_part_of_a_batch(q: Arc<dyn Backend>) {
    let window = Duration::from_secs(5);
    let g = q.rate_limit_take("batch", 10, window, 7).await.unwrap();
    assert_eq!((g.granted, g.retry_after), (7, Duration::ZERO));
    let g = q.rate_limit_take("batch", 10, window, 7).await.unwrap();
    assert_eq!(g.granted, 3, "only what is left");
    assert!(g.retry_after > Duration::ZERO && g.retry_after <= window);
    assert_eq!(q.rate_limit_take("batch", 10, window, 1).await.unwrap().granted, 0);
}

pub async fn circuit_breaker_opens_half_opens_with_one_probe_and_closes(q: Arc<dyn Backend>) {
    use mutt_queue::{BreakerPermit, BreakerState};
    let open_for = Duration::from_millis(600);
    assert_eq!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Go);
    for i in 1..=3 {
        let s = q.breaker_record("moog", false, 3).await.unwrap();
        assert_eq!(s, if i < 3 { BreakerState::Closed } else { BreakerState::Open }, "failure {i}");
    }
    assert_eq!(q.breaker_state("moog").await.unwrap(), (BreakerState::Open, 3));
    assert!(matches!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Wait { .. }));
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    // Half-open: exactly one probe at a time.
    assert_eq!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Probe);
    assert!(matches!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Wait { .. }));
    // The probe fails: open again.
    assert_eq!(q.breaker_record("moog", false, 3).await.unwrap(), BreakerState::Open);
    assert!(matches!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Wait { .. }));
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    assert_eq!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Probe);
    // The probe succeeds: closed, count reset, everyone may go.
    assert_eq!(q.breaker_record("moog", true, 3).await.unwrap(), BreakerState::Closed);
    assert_eq!(q.breaker_state("moog").await.unwrap(), (BreakerState::Closed, 0));
    assert_eq!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Go);
    assert_eq!(q.breaker_acquire("moog", open_for).await.unwrap(), BreakerPermit::Go);
}

pub async fn delivered_ids_are_remembered(q: Arc<dyn Backend>) {
    let ids: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
    assert_eq!(q.already_delivered(&ids).await.unwrap(), vec![false, false, false]);
    q.mark_delivered(&ids[..2], Duration::from_secs(60)).await.unwrap();
    assert_eq!(q.already_delivered(&ids).await.unwrap(), vec![true, true, false]);
}

/// muttd's own ids (UUIDv7s, made in different seconds) and the original's side by side: each
/// is remembered for its own ttl, reported with its expiry, and forgotten after it.
pub async fn delivered_uuidv7s_are_remembered_with_their_expiry(q: Arc<dyn Backend>) {
    let made = |secs_ago: u64| {
        let at = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 0);
        uuid::Uuid::new_v7(ts).to_string()
    };
    let ids: Vec<String> = vec![made(0), made(5), made(5), made(3_600), "legacy-1".into(), made(0)];
    let before = chrono::Utc::now().timestamp_millis();
    q.mark_delivered(&ids[..5], Duration::from_secs(60)).await.unwrap();
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(q.already_delivered(&ids).await.unwrap(), vec![true, true, true, true, true, false]);
    let until = q.delivered_until(&ids).await.unwrap();
    for u in &until[..5] {
        let u = u.expect("recorded");
        assert!((before + 60_000..=after + 60_000).contains(&u), "{u} not 60 s after {before}..{after}");
    }
    assert_eq!(until[5], None);
    // Recorded again later with a longer ttl: the newer record counts.
    q.mark_delivered(&ids[..1], Duration::from_secs(120)).await.unwrap();
    assert!(q.delivered_until(&ids[..1]).await.unwrap()[0].unwrap() >= before + 120_000);
    // A short ttl is forgotten once it has passed, by both kinds of id.
    let brief = vec![made(0), "legacy-2".to_owned()];
    q.mark_delivered(&brief, Duration::from_millis(300)).await.unwrap();
    assert_eq!(q.already_delivered(&brief).await.unwrap(), vec![true, true]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(q.already_delivered(&brief).await.unwrap(), vec![false, false]);
    assert_eq!(q.already_delivered(&ids[..2]).await.unwrap(), vec![true, true], "the others are not");
}

pub async fn dynamic_configuration_is_set_and_read_live(q: Arc<dyn Backend>) {
    assert_eq!(q.config_values(&["alerter_shed_mode"]).await.unwrap(), vec![None]);
    assert_eq!(q.set_config_value("alerter_shed_mode", "defer").await.unwrap(), None);
    assert_eq!(q.config_values(&["alerter_shed_mode", "x"]).await.unwrap(), vec![Some("defer".into()), None]);
    assert_eq!(q.set_config_value("alerter_shed_mode", "dlq").await.unwrap(), Some("defer".into()), "the old value");
    assert_eq!(q.config_values(&["alerter_shed_mode"]).await.unwrap(), vec![Some("dlq".into())]);
    // Listing every key (the API and `muttd config list`), and a delete returning the old value.
    q.set_config_value("moog_rate_limit", "7").await.unwrap();
    let entry = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(q.config_entries().await.unwrap(), [entry("alerter_shed_mode", "dlq"), entry("moog_rate_limit", "7")]);
    assert_eq!(q.delete_config_value("alerter_shed_mode").await.unwrap(), Some("dlq".into()));
    assert_eq!(q.delete_config_value("alerter_shed_mode").await.unwrap(), None, "already gone");
    assert_eq!(q.config_values(&["alerter_shed_mode"]).await.unwrap(), vec![None]);
    assert_eq!(q.config_entries().await.unwrap(), [entry("moog_rate_limit", "7")]);
}

pub async fn configuration_changes_are_announced_to_watchers(q: Arc<dyn Backend>) {
    use tokio_util::sync::CancellationToken;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stop = CancellationToken::new();
    let watcher = {
        let (q, stop) = (q.clone(), stop.clone());
        // `None` (subscribed, or another process wrote) is not a key: only named changes here.
        let on_change = Box::new(move |key: Option<&str>| {
            if let Some(k) = key {
                let _ = tx.send(k.to_owned());
            }
        });
        tokio::spawn(async move { q.watch_config_changes(on_change, stop).await })
    };
    // The watch is in place once a change reaches it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        q.set_config_value("probe", "x").await.unwrap();
        if let Ok(Some(key)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            assert_eq!(key, "probe");
            break;
        }
        assert!(Instant::now() < deadline, "the watch never saw a change");
    }
    while rx.try_recv().is_ok() {}
    // Well within the polling fallbacks (embedded 1 s, settings cache 5 s).
    let t0 = Instant::now();
    q.set_config_value("moog_rate_limit", "7").await.unwrap();
    let key = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.expect("announced").unwrap();
    assert_eq!(key, "moog_rate_limit");
    println!("announced after {:?}", t0.elapsed());
    // A delete is a change too: readers must fall back to their default at once.
    q.delete_config_value("moog_rate_limit").await.unwrap();
    let key = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.expect("delete announced").unwrap();
    assert_eq!(key, "moog_rate_limit");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), watcher).await.expect("a stopped watch returns").unwrap();
}

/// A worker gave up on a lease (an error between lease and settle): the next lease hands it
/// back first instead of joining it, so nothing stays stranded while the worker lives.
pub async fn an_unsettled_lease_is_handed_back_before_the_next(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 5).await;
    let mut c = consumer(&q, "gave-up").await;
    let first = c.lease(3, WAIT).await.unwrap().unwrap();
    assert_eq!(first.len(), 3);
    // No settle. The next lease starts from an empty processing list.
    let second = c.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!(second.messages.iter().map(|m| n_of(m)).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4], "in order");
    assert_ne!(first.token(), second.token());
    assert_eq!(processing_depth(&q.status().await.unwrap(), "gave-up"), 5, "exactly the new lease");
    // The abandoned lease's settle is refused: it would emit for messages it no longer holds.
    let mut s = Settlement::new();
    s.emit(b"from-the-abandoned-lease".to_vec());
    c.settle(&first, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 0);
    assert_eq!(processing_depth(&q.status().await.unwrap(), "gave-up"), 5);
    c.settle(&second, &Settlement::new()).await.unwrap();
    assert_eq!(processing_depth(&q.status().await.unwrap(), "gave-up"), 0);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

/// A settle retried after its reply was lost, arriving when the next lease holds messages with
/// the very same bytes: it must neither remove them nor push anything.
pub async fn a_stale_settle_cannot_touch_the_next_lease(q: Arc<dyn Backend>) {
    let same = br#"{"n":1,"message":"identical"}"#.to_vec();
    q.push(QueueId::Ingest, &[same.clone(), same.clone(), same.clone(), same.clone()]).await.unwrap();
    let mut c = consumer(&q, "stale").await;
    let a = c.lease(2, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.emit(b"alert-a".to_vec());
    c.settle(&a, &s).await.unwrap();
    let b = c.lease(2, WAIT).await.unwrap().unwrap();
    assert_eq!(b.messages, a.messages, "same bytes, another lease");
    c.settle(&a, &s).await.unwrap();
    assert_eq!(processing_depth(&q.status().await.unwrap(), "stale"), 2, "lease b untouched");
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 1, "lease a's alert pushed once");
    c.settle(&b, &Settlement::new()).await.unwrap();
    assert_eq!(processing_depth(&q.status().await.unwrap(), "stale"), 0);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 0);
}

/// A lease handed back (shutdown path, or the alerter's hand-back during an outage) cannot be
/// settled afterwards: its messages are in the queue again, for whoever leases them next.
pub async fn a_settle_after_release_changes_nothing(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Ingest, 3).await;
    let mut c = consumer(&q, "released").await;
    let lease = c.lease(3, WAIT).await.unwrap().unwrap();
    assert_eq!(c.release().await.unwrap(), 3);
    let mut s = Settlement::new();
    s.emit(b"alert".to_vec());
    s.dead_letter(&lease.messages[0], "x", "y");
    c.settle(&lease, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 3);
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 0);
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 0);
    let got: Vec<u64> = drain(&mut c).await.iter().map(|m| n_of(m)).collect();
    assert_eq!(got, vec![0, 1, 2]);
}

/// Settling the same lease twice (a retry after an error whose reply was lost) pushes once,
/// whatever the settlement holds.
pub async fn settling_twice_pushes_once(q: Arc<dyn Backend>) {
    let policy = RetryPolicy { field: "_retry_count", max_retries: 3 };
    push_n(&q, QueueId::Ingest, 4).await;
    let mut c = consumer(&q, "twice").await;
    let lease = c.lease(4, WAIT).await.unwrap().unwrap();
    let mut s = Settlement::new();
    s.emit(b"alert".to_vec());
    s.put_back(&lease.messages[0]);
    s.retry(policy, &lease.messages[1], Duration::from_secs(60), "later");
    s.dead_letter(&lease.messages[2], "bad", "x");
    c.settle(&lease, &s).await.unwrap();
    c.settle(&lease, &s).await.unwrap();
    assert_eq!(q.depth(QueueId::Alert).await.unwrap(), 1);
    assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 1, "the put-back message, once");
    assert_eq!(q.dead_letter_depth(WorkerRole::Alerter).await.unwrap(), 1);
    let status = q.status().await.unwrap();
    let delayed: u64 = status.delayed_retries.iter().map(|d| d.depth).sum();
    assert_eq!(delayed, 1);
    assert_eq!(processing_depth(&status, "twice"), 0);
}

fn flap(rule_id: i32, host: &str, id: &str, threshold: u64) -> mutt_queue::FlapEvent {
    mutt_queue::FlapEvent {
        rule_id,
        hostname: host.into(),
        event_id: id.into(),
        threshold,
        window: Duration::from_secs(1),
        raw: format!(r#"{{"id":"{id}"}}"#).into_bytes(),
    }
}

/// A claim's lease in these tests: long enough for none to expire within a test's step.
const LEASE: Duration = Duration::from_secs(30);

/// Claims (for [`LEASE`]) until `want` summaries came or 5 s passed (the windows close after
/// 1 s).
async fn claim_summaries(q: &Arc<dyn Backend>, want: usize, lease: Duration) -> Vec<mutt_queue::FlapSummary> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(q.flap_claim_due(10, lease).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// Acknowledgements of claimed windows with a summary each (`summary <host>`).
fn acks(summaries: &[mutt_queue::FlapSummary]) -> Vec<mutt_queue::FlapAck> {
    let ack = |s: &mutt_queue::FlapSummary| mutt_queue::FlapAck {
        claim: s.claim.clone(),
        summary: Some(format!("summary {}", s.hostname).into_bytes()),
    };
    summaries.iter().map(ack).collect()
}

/// The alert queue's messages (as text), taken off it.
async fn drain_alerts(q: &Arc<dyn Backend>) -> Vec<String> {
    let mut c = q.consumer(config(WorkerRole::Forwarder, "flap-f")).await.unwrap();
    let all = drain(&mut c).await;
    c.shutdown().await.unwrap();
    all.into_iter().map(|m| String::from_utf8(m).unwrap()).collect()
}

pub async fn flap_windows_forward_up_to_the_threshold_and_are_claimed_once(q: Arc<dyn Backend>) {
    use mutt_queue::FlapVerdict::{Forward as F, Suppress as S};
    let burst: Vec<_> = (0..5).map(|i| flap(1, "r1", &format!("e{i}"), 2)).collect();
    assert_eq!(q.flap_count(&burst).await.unwrap(), vec![F, F, S, S, S]);
    // Redelivered events keep their verdicts and are not counted again; another host and
    // another rule count on their own.
    let again = [flap(1, "r1", "e0", 2), flap(1, "r1", "e3", 2), flap(1, "r2", "x", 2), flap(2, "r1", "y", 2)];
    assert_eq!(q.flap_count(&again).await.unwrap(), vec![F, S, F, F]);
    assert!(q.flap_claim_due(10, LEASE).await.unwrap().is_empty(), "nothing is due before the window closes");
    let got = claim_summaries(&q, 1, LEASE).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let s = &got[0];
    assert_eq!((s.rule_id, s.hostname.as_str(), s.count, s.suppressed), (1, "r1", 5, 3));
    assert_eq!(s.window, Duration::from_secs(1));
    assert_eq!(s.last_event, br#"{"id":"e4"}"#.to_vec(), "the latest suppressed event");
    assert!(s.closed_at_ms <= chrono::Utc::now().timestamp_millis());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(q.flap_claim_due(10, LEASE).await.unwrap().is_empty(), "leased once; quiet windows have no summary");
    // The next event opens a new window and is forwarded.
    assert_eq!(q.flap_count(&[flap(1, "r1", "e5", 2)]).await.unwrap(), vec![F]);
    // Acknowledged (twice: a retry after a lost reply): the summary is queued once.
    assert_eq!(q.flap_ack(&acks(&got)).await.unwrap(), 1);
    assert_eq!(q.flap_ack(&acks(&got)).await.unwrap(), 0);
    assert_eq!(drain_alerts(&q).await, ["summary r1"]);
    // The acknowledgements left the open window alone: its event keeps its verdict and counts.
    let next = [flap(1, "r1", "e5", 2), flap(1, "r1", "e6", 2), flap(1, "r1", "e7", 2)];
    assert_eq!(q.flap_count(&next).await.unwrap(), vec![F, F, S]);
}

/// The crash between claiming a window and queuing its summary: a claim not acknowledged is
/// handed out again once its lease expired (the same window, a claim of its own), and the
/// late acknowledgement of the claim taken over queues nothing; an acknowledged window is
/// never handed out again. Each summary is queued exactly once.
pub async fn a_flap_claim_not_acknowledged_is_claimed_again_after_its_lease(q: Arc<dyn Backend>) {
    use mutt_queue::FlapVerdict::{Forward as F, Suppress as S};
    let lease = Duration::from_millis(800);
    let a = [flap(3, "a", "a0", 1), flap(3, "a", "a1", 1), flap(3, "a", "a2", 1)];
    let b = [flap(3, "b", "b0", 1), flap(3, "b", "b1", 1)];
    assert_eq!(q.flap_count(&a).await.unwrap(), vec![F, S, S]);
    assert_eq!(q.flap_count(&b).await.unwrap(), vec![F, S]);
    let mut first = claim_summaries(&q, 2, lease).await;
    first.sort_by(|x, y| x.hostname.cmp(&y.hostname));
    assert_eq!(first.iter().map(|s| (s.hostname.as_str(), s.count)).collect::<Vec<_>>(), [("a", 3), ("b", 2)]);
    // b's claimer acknowledges; a's dies before that.
    assert_eq!(q.flap_ack(&acks(&first[1..])).await.unwrap(), 1);
    assert!(q.flap_claim_due(10, lease).await.unwrap().is_empty(), "both within their lease or done");
    // Names that are no claim change nothing.
    assert_eq!(q.flap_count(&[flap(3, "c", "c0", 1)]).await.unwrap(), vec![F]);
    let junk = ["3:c", "1:1:1", "junk", "", "x#1"]
        .map(|c| mutt_queue::FlapAck { claim: c.into(), summary: Some(b"junk".to_vec()) });
    assert_eq!(q.flap_ack(&junk).await.unwrap(), 0);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let again = claim_summaries(&q, 1, LEASE).await;
    assert_eq!(again.len(), 1, "{again:?}");
    let (x, y) = (&first[0], &again[0]);
    assert_eq!((x.rule_id, &x.hostname, x.closed_at_ms), (y.rule_id, &y.hostname, y.closed_at_ms));
    assert_ne!(x.claim, y.claim, "a claim of its own");
    assert_eq!((y.count, y.suppressed, y.last_event.clone()), (3, 2, br#"{"id":"a2"}"#.to_vec()));
    // The first claimer was only slow: its late acknowledgement queues nothing; the second's
    // queues the summary.
    assert_eq!(q.flap_ack(&acks(&first[..1])).await.unwrap(), 0);
    assert_eq!(q.flap_ack(&acks(&again)).await.unwrap(), 1);
    assert_eq!(q.flap_ack(&acks(&first[..1])).await.unwrap(), 0);
    let mut queued = drain_alerts(&q).await;
    queued.sort();
    assert_eq!(queued, ["summary a", "summary b"], "each once");
    assert_eq!(q.flap_count(&[flap(3, "c", "c0", 1), flap(3, "c", "c1", 1)]).await.unwrap(), vec![F, S]);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let left = claim_summaries(&q, 1, LEASE).await;
    assert_eq!(
        left.iter().map(|s| (s.hostname.as_str(), s.count)).collect::<Vec<_>>(),
        [("c", 2)],
        "a and b never again"
    );
}

pub async fn a_closed_flap_window_waits_for_its_claim_while_the_next_one_counts(q: Arc<dyn Backend>) {
    use mutt_queue::FlapVerdict::{Forward as F, Suppress as S};
    let first = [flap(7, "core-1", "a", 1), flap(7, "core-1", "b", 1)];
    assert_eq!(q.flap_count(&first).await.unwrap(), vec![F, S]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Not claimed yet: the next event opens a new window, the closed one is kept.
    let second = [flap(7, "core-1", "c", 1), flap(7, "core-1", "d", 1), flap(7, "core-1", "e", 1)];
    assert_eq!(q.flap_count(&second).await.unwrap(), vec![F, S, S]);
    // Two claimers at once: the closed window goes to one of them.
    let (x, y) = tokio::join!(q.flap_claim_due(10, LEASE), q.flap_claim_due(10, LEASE));
    let now: Vec<_> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(now.iter().map(|s| (s.count, s.suppressed)).collect::<Vec<_>>(), vec![(2, 1)], "{now:?}");
    let later = claim_summaries(&q, 1, LEASE).await;
    assert_eq!(later.iter().map(|s| (s.count, s.suppressed)).collect::<Vec<_>>(), vec![(3, 2)]);
    assert_eq!(later[0].last_event, br#"{"id":"e"}"#.to_vec());
}

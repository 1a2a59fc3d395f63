//! The Redis queue behind a fault proxy (mutt_testkit::FaultProxy): calls end in bounded time
//! when Redis goes silent, and lost replies to leases and settles neither lose nor duplicate a
//! message.

use mutt_core::PodName;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Consumer, ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use mutt_testkit::{FaultMode, FaultProxy};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rig {
    proxy: Arc<FaultProxy>,
    /// Straight to Redis: the test's own view.
    direct: RedisQueue,
    /// Through the proxy: the worker's.
    via: RedisQueue,
}

/// `redis://host:port/db` → (`host:port`, `/db`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("redis://");
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), String::new()),
    }
}

async fn rig() -> Rig {
    let (target, db) = split_url(&mutt_testkit::redis_url());
    let proxy = FaultProxy::start(target).await.unwrap();
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let direct = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys.clone())).await.unwrap();
    let via = RedisQueue::connect(&RedisConfig::single(format!("redis://{}{db}", proxy.addr()), keys)).await.unwrap();
    Rig { proxy: Arc::new(proxy), direct, via }
}

fn msg(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i}}}").into_bytes()
}

fn n_of(raw: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
    v["n"].as_u64().unwrap() as usize
}

async fn consumer(q: &RedisQueue, pod: &str) -> Box<dyn Consumer> {
    q.consumer(ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(pod).unwrap())).await.unwrap()
}

async fn all_of(q: &RedisQueue, key: &str) -> Vec<Vec<u8>> {
    let mut c = q.connection();
    redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut c).await.unwrap()
}

/// Nothing in any processing list, no lease token left.
async fn assert_nothing_leased(q: &RedisQueue) {
    let status = q.status().await.unwrap();
    let held: u64 = status.processing_lists.iter().map(|p| p.depth).sum();
    assert_eq!(held, 0, "{status:?}");
    let mut c = q.connection();
    let tokens: u64 = redis::cmd("HLEN")
        .arg(format!("{}:leases", q.keys().workers(WorkerRole::Alerter)))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "no lease token left behind");
}

#[tokio::test]
async fn a_blackholed_redis_ends_lease_calls_in_bounded_time_and_work_resumes_after() {
    let rig = rig().await;
    let mut c = consumer(&rig.via, "blackholed").await;
    // A BLMOVE already waiting when the path goes silent: its reply never comes.
    let wait = Duration::from_secs(1);
    let t0 = Instant::now();
    let pending = tokio::spawn(async move {
        let r = c.lease(10, wait).await;
        (c, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.proxy.set_mode(FaultMode::Blackhole);
    let (mut c, r) = tokio::time::timeout(Duration::from_secs(30), pending).await.expect("no hang").unwrap();
    let blmove = t0.elapsed();
    let e = r.expect_err("the reply never came");
    assert!(e.is_connection(), "{e}");
    assert!(
        blmove < wait + mutt_queue::redis::BLOCKING_MARGIN + Duration::from_secs(2),
        "BLMOVE gave up after {blmove:?}"
    );
    // A non-blocking call on the shared connection ends at the response timeout.
    let t0 = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), c.lease(10, wait)).await.expect("no hang");
    assert!(r.is_err());
    let shared = t0.elapsed();
    assert!(
        shared < mutt_queue::redis::connection::RESPONSE_TIMEOUT + Duration::from_secs(3),
        "gave up after {shared:?}"
    );
    println!("blackhole: BLMOVE failed after {blmove:?}, the lease script after {shared:?}");
    // The path comes back: the worker gets going again without a restart.
    rig.direct.push(QueueId::Ingest, &[msg(0), msg(1), msg(2)]).await.unwrap();
    rig.proxy.set_mode(FaultMode::Pass);
    let t0 = Instant::now();
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(40), "no recovery after the blackhole: {got:?}");
        match c.lease(10, Duration::from_millis(200)).await {
            Ok(Some(lease)) => {
                if c.settle(&lease, &Settlement::new()).await.is_ok() {
                    got.extend(lease.messages.iter().map(|m| n_of(m)));
                }
            }
            Ok(None) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    println!("recovered {:?} after the path came back", t0.elapsed());
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
    c.shutdown().await.unwrap();
    assert_nothing_leased(&rig.direct).await;
}

async fn push_range(q: &RedisQueue, range: std::ops::Range<usize>) {
    let all: Vec<Vec<u8>> = range.map(msg).collect();
    for chunk in all.chunks(500) {
        q.push(QueueId::Ingest, chunk).await.unwrap();
    }
}

/// Settles with up to two attempts, then gives the lease up (as the forwarder does after its
/// retries), leaving the hand-back to `release` or the next lease. Returns (settled, failed
/// attempts).
async fn settle_or_give_up(c: &mut Box<dyn Consumer>, lease: &mutt_queue::Lease, s: &Settlement) -> (bool, usize) {
    for failed in 0..2 {
        if c.settle(lease, s).await.is_ok() {
            return (true, failed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = c.release().await;
    (false, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_resets_and_delays_lose_and_duplicate_nothing() {
    let rig = rig().await;
    // 3,000 messages, and 1,000 more at a time until both a lost reply and a reset happened.
    let mut total = 3000;
    push_range(&rig.direct, 0..total).await;
    let mut c = consumer(&rig.via, "chaotic").await;
    // Faults switch every 15 ms while the worker runs. Every tenth cycle the reset lasts 250 ms:
    // short slots alone can phase-lock with the client's reconnects so that no connection is
    // ever open (or opening) during one (seen in CI: 614 lost replies, 0 resets in 60 s).
    let stop = tokio_util::sync::CancellationToken::new();
    let chaos = {
        let (stop, proxy) = (stop.clone(), rig.proxy.clone());
        let modes = [
            FaultMode::Pass,
            FaultMode::DropReplies,
            FaultMode::Pass,
            FaultMode::Reset,
            FaultMode::Delay(Duration::from_millis(30)),
            FaultMode::DropReplies,
        ];
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let mode = modes[i % modes.len()];
                proxy.set_mode(mode);
                let long_reset = mode == FaultMode::Reset && (i / modes.len()) % 10 == 9;
                i += 1;
                tokio::time::sleep(Duration::from_millis(if long_reset { 250 } else { 15 })).await;
            }
            proxy.set_mode(FaultMode::Pass);
        })
    };
    let (mut settled, mut given_up, mut errors, mut settle_errors) = (0usize, 0usize, 0usize, 0usize);
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(180), "stuck: {settled} leases settled");
        let k = rig.proxy.counts();
        if (k.replies_dropped > 0 && k.resets > 0) || t0.elapsed() > Duration::from_secs(60) {
            stop.cancel(); // the rest without faults
        }
        if rig.direct.depth(QueueId::Alert).await.unwrap() >= total as u64 {
            if stop.is_cancelled() {
                break;
            }
            push_range(&rig.direct, total..total + 1000).await;
            total += 1000;
        }
        match c.lease(10, Duration::from_millis(100)).await {
            Ok(Some(lease)) => {
                let mut s = Settlement::new();
                for m in &lease.messages {
                    s.emit(m.clone());
                }
                let (ok, failed) = settle_or_give_up(&mut c, &lease, &s).await;
                settle_errors += failed;
                if ok {
                    settled += 1;
                } else {
                    given_up += 1;
                }
            }
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    stop.cancel();
    chaos.await.unwrap();
    c.shutdown().await.unwrap();
    let counts = rig.proxy.counts();
    println!(
        "{total} messages in {:?}: {settled} leases settled, {settle_errors} settle errors, {given_up} given up, {errors} lease errors; proxy: {} replies dropped, {} resets",
        t0.elapsed(),
        counts.replies_dropped,
        counts.resets
    );
    assert!(counts.replies_dropped > 0 && counts.resets > 0, "the faults happened: {counts:?}");
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for m in all_of(&rig.direct, &rig.direct.keys().alert_queue).await {
        *seen.entry(n_of(&m)).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "emitted more than once: {twice:?}");
    assert_eq!(seen.len(), total, "every message emitted");
    assert_eq!(rig.direct.depth(QueueId::Ingest).await.unwrap(), 0);
    assert_nothing_leased(&rig.direct).await;
}

/// A janitor that recovers a lease while its worker settles it (the worker looked dead): each
/// message ends either settled (its alert emitted, the message gone) or back in the queue with
/// no alert, never both and never neither, whichever of the two gets there first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_racing_a_janitor_recovery_applies_once_or_not_at_all() {
    let r = rig().await;
    let q = &r.direct;
    let keys = q.keys().clone();
    let mut worker = consumer(q, "racer").await;
    let janitor = consumer(q, "janitor").await;
    let mut c = q.connection();
    let (mut settled, mut recovered) = (0, 0);
    for i in 0..150 {
        q.push(QueueId::Ingest, &[msg(i)]).await.unwrap();
        let lease = worker.lease(1, Duration::from_secs(1)).await.unwrap().expect("the message");
        // The worker looks dead to the janitor from now on.
        let _: () =
            redis::cmd("DEL").arg(keys.heartbeat(WorkerRole::Alerter, "racer")).query_async(&mut c).await.unwrap();
        let mut s = Settlement::new();
        s.emit(format!("{{\"alert\":{i}}}").into_bytes());
        // The janitor takes a while to find the pod; the settle starts 0–3 ms later so that
        // either can get there first.
        let settle = async {
            tokio::time::sleep(Duration::from_millis(i as u64 % 4)).await;
            worker.settle(&lease, &s).await
        };
        let (settle, recover) = tokio::join!(settle, janitor.recover_dead_workers());
        settle.unwrap();
        recover.unwrap();
        let (alerts, back) = (q.depth(QueueId::Alert).await.unwrap(), q.depth(QueueId::Ingest).await.unwrap());
        assert_eq!(alerts + back, 1, "message {i}: {alerts} alert(s) emitted, {back} back in the queue");
        assert_nothing_leased(q).await;
        if alerts == 1 {
            settled += 1
        } else {
            recovered += 1
        }
        for k in [
            keys.queue(QueueId::Alert).to_owned(),
            keys.events(QueueId::Alert),
            keys.queue(QueueId::Ingest).to_owned(),
            keys.events(QueueId::Ingest),
        ] {
            let _: () = redis::cmd("DEL").arg(k).query_async(&mut c).await.unwrap();
        }
    }
    // Both outcomes happen (the race is real), each counted above as exactly one.
    assert!(settled > 0, "no settle won ({recovered} recoveries)");
    assert!(recovered > 0, "no recovery won ({settled} settles)");
}

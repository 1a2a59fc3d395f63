//! The forwarder's loop and its watchdog: a pause (breaker open) is not a stall, while a loop
//! whose queue calls keep failing stops reporting progress.

use mutt_core::Alert;
use mutt_forwarder::{Destination, Forwarder, ForwarderConfig, ForwarderMetrics};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Queue, QueueId, WorkerRole};
use mutt_service::Watchdog;
use mutt_testkit::{FaultMode, FaultProxy, ReceiverMode, WebhookReceiver};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn alert(n: usize) -> Vec<u8> {
    Alert {
        hostname: format!("h{n}"),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: format!("CRITICAL {n}"),
        raw_json: serde_json::json!({"n": n}),
        correlation_id: "c".into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(1),
        handling: Some("Page_and_ticket".into()),
    }
    .to_json()
    .into_bytes()
}

fn config(receiver: &WebhookReceiver) -> ForwarderConfig {
    ForwarderConfig {
        destination: Destination::Webhook(receiver.url()),
        api_key: Some(mutt_core::Secret::new("moog-key")),
        timeout: Duration::from_millis(500),
        block_timeout: Duration::from_millis(100),
        rate_limit: None,
        // One failure opens the breaker for 8 s: far longer than the stall timeout below.
        breaker: Some((1, Duration::from_secs(8))),
        ..ForwarderConfig::default()
    }
}

async fn forwarder(queue: &RedisQueue, receiver: &WebhookReceiver, watchdog: Watchdog) -> Forwarder {
    let cc = mutt_testapp::fixtures::consumer(WorkerRole::Forwarder, "w");
    let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
    let q = Arc::new(queue.clone());
    Forwarder::start(q.clone(), q, cc, config(receiver), metrics).await.unwrap().with_watchdog(watchdog)
}

#[tokio::test]
async fn an_open_breaker_is_a_pause_not_a_stall() {
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let queue = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), keys)).await.unwrap();
    let receiver = WebhookReceiver::start().await;
    receiver.set_mode(ReceiverMode::Status(503));
    queue.push(QueueId::Alert, &[alert(1), alert(2)]).await.unwrap();
    let dog = Watchdog::new(Duration::from_secs(2));
    let f = forwarder(&queue, &receiver, dog.clone()).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run(stop.clone()));
    // The first delivery fails and opens the breaker; the loop then waits for 8 s.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(dog.check().is_ok(), "{:?}", dog.check());
    }
    assert!(receiver.counts().requests >= 1);
    stop.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn a_loop_whose_queue_calls_keep_failing_stops_reporting_progress() {
    let (target, db) = {
        let url = mutt_testkit::redis_url();
        let rest = url.trim_start_matches("redis://").to_owned();
        let (hostport, path) =
            rest.split_once('/').map_or((rest.clone(), String::new()), |(h, p)| (h.into(), p.into()));
        (hostport, path)
    };
    let proxy = FaultProxy::start(target).await.unwrap();
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let url = format!("redis://{}/{db}", proxy.addr());
    let queue = RedisQueue::connect(&RedisConfig::single(url, keys)).await.unwrap();
    let receiver = WebhookReceiver::start().await;
    let dog = Watchdog::new(Duration::from_secs(2));
    let f = forwarder(&queue, &receiver, dog.clone()).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dog.check().is_ok(), "idle, but leasing: progress");
    proxy.set_mode(FaultMode::Reset);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = dog.check().expect_err("every lease fails: no progress");
    assert!(stalled.contains("no progress"), "{stalled}");
    proxy.set_mode(FaultMode::Pass);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while dog.check().is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no progress after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the loop stops").unwrap();
}

/// A stop request while Redis is away and a batch's settle keeps failing: the loop makes one
/// last attempt and ends (within seconds, not after the settle's ~50 retries over minutes, which
/// a supervisor's stop timeout would cut with SIGKILL), and the alert stays leased for a janitor.
#[tokio::test]
async fn a_stop_request_ends_a_settle_that_keeps_failing() {
    let url = mutt_testkit::redis_url();
    let rest = url.trim_start_matches("redis://").to_owned();
    let (target, db) = rest.split_once('/').map_or((rest.clone(), String::new()), |(h, p)| (h.into(), p.into()));
    let proxy = FaultProxy::start(target).await.unwrap();
    let keys = KeySpace::with_prefix(&mutt_testkit::unique_prefix());
    let queue =
        RedisQueue::connect(&RedisConfig::single(format!("redis://{}/{db}", proxy.addr()), keys)).await.unwrap();
    let receiver = WebhookReceiver::start().await;
    // The delivery waits for the forwarder's timeout (500 ms), long enough to cut Redis off.
    receiver.set_mode(ReceiverMode::Hang);
    let f = forwarder(&queue, &receiver, Watchdog::new(Duration::from_secs(60))).await;
    queue.push(QueueId::Alert, &[alert(1)]).await.unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.counts().requests == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the alert was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.set_mode(FaultMode::Reset);
    // The timeout fails the delivery; settling its retry fails against the reset connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(8), run).await;
    assert!(stopped.is_ok(), "the forwarder kept retrying its settle after the stop request");
    proxy.set_mode(FaultMode::Pass);
    let status = queue.status().await.unwrap();
    let leased: u64 =
        status.processing_lists.iter().filter(|l| l.role == WorkerRole::Forwarder.key_tag()).map(|l| l.depth).sum();
    assert_eq!(leased, 1, "the unsettled alert stays leased for a janitor: {:?}", status.processing_lists);
    assert_eq!(queue.depth(QueueId::Alert).await.unwrap(), 0);
}

//! Counting tests with network faults between the forwarder and the webhook: two forwarders
//! (on real Redis, and on the embedded backend) deliver thousands of alerts through a [`FaultProxy`] to the test receiver,
//! which counts every alert by its event id; halfway through, the proxy turns to a fault mode
//! for a while, then passes again.
//!
//! Every alert must reach the receiver at least once; nothing may be left in the queue, the
//! delayed retries, the DLQ or a processing list. Duplicates are allowed only for alerts the
//! receiver accepted in a request whose reply the forwarder never got (dropped by the proxy,
//! cut by a reset or a blackhole, or later than the request timeout): those were retried and
//! delivered again, and the assertions count and explain them.

use mutt_core::{Alert, PodName};
use mutt_forwarder::metrics::{RequestLabels, StatusLabel};
use mutt_forwarder::{Destination, Forwarder, ForwarderConfig, ForwarderMetrics, LamAuth, OutputFormat};
use mutt_queue::redis::KeySpace;
use mutt_queue::{ConsumerConfig, QueueId, WorkerRole};
use mutt_testapp::{BackendKind, Site, TestBackend};
use mutt_testkit::{FaultMode, FaultProxy, ProxyCounts, ReceiverOptions, WebhookReceiver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Alerts per test.
const ALERTS: usize = 4000;
/// Alerts per REST LAM request.
const LAM_BATCH: usize = 50;
/// How long the fault lasts.
const FAULT_FOR: Duration = Duration::from_secs(3);
/// The whole run's bound.
const DEADLINE: Duration = Duration::from_secs(45);

/// Event id → times the receiver accepted it.
type Seen = Arc<Mutex<HashMap<String, u32>>>;

struct Run {
    site: Site,
    backend: TestBackend,
    receiver: WebhookReceiver,
    proxy: FaultProxy,
    seen: Seen,
    metrics: ForwarderMetrics,
    shutdown: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

fn alert(i: usize) -> Vec<u8> {
    Alert {
        hostname: format!("h{i}"),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: format!("link down {i}"),
        raw_json: serde_json::json!({"hostname": format!("h{i}"), "message": format!("link down {i}")}),
        correlation_id: "c".into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(1),
        handling: Some("Page_and_ticket".into()),
    }
    .to_json()
    .into_bytes()
}

fn config(url: String) -> ForwarderConfig {
    ForwarderConfig {
        destination: Destination::Webhook(url),
        format: OutputFormat::MoogRestLam,
        lam_auth: LamAuth::Token(mutt_core::Secret::new("fault-key")),
        lam_batch_size: LAM_BATCH,
        batch_size: 100,
        timeout: Duration::from_secs(1),
        block_timeout: Duration::from_millis(100),
        // Nothing may reach the DLQ because of a passing fault.
        max_retries: 1000,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        // About 4 s of load at 1,000 alerts/s, so that the fault hits it in the middle.
        rate_limit: Some((1000, Duration::from_secs(1))),
        breaker: Some((5, Duration::from_millis(500))),
        ..ForwarderConfig::default()
    }
}

impl Run {
    async fn start(kind: BackendKind) -> Self {
        let site = Site::fresh(kind).await;
        let backend = site.open().await;
        let seen: Seen = Arc::default();
        let s2 = seen.clone();
        let options = ReceiverOptions::counting().on_events(move |events, _| {
            let mut seen = s2.lock().unwrap();
            for e in events {
                *seen.entry(e["external_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        });
        let receiver = WebhookReceiver::start_with(options).await;
        let proxy = FaultProxy::start(receiver.addr().to_string()).await.unwrap();
        let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
        let alerts: Vec<Vec<u8>> = (0..ALERTS).map(alert).collect();
        for chunk in alerts.chunks(1000) {
            backend.queue.push(QueueId::Alert, chunk).await.unwrap();
        }
        let shutdown = CancellationToken::new();
        let mut workers = Vec::new();
        for n in 0..2 {
            let pod = PodName::parse(format!("fault-{n}")).unwrap();
            let cc = ConsumerConfig::new(WorkerRole::Forwarder, pod);
            let url = format!("http://{}/events", proxy.addr());
            let (q, coordination) = (backend.queue.clone(), backend.coordination.clone());
            let f = Forwarder::start(q, coordination, cc, config(url), metrics.clone()).await.unwrap();
            workers.push(tokio::spawn(f.run(shutdown.clone())));
        }
        Self { site, backend, receiver, proxy, seen, metrics, shutdown, workers }
    }

    fn unique(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    async fn wait_until(&self, what: &str, started: Instant, mut done: impl AsyncFnMut() -> bool) {
        while !done().await {
            assert!(started.elapsed() < DEADLINE, "{what} within {DEADLINE:?}; {}", self.state().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Alerts still (queued, delayed, dead-lettered, leased), read where the backend keeps them.
    async fn left(&self) -> (u64, u64, u64, u64) {
        let queued = self.backend.queue.depth(QueueId::Alert).await.unwrap_or(u64::MAX);
        match self.site.kind() {
            BackendKind::RedisPostgres => self.left_in_redis(queued).await,
            BackendKind::Embedded => self.left_in_sqlite(queued).await,
        }
    }

    async fn left_in_redis(&self, queued: u64) -> (u64, u64, u64, u64) {
        let k = KeySpace::with_prefix(self.site.key_prefix().unwrap());
        let client = redis::Client::open(self.site.redis_url().unwrap()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let delayed: u64 =
            redis::cmd("ZCARD").arg(k.delayed(QueueId::Alert)).query_async(&mut c).await.unwrap_or(u64::MAX);
        let dlq: u64 = redis::cmd("LLEN").arg(&k.moog_dlq).query_async(&mut c).await.unwrap_or(u64::MAX);
        let mut processing = 0;
        for n in 0..2 {
            let list = k.processing_list(WorkerRole::Forwarder, &format!("fault-{n}"));
            processing += redis::cmd("LLEN").arg(list).query_async::<u64>(&mut c).await.unwrap_or(u64::MAX);
        }
        (queued, delayed, dlq, processing)
    }

    async fn left_in_sqlite(&self, queued: u64) -> (u64, u64, u64, u64) {
        let db = mutt_sqlite::Database::open(self.site.data_file().unwrap(), Default::default()).unwrap();
        let dlq = KeySpace::default().moog_dlq;
        db.read(move |c| {
            let count = |sql: &str| c.query_row(sql, [&dlq], |r| r.get::<_, i64>(0)).map(|n| n as u64);
            // The site is fresh: every delayed row is an alert retry.
            let delayed = c.query_row("SELECT count(*) FROM queue_delayed", [], |r| r.get::<_, i64>(0))? as u64;
            Ok((
                queued,
                delayed,
                count("SELECT count(*) FROM queue_message WHERE queue = ?1")?,
                count(
                    "SELECT count(*) FROM queue_lease l JOIN queue_message m ON m.id = l.message_id
                     WHERE m.queue <> ?1",
                )?,
            ))
        })
        .await
        .unwrap()
    }

    async fn state(&self) -> String {
        let (queued, delayed, dlq, processing) = self.left().await;
        format!(
            "{} of {ALERTS} alerts seen; queued {queued}, delayed {delayed}, DLQ {dlq}, processing {processing}; \
             receiver {:?}; proxy {:?}",
            self.unique(),
            self.receiver.counts(),
            self.proxy.counts()
        )
    }

    fn requests(&self, status: &'static str, reason: &'static str) -> u64 {
        self.metrics.requests.get_or_create(&RequestLabels { status, reason }).get()
    }

    fn alerts_delivered(&self) -> u64 {
        self.metrics.alerts_processed.get_or_create(&StatusLabel { status: "success" }).get()
    }
}

/// What a run came to, for the assertions.
#[derive(Debug)]
struct Outcome {
    proxy: ProxyCounts,
    /// Alerts the receiver accepted more than once, counted once per extra copy.
    duplicates: u64,
    /// Requests the receiver accepted whose success the forwarder never saw (reply lost).
    replies_lost: u64,
    /// Requests the forwarder saw fail (connection error, reset, timeout, 5xx).
    failed_requests: u64,
}

/// Delivers [`ALERTS`] alerts, with `mode` in force for [`FAULT_FOR`] once a quarter went out.
async fn run_with_fault(kind: BackendKind, mode: FaultMode) -> Outcome {
    let mut run = Run::start(kind).await;
    let started = Instant::now();
    run.wait_until("a quarter delivered before the fault", started, async || run.unique() >= ALERTS / 4).await;
    assert!(run.unique() < ALERTS * 3 / 4, "the fault must hit the load: {}", run.state().await);
    run.proxy.set_mode(mode);
    tokio::time::sleep(FAULT_FOR).await;
    run.proxy.set_mode(FaultMode::Pass);
    run.wait_until("every alert delivered", started, async || run.unique() == ALERTS).await;
    run.wait_until("nothing left", started, async || run.left().await == (0, 0, 0, 0)).await;
    run.shutdown.cancel();
    for w in run.workers.drain(..).collect::<Vec<_>>() {
        tokio::time::timeout(Duration::from_secs(10), w).await.expect("forwarders stop").unwrap();
    }
    assert_eq!(run.left().await, (0, 0, 0, 0), "nothing left after shutdown: {}", run.state().await);
    let counts = run.receiver.counts();
    let delivered = run.alerts_delivered();
    assert_eq!(delivered, ALERTS as u64, "the forwarders settled each alert as delivered exactly once");
    let copies: u64 = run.seen.lock().unwrap().values().map(|&n| u64::from(n)).sum();
    assert_eq!(copies, counts.events);
    let outcome = Outcome {
        proxy: run.proxy.counts(),
        duplicates: copies - ALERTS as u64,
        replies_lost: counts.accepted - run.requests("success", ""),
        failed_requests: run.requests("fail", "http"),
    };
    check_duplicates_are_lost_replies(&outcome);
    outcome
}

/// A duplicate can only be an alert of a request the receiver accepted and whose reply was
/// lost: the forwarder saw that request fail, retried its alerts and delivered them again.
fn check_duplicates_are_lost_replies(o: &Outcome) {
    assert!(
        o.duplicates <= o.replies_lost * LAM_BATCH as u64,
        "{} duplicates, but only {} requests (of up to {LAM_BATCH} alerts) were accepted by the receiver without \
         the forwarder seeing the reply: {o:?}",
        o.duplicates,
        o.replies_lost
    );
    assert!(o.replies_lost <= o.failed_requests, "a lost reply is a failed request for the forwarder: {o:?}");
    if o.duplicates > 0 {
        eprintln!(
            "{} duplicate alerts, explained: the receiver accepted {} requests whose replies never reached the \
             forwarder in time (the proxy dropped {} replies, reset {} and blackholed {} connections; any other \
             reply came after the request timeout); those alerts were retried and delivered again. {o:?}",
            o.duplicates, o.replies_lost, o.proxy.replies_dropped, o.proxy.resets, o.proxy.blackholed
        );
    }
}

/// Each `async fn name(kind)` as `name::redis` and `name::embedded`, on a two-thread runtime
/// (the forwarders, the proxy and the receiver share it).
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$test(mutt_testapp::BackendKind::RedisPostgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$test(mutt_testapp::BackendKind::Embedded).await
                }
            }
        )+
    };
}

on_both_backends!(
    pass_delivers_every_alert_exactly_once,
    delay_below_the_timeout_delivers_every_alert_exactly_once,
    delay_beyond_the_timeout_retries_and_counts_late_replies_as_duplicates,
    blackhole_times_out_and_every_alert_arrives_after_it,
    reset_fails_fast_and_every_alert_arrives_after_it,
    dropped_replies_are_redelivered_and_counted_as_duplicates,
);

async fn pass_delivers_every_alert_exactly_once(kind: BackendKind) {
    let o = run_with_fault(kind, FaultMode::Pass).await;
    assert_eq!((o.duplicates, o.replies_lost, o.failed_requests), (0, 0, 0), "no fault, no duplicate: {o:?}");
}

async fn delay_below_the_timeout_delivers_every_alert_exactly_once(kind: BackendKind) {
    // 100 ms each way per chunk (a request is two or three): slower, within the 1 s timeout.
    let o = run_with_fault(kind, FaultMode::Delay(Duration::from_millis(100))).await;
    assert_eq!(o.duplicates, 0, "a slow path loses no reply: {o:?}");
}

async fn delay_beyond_the_timeout_retries_and_counts_late_replies_as_duplicates(kind: BackendKind) {
    // 1.2 s each way: every request times out, though the receiver may still accept it.
    let o = run_with_fault(kind, FaultMode::Delay(Duration::from_millis(1200))).await;
    assert!(o.failed_requests > 0, "the requests timed out: {o:?}");
}

async fn blackhole_times_out_and_every_alert_arrives_after_it(kind: BackendKind) {
    let o = run_with_fault(kind, FaultMode::Blackhole).await;
    assert!(o.proxy.blackholed > 0 && o.failed_requests > 0, "the blackhole swallowed requests: {o:?}");
}

async fn reset_fails_fast_and_every_alert_arrives_after_it(kind: BackendKind) {
    let o = run_with_fault(kind, FaultMode::Reset).await;
    assert!(o.proxy.resets > 0 && o.failed_requests > 0, "connections were reset: {o:?}");
}

async fn dropped_replies_are_redelivered_and_counted_as_duplicates(kind: BackendKind) {
    let o = run_with_fault(kind, FaultMode::DropReplies).await;
    assert!(o.proxy.replies_dropped > 0, "replies were dropped: {o:?}");
    assert!(o.replies_lost > 0, "the receiver accepted requests whose replies were dropped: {o:?}");
    assert!(
        o.duplicates > 0,
        "alerts of a request accepted by the receiver whose reply was dropped are sent again: {o:?}"
    );
}

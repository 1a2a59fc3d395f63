//! Coalesced pushes (issue #21): concurrent submissions' events reach the ingest queue in one
//! `push_ingest` call, each submission is answered only once its own events are queued, and a
//! failed push fails exactly the submissions that were in it, with the 503 of any failed push.
//! The queue is the real backend behind a thin wrapper that counts pushes and, where a test
//! asks, holds a push until released or fails one (the only way to aim a failure at one push).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_ingest::{Ingest, IngestConfig, IngestMetrics, RateLimit, Rejection, Submission};
use mutt_queue::{ConsumerConfig, Queue, QueueError, QueueId, QueueStatus, Settlement, WorkerRole, dlq, ingest_rate};
use mutt_testapp::{BackendKind, Site, TestBackend};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// The real backend, counting `push_ingest` calls; call `hold` waits for `release`, call
/// `fail` fails without reaching the backend, with the error its backend gives when it is down.
struct Watched {
    inner: Arc<dyn Queue>,
    kind: BackendKind,
    pushes: AtomicUsize,
    hold: Option<usize>,
    fail: Option<usize>,
    entered: Notify,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Watched {
    fn new(
        b: &TestBackend,
        kind: BackendKind,
        hold: Option<usize>,
        fail: Option<usize>,
    ) -> (Arc<Self>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let w = Self {
            inner: b.queue.clone(),
            kind,
            pushes: AtomicUsize::new(0),
            hold,
            fail,
            entered: Notify::new(),
            release: Mutex::new(Some(rx)),
        };
        (Arc::new(w), tx)
    }
}

#[async_trait]
impl Queue for Watched {
    async fn push(&self, queue: QueueId, messages: &[Vec<u8>]) -> Result<u64, QueueError> {
        self.inner.push(queue, messages).await
    }
    async fn push_ingest(&self, messages: &[Vec<u8>], now: DateTime<Utc>) -> Result<u64, QueueError> {
        let call = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.hold == Some(call) {
            self.entered.notify_one();
            let release = self.release.lock().unwrap().take();
            if let Some(rx) = release {
                let _ = rx.await;
            }
        }
        if self.fail == Some(call) {
            return Err(match self.kind {
                BackendKind::RedisPostgres => QueueError::Redis {
                    context: "enqueueing events",
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                },
                BackendKind::Embedded => QueueError::Protocol("injected push failure".into()),
            });
        }
        self.inner.push_ingest(messages, now).await
    }
    async fn depth(&self, queue: QueueId) -> Result<u64, QueueError> {
        self.inner.depth(queue).await
    }
    async fn dead_letter_depth(&self, role: WorkerRole) -> Result<u64, QueueError> {
        self.inner.dead_letter_depth(role).await
    }
    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
    async fn status(&self) -> Result<QueueStatus, QueueError> {
        self.inner.status().await
    }
    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn mutt_queue::Consumer>, QueueError> {
        self.inner.consumer(config).await
    }
    fn dead_letters(&self) -> Arc<dyn dlq::DeadLetterStore> {
        self.inner.dead_letters()
    }
    fn ingest_counters(&self) -> Arc<dyn ingest_rate::IngestCounters> {
        self.inner.ingest_counters()
    }
}

fn unlimited() -> IngestConfig {
    IngestConfig { rate_limit: None, ..IngestConfig::default() }
}

fn rig(queue: Arc<Watched>, b: &TestBackend) -> Ingest {
    let metrics = IngestMetrics::register(&mutt_service::Metrics::new());
    Ingest::new(queue, b.coordination.clone(), unlimited(), metrics)
}

const KEY: &str = "coalesce-test-key";

/// The HTTP API over `queue`; its base URL and the server's stop guard.
async fn serve(queue: Arc<Watched>, b: &TestBackend) -> (String, tokio_util::sync::DropGuard) {
    let config = IngestConfig { api_keys: vec![mutt_core::Secret::new(KEY).into()], ..unlimited() };
    let router = mutt_ingest::router(queue, b.coordination.clone(), config, mutt_service::Metrics::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(mutt_service::serve_with(listener, router, stop.clone(), mutt_service::HttpLimits::default()));
    (base, stop.drop_guard())
}

/// Posts submission `i` (an object, or an array for a batch); the status and the JSON body.
async fn post(base: &str, i: usize) -> (u16, Value) {
    let s = submission(i);
    let events: Vec<Value> = s.events.into_iter().filter_map(|e| e.into_fields().ok()).map(Value::Object).collect();
    let body = if s.batch { Value::Array(events) } else { events.into_iter().next().unwrap_or_default() };
    let r = reqwest::Client::new()
        .post(format!("{base}/ingest"))
        .header("x-api-key", KEY)
        .header("x-correlation-id", s.correlation_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Submission `i`: `i % 3 + 1` events, hostnames `h<i>-<j>`, correlation id `c<i>`.
fn submission(i: usize) -> Submission {
    let events = (0..i % 3 + 1)
        .map(|j| {
            let ev =
                json!({"hostname": format!("h{i}-{j}"), "message": "LINK-DOWN", "timestamp": "2026-12-02T08:00:00Z"});
            ev.as_object().cloned().unwrap_or_default().into()
        })
        .collect();
    Submission { events, batch: !i.is_multiple_of(3), correlation_id: format!("c{i}") }
}

/// Everything in the ingest queue (leased and settled), by hostname.
async fn drain(b: &TestBackend, n: usize) -> BTreeMap<String, Value> {
    let pod = mutt_core::PodName::random("t");
    let mut c = b.queue.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod)).await.unwrap();
    let mut out = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n && tokio::time::Instant::now() < deadline {
        if let Some(lease) = c.lease(500, Duration::from_millis(200)).await.unwrap() {
            for m in &lease.messages {
                let ev: Value = serde_json::from_slice(m).unwrap();
                let host = ev["hostname"].as_str().unwrap().to_owned();
                assert!(out.insert(host.clone(), ev).is_none(), "{host} queued twice");
            }
            c.settle(&lease, &Settlement::new()).await.unwrap();
        }
    }
    c.shutdown().await.unwrap();
    out
}

mutt_testapp::both_backends!(
    concurrent_submissions_share_a_push_and_each_is_answered,
    a_failed_push_fails_exactly_the_submissions_in_it,
    concurrent_requests_take_exactly_the_rate_limits_slots
);

async fn concurrent_submissions_share_a_push_and_each_is_answered(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let (queue, _release) = Watched::new(&b, kind, None, None);
    let ingest = rig(queue.clone(), &b);
    let n = 200;
    let answers = futures_util::future::join_all((0..n).map(|i| ingest.accept(submission(i)))).await;
    let total: usize = (0..n).map(|i| i % 3 + 1).sum();
    for (i, a) in answers.iter().enumerate() {
        let a = a.as_ref().unwrap_or_else(|e| panic!("submission {i} refused: {e:?}"));
        assert_eq!(a.count, i % 3 + 1, "submission {i} is answered with its own count");
        assert!(a.queue_depth >= a.count as u64 && a.queue_depth <= total as u64, "{a:?}");
    }
    let pushes = queue.pushes.load(Ordering::SeqCst);
    println!("{}: {n} submissions in {pushes} pushes", kind.name());
    assert!((1..n / 2).contains(&pushes), "{n} concurrent submissions took {pushes} pushes");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), total as u64);
    let queued = drain(&b, total).await;
    assert_eq!(queued.len(), total, "every event queued once");
    for i in 0..n {
        for j in 0..i % 3 + 1 {
            let ev = &queued[&format!("h{i}-{j}")];
            assert_eq!(ev["_correlation_id"], format!("c{i}"), "{ev}");
        }
    }
    // Answered only after the push: a later submission alone is pushed alone.
    ingest.accept(submission(n)).await.unwrap();
    assert_eq!(queue.pushes.load(Ordering::SeqCst), pushes + 1);
}

async fn a_failed_push_fails_exactly_the_submissions_in_it(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    // Push 1 (request 0 alone) is held while 1, 2 and 3 gather; push 2 (those three) fails.
    let (queue, release) = Watched::new(&b, kind, Some(1), Some(2));
    let (base, _stop) = serve(queue.clone(), &b).await;
    let first = tokio::spawn({
        let base = base.clone();
        async move { post(&base, 0).await }
    });
    tokio::time::timeout(Duration::from_secs(5), queue.entered.notified()).await.expect("push 1 started");
    let waiting: Vec<_> = (1..4)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move { post(&base, i).await })
        })
        .collect();
    // Let them hand their events over (they wait behind the held push).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!first.is_finished(), "not answered before its push completes");
    release.send(()).unwrap();
    let (status, body) = first.await.unwrap();
    assert_eq!((status, body["status"].as_str()), (200, Some("queued")), "{body}");
    let message = match kind {
        BackendKind::RedisPostgres => "Service Unavailable - Redis error",
        BackendKind::Embedded => "Service Unavailable - queue error (queue)",
    };
    for (i, w) in waiting.into_iter().enumerate() {
        let (status, body) = w.await.unwrap();
        assert_eq!((status, body["message"].as_str()), (503, Some(message)), "request {}: {body}", i + 1);
        assert_eq!(body["correlation_id"], format!("c{}", i + 1));
    }
    assert_eq!(queue.pushes.load(Ordering::SeqCst), 2, "the three waiting requests went in one push");
    // The next push works again.
    assert_eq!(post(&base, 4).await.0, 200);
    let queued = drain(&b, 3).await;
    let hosts: Vec<&str> = queued.keys().map(String::as_str).collect();
    assert_eq!(hosts, ["h0-0", "h4-0", "h4-1"], "only the answered requests' events are queued");
}

/// Rate-limit checks made together grant what separate ones would: exactly the limit's slots.
async fn concurrent_requests_take_exactly_the_rate_limits_slots(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let rate_limit = Some(RateLimit { limit: 50, window: Duration::from_secs(60) });
    let metrics = IngestMetrics::register(&mutt_service::Metrics::new());
    let ingest =
        Ingest::new(b.queue.clone(), b.coordination.clone(), IngestConfig { rate_limit, ..unlimited() }, metrics);
    let answers = futures_util::future::join_all((0..120).map(|i| ingest.accept(submission(i)))).await;
    let admitted = answers.iter().filter(|a| a.is_ok()).count();
    let limited: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert_eq!(admitted, 50, "{limited:?}");
    assert_eq!(limited.len(), 70);
    for r in limited {
        let Rejection::RateLimited { retry_after } = r else { panic!("{r:?}") };
        assert!(!retry_after.is_zero() && *retry_after <= Duration::from_secs(60), "{retry_after:?}");
    }
    let queued: usize = answers.iter().filter_map(|a| a.as_ref().ok()).map(|a| a.count).sum();
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), queued as u64);
    // Still limited afterwards, one at a time.
    assert!(matches!(ingest.accept(submission(0)).await, Err(Rejection::RateLimited { .. })));
}

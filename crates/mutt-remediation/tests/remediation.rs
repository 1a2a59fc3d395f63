//! The remediation role on both backends: replayed entries are processed by a real alerter
//! and audited once; poison is parked after the configured replays instead of looping; a
//! store outage holds the alerter DLQ; shed entries wait for the alert queue; the webhook
//! probe never sends an event. Every message is counted.

use chrono::Utc;
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome};
use mutt_core::PodName;
use mutt_queue::dlq::Dlq;
use mutt_queue::{ConsumerConfig, QueueId, RetryPolicy, Settlement, WorkerRole};
use mutt_remediation::{ProbeConfig, Remediation, RemediationConfig, RemediationMetrics};
use mutt_testapp::{BackendKind, Site, TestBackend, both_backends};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn event(n: usize) -> Value {
    json!({"n": n, "hostname": format!("h{n}"), "message": format!("CRITICAL thing {n}"),
           "timestamp": Utc::now().to_rfc3339(), "_event_id": uuid::Uuid::now_v7().to_string(), "_correlation_id": "c"})
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn remediation(b: &TestBackend, config: RemediationConfig) -> Remediation {
    let metrics = RemediationMetrics::register(&mutt_service::Metrics::new());
    Remediation::new(b.queue.clone(), b.coordination.clone(), b.store.clone(), config, metrics)
}

fn config() -> RemediationConfig {
    RemediationConfig { batch_size: 1000, dlq_retention_days: None, ..RemediationConfig::default() }
}

/// Dead-letters `bodies` from `role`'s source queue as its worker would, with `reason`.
async fn dead_letter(b: &TestBackend, role: WorkerRole, bodies: &[Vec<u8>], reason: &str) {
    b.queue.push(role.source(), bodies).await.unwrap();
    let mut c = b.queue.consumer(ConsumerConfig::new(role, PodName::random("seed"))).await.unwrap();
    let mut n = 0;
    while n < bodies.len() {
        let lease = c.lease(1000, Duration::from_secs(2)).await.unwrap().expect("the seeded messages");
        let mut s = Settlement::new();
        for raw in &lease.messages {
            s.dead_letter(raw, reason, "seeded");
        }
        c.settle(&lease, &s).await.unwrap();
        n += lease.len();
    }
    c.shutdown().await.unwrap();
}

/// Takes every message of a work queue; fails each with its retries spent when `fail`.
async fn take_all(b: &TestBackend, queue: QueueId, fail: bool) -> Vec<Value> {
    let role = if queue == QueueId::Ingest { WorkerRole::Alerter } else { WorkerRole::Forwarder };
    let mut c = b.queue.consumer(ConsumerConfig::new(role, PodName::random("take"))).await.unwrap();
    let mut out = Vec::new();
    while let Some(lease) = c.lease(1000, Duration::from_millis(300)).await.unwrap() {
        let mut s = Settlement::new();
        for raw in &lease.messages {
            out.push(serde_json::from_slice(raw).unwrap());
            if fail {
                // As the alerter does when the database keeps refusing an event's audit row.
                let policy = RetryPolicy { field: "_retry_count", max_retries: 0 };
                s.retry(policy, raw, Duration::ZERO, "audit write failed: refused");
            }
        }
        c.settle(&lease, &s).await.unwrap();
    }
    c.shutdown().await.unwrap();
    out
}

async fn depths(b: &TestBackend) -> [u64; 3] {
    let d = b.queue.dead_letters();
    [
        d.dlq_depth(Dlq::Alerter).await.unwrap(),
        d.dlq_depth(Dlq::Moog).await.unwrap(),
        d.dlq_depth(Dlq::Dead).await.unwrap(),
    ]
}

/// Rows and distinct event ids in the audit trail.
async fn audit_count(site: &Site) -> (i64, i64) {
    const SQL: &str = "SELECT count(*), count(DISTINCT event_id) FROM event_audit_log";
    match site.database_url() {
        Some(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let row = c.query_one(SQL, &[]).await.unwrap();
            (row.get(0), row.get(1))
        }
        None => {
            let db = mutt_sqlite::Database::open(site.data_file().unwrap(), mutt_sqlite::DbOptions::default()).unwrap();
            db.read(|c| c.query_row(SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))).await.unwrap()
        }
    }
}

async fn alerter(b: &TestBackend) -> Alerter {
    let cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::random("alerter"));
    let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
    Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, AlerterConfig::default(), metrics)
        .await
        .unwrap()
}

async fn replayed_entries_are_processed_by_a_real_alerter_and_audited_once(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    b.store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap();
    let events: Vec<Value> = (0..25).map(event).collect();
    let raw: Vec<Vec<u8>> = events.iter().map(bytes).collect();
    dead_letter(&b, WorkerRole::Alerter, &raw[..15], "shed").await;
    dead_letter(&b, WorkerRole::Alerter, &raw[15..], "retries_exhausted").await;
    let mut r = remediation(&b, config());
    let report = r.cycle().await;
    assert!(report.store_healthy);
    assert_eq!(report.replayed_and_parked(), (25, 0), "{report:?}");
    assert_eq!(depths(&b).await, [0, 0, 0]);
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 25);
    let mut a = alerter(&b).await;
    let sd = CancellationToken::new();
    let mut audited = 0;
    loop {
        match a.process_one_batch(&sd).await.unwrap() {
            BatchOutcome::Empty => break,
            BatchOutcome::Processed { audited: n, dead_lettered, .. } => {
                assert_eq!(dead_lettered, 0);
                audited += n;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(audited, 25);
    assert_eq!(audit_count(&site).await, (25, 25), "every replayed event audited exactly once");
    assert_eq!(b.queue.depth(QueueId::Alert).await.unwrap(), 25, "one alert each");
    // A second cycle finds nothing to do.
    assert_eq!(r.cycle().await.replayed_and_parked(), (0, 0));
}

async fn poison_is_parked_after_the_configured_replays_instead_of_looping(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let poison = event(7);
    dead_letter(&b, WorkerRole::Alerter, &[bytes(&poison)], "retries_exhausted").await;
    let mut r = remediation(&b, RemediationConfig { max_poison_retries: 3, ..config() });
    for replay in 1..=3u64 {
        assert_eq!(r.cycle().await.replayed_and_parked(), (1, 0), "replay {replay}");
        // The alerter fails it again: back in the DLQ with the replay counted.
        let taken = take_all(&b, QueueId::Ingest, true).await;
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0]["_replay_count"], replay);
        assert!(taken[0].get("_retry_count").is_none(), "a replay starts a new life");
        assert_eq!(depths(&b).await, [1, 0, 0]);
    }
    assert_eq!(r.cycle().await.replayed_and_parked(), (0, 1), "parked after 3 replays");
    assert_eq!(depths(&b).await, [0, 0, 1]);
    for _ in 0..3 {
        assert_eq!(r.cycle().await.replayed_and_parked(), (0, 0), "and left alone");
    }
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 0);
    let dead = mutt_queue::dlq::show(
        b.queue.dead_letters().as_ref(),
        Dlq::Dead,
        &Default::default(),
        Default::default(),
        0,
        10,
    )
    .await
    .unwrap();
    assert_eq!(dead.entries[0].message["n"], 7);
    assert_eq!(dead.entries[0].message["_parked_from"], "alerter");
    assert!(dead.entries[0].message["_parked_reason"].as_str().unwrap().contains("replayed 3 times"));
}

async fn shed_entries_wait_while_the_alert_queue_is_above_the_shed_threshold(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    b.coordination.set_config_value("alerter_queue_shed_threshold", "2").await.unwrap();
    let alerts: Vec<Vec<u8>> = (0..3).map(|n| bytes(&json!({"n": n}))).collect();
    b.queue.push(QueueId::Alert, &alerts).await.unwrap();
    let raw: Vec<Vec<u8>> = (0..6).map(|n| bytes(&event(n))).collect();
    dead_letter(&b, WorkerRole::Alerter, &raw[..4], "shed").await;
    dead_letter(&b, WorkerRole::Alerter, &raw[4..], "retries_exhausted").await;
    let mut r = remediation(&b, config());
    let report = r.cycle().await;
    assert!(report.holding_shed);
    assert_eq!(report.replayed_and_parked(), (2, 0));
    assert_eq!(depths(&b).await, [4, 0, 0]);
    assert_eq!(take_all(&b, QueueId::Alert, false).await.len(), 3, "the alert queue drains");
    let report = r.cycle().await;
    assert!(!report.holding_shed);
    assert_eq!(report.replayed_and_parked(), (4, 0));
    let replayed = take_all(&b, QueueId::Ingest, false).await;
    let mut ns: Vec<u64> = replayed.iter().map(|m| m["n"].as_u64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, vec![0, 1, 2, 3, 4, 5]);
    assert!(replayed.iter().all(|m| m.get("_dlq_reason").is_none() && m.get("_dlq_error").is_none()));
}

async fn the_webhook_probe_never_sends_an_event(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let receiver = WebhookReceiver::start().await;
    let alerts: Vec<Vec<u8>> = (0..5)
        .map(|n| bytes(&json!({"n": n, "hostname": "h", "message_body": "m", "raw_json": {}, "_moog_retry_count": 6})))
        .collect();
    dead_letter(&b, WorkerRole::Forwarder, &alerts, "retries_exhausted").await;
    let probe = ProbeConfig { webhook_url: Some(receiver.url()), cache_for: Duration::ZERO, ..ProbeConfig::default() };
    let mut r = remediation(&b, RemediationConfig { replay_moog: true, batch_size: 2, probe, ..config() });
    receiver.set_mode(ReceiverMode::Status(503));
    let report = r.cycle().await;
    assert_eq!((report.webhook_healthy, report.moog.is_none()), (Some(false), true), "unhealthy: nothing replayed");
    assert_eq!(depths(&b).await, [0, 5, 0]);
    receiver.set_mode(ReceiverMode::Succeed);
    for _ in 0..3 {
        assert_eq!(r.cycle().await.webhook_healthy, Some(true));
    }
    assert_eq!(depths(&b).await, [0, 0, 0], "replayed two per cycle");
    let replayed = take_all(&b, QueueId::Alert, false).await;
    assert_eq!(replayed.len(), 5);
    assert!(replayed.iter().all(|m| m.get("_moog_retry_count").is_none() && m["_replay_count"] == 1));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "one probe per cycle");
    assert!(requests.iter().all(|r| r.raw.is_empty()), "no probe carried a body: no event was sent");
    // A configured health URL is asked instead (GET), still without an event.
    let probe = ProbeConfig {
        webhook_url: Some(receiver.url()),
        health_url: Some(format!("http://{}/health", receiver.addr())),
        cache_for: Duration::ZERO,
        ..ProbeConfig::default()
    };
    let mut r = remediation(&b, RemediationConfig { replay_moog: true, probe, ..config() });
    assert_eq!(r.cycle().await.webhook_healthy, Some(true));
    assert!(receiver.requests().iter().all(|r| r.raw.is_empty()));
    assert_eq!(receiver.requests().len(), 5);
}

both_backends!(
    replayed_entries_are_processed_by_a_real_alerter_and_audited_once,
    poison_is_parked_after_the_configured_replays_instead_of_looping,
    shed_entries_wait_while_the_alert_queue_is_above_the_shed_threshold,
    the_webhook_probe_never_sends_an_event,
);

/// PostgreSQL unreachable: the alerter DLQ is left alone (its entries failed on the database).
#[tokio::test]
async fn the_alerter_dlq_waits_while_the_store_is_down() {
    let site = Site::fresh(BackendKind::RedisPostgres).await;
    let b = site.open().await;
    dead_letter(&b, WorkerRole::Alerter, &[bytes(&event(1)), bytes(&event(2))], "retries_exhausted").await;
    // A port nothing listens on: PostgreSQL is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = mutt_store::postgres::PostgresConfig {
        url: format!("postgres://mutt@127.0.0.1:{port}/mutt"),
        password: None,
        pool_size: 1,
    };
    let down: Arc<dyn mutt_store::Store> = Arc::new(mutt_store::postgres::PgStore::new(&cfg).unwrap());
    let metrics = RemediationMetrics::register(&mutt_service::Metrics::new());
    let mut r = Remediation::new(b.queue.clone(), b.coordination.clone(), down, config(), metrics);
    let report = r.cycle().await;
    assert!(!report.store_healthy);
    assert!(report.alerter.is_none());
    assert_eq!(depths(&b).await, [2, 0, 0]);
    assert_eq!(remediation(&b, config()).cycle().await.replayed_and_parked(), (2, 0), "once it answers");
}

/// Shed entries held back at the oldest end do not block the entries behind them.
#[tokio::test]
async fn held_shed_entries_do_not_block_the_batch() {
    let site = Site::fresh(BackendKind::Embedded).await;
    let b = site.open().await;
    b.coordination.set_config_value("alerter_queue_shed_threshold", "1").await.unwrap();
    b.queue.push(QueueId::Alert, &[bytes(&json!({"a": 1})), bytes(&json!({"a": 2}))]).await.unwrap();
    let raw: Vec<Vec<u8>> = (0..30).map(|n| bytes(&event(n))).collect();
    dead_letter(&b, WorkerRole::Alerter, &raw[..20], "shed").await;
    dead_letter(&b, WorkerRole::Alerter, &raw[20..], "retries_exhausted").await;
    let mut r = remediation(&b, RemediationConfig { batch_size: 5, ..config() });
    let report = r.cycle().await;
    assert!(report.holding_shed);
    assert_eq!(report.replayed_and_parked(), (5, 0), "{report:?}");
    assert_eq!(r.cycle().await.replayed_and_parked(), (5, 0));
    let replayed = take_all(&b, QueueId::Ingest, false).await;
    let mut ns: Vec<u64> = replayed.iter().map(|m| m["n"].as_u64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, (20..30).collect::<Vec<u64>>());
    assert_eq!(depths(&b).await, [20, 0, 0], "the shed ones wait");
}

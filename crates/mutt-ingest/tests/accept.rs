//! [`Ingest::accept`], the one ingest step, called directly (no HTTP) on both backends: what
//! a syslog or SNMP listener gets back, and what ends up queued.

use mutt_ingest::{Ingest, IngestConfig, IngestMetrics, Problem, RateLimit, Rejection, Submission};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{Backend, QueueId};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn redis() -> (Arc<dyn Backend>, Option<tempfile::TempDir>) {
    let config = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    (Arc::new(RedisQueue::connect(&config).await.expect("connect to the test redis")), None)
}

async fn embedded() -> (Arc<dyn Backend>, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = mutt_sqlite::Database::open(dir.path().join("mutt.db"), Default::default()).expect("data file");
    (Arc::new(SqliteQueue::open(db, KeySpace::default()).await.expect("embedded queue")), Some(dir))
}

fn ingest(backend: &Arc<dyn Backend>, config: IngestConfig) -> Ingest {
    let metrics = IngestMetrics::register(&mutt_service::Metrics::new());
    Ingest::new(backend.clone(), backend.clone(), config, metrics)
}

fn event(host: &str) -> Map<String, Value> {
    let v = json!({"hostname": host, "message": "LINK-DOWN Gi0/1", "timestamp": "2026-12-01T10:00:00Z"});
    v.as_object().cloned().unwrap_or_default()
}

fn submission(events: Vec<Map<String, Value>>) -> Submission {
    Submission { batch: events.len() > 1, events, correlation_id: "cid-1".into() }
}

async fn queued(backend: &Arc<dyn Backend>) -> Vec<Value> {
    let mut c = backend
        .consumer(mutt_queue::ConsumerConfig::new(mutt_queue::WorkerRole::Alerter, mutt_core::PodName::random("t")))
        .await
        .expect("consumer");
    let lease = c.lease(100, Duration::from_millis(50)).await.expect("lease").unwrap_or_default();
    let out = lease.messages.iter().map(|m| serde_json::from_slice(m).expect("queued JSON")).collect();
    c.release().await.expect("release");
    c.shutdown().await.expect("shutdown");
    out
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod redis_backend { $( #[tokio::test] async fn $name() { let (b, _d) = super::redis().await; super::$name(b).await; } )* }
        mod embedded_backend { $( #[tokio::test] async fn $name() { let (b, _d) = super::embedded().await; super::$name(b).await; } )* }
    };
}

on_both_backends!(
    accepted_events_are_stamped_and_queued,
    a_batch_with_one_bad_element_queues_nothing,
    normalisation_refusals_name_the_field,
    too_many_events_is_refused,
    backpressure_refuses_at_the_queue_limit,
    the_rate_limit_counts_submissions,
);

async fn accepted_events_are_stamped_and_queued(b: Arc<dyn Backend>) {
    let ing = ingest(&b, IngestConfig { rate_limit: None, ..IngestConfig::default() });
    let mut sev = event("r2");
    sev.insert("severity".into(), json!("error"));
    let a = ing.accept(submission(vec![event("r1"), sev])).await.expect("accepted");
    assert_eq!((a.count, a.queue_depth), (2, 2));
    let q = queued(&b).await;
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|e| e["_correlation_id"] == "cid-1"), "{q:?}");
    let ids: Vec<&str> = q.iter().filter_map(|e| e["_event_id"].as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "every event gets its own id");
    let r2 = q.iter().find(|e| e["hostname"] == "r2").expect("r2 queued");
    assert_eq!(r2["syslog_severity"], 3, "textual severity normalised: {r2}");
}

async fn a_batch_with_one_bad_element_queues_nothing(b: Arc<dyn Backend>) {
    let ing = ingest(&b, IngestConfig { rate_limit: None, ..IngestConfig::default() });
    let mut bad = event("r2");
    bad.remove("message");
    bad.insert("timestamp".into(), json!(""));
    let err = ing.accept(submission(vec![event("r1"), bad])).await.expect_err("refused");
    let Rejection::Invalid(elements) = err else { panic!("expected Invalid, got {err:?}") };
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].index, 1);
    assert_eq!(elements[0].problem, Problem::MissingFields(vec!["message".into(), "timestamp".into()]));
    assert_eq!(elements[0].problem.to_string(), "missing or empty required fields: ['message', 'timestamp']");
    assert_eq!(b.depth(QueueId::Ingest).await.unwrap(), 0, "nothing queued");
}

async fn normalisation_refusals_name_the_field(b: Arc<dyn Backend>) {
    let ing = ingest(&b, IngestConfig { rate_limit: None, ..IngestConfig::default() });
    let mut bad = event("r1");
    bad.insert("syslog_severity".into(), json!(12));
    let err = ing.accept(submission(vec![bad])).await.expect_err("refused");
    let Rejection::Invalid(elements) = err else { panic!("expected Invalid, got {err:?}") };
    assert!(matches!(&elements[0].problem, Problem::Invalid(r) if r.contains("syslog_severity")), "{elements:?}");
    assert_eq!(b.depth(QueueId::Ingest).await.unwrap(), 0);
}

async fn too_many_events_is_refused(b: Arc<dyn Backend>) {
    let ing = ingest(&b, IngestConfig { rate_limit: None, max_batch_events: 2, ..IngestConfig::default() });
    let err = ing.accept(submission(vec![event("a"), event("b"), event("c")])).await.expect_err("refused");
    assert!(matches!(err, Rejection::TooManyEvents { count: 3, max: 2 }), "{err:?}");
    assert_eq!(b.depth(QueueId::Ingest).await.unwrap(), 0);
}

async fn backpressure_refuses_at_the_queue_limit(b: Arc<dyn Backend>) {
    let ing = ingest(&b, IngestConfig { rate_limit: None, max_queue_size: 2, ..IngestConfig::default() });
    ing.accept(submission(vec![event("a"), event("b")])).await.expect("below the limit");
    let err = ing.accept(submission(vec![event("c")])).await.expect_err("at the limit");
    assert!(matches!(err, Rejection::QueueFull { depth: 2, limit: 2 }), "{err:?}");
    assert_eq!(err.metric_reason(), "queue_full");
    assert_eq!(b.depth(QueueId::Ingest).await.unwrap(), 2);
}

async fn the_rate_limit_counts_submissions(b: Arc<dyn Backend>) {
    let limit = RateLimit { limit: 2, window: Duration::from_secs(60) };
    let ing = ingest(&b, IngestConfig { rate_limit: Some(limit), ..IngestConfig::default() });
    ing.accept(submission(vec![event("a"), event("b")])).await.expect("first");
    ing.accept(submission(vec![event("c")])).await.expect("second");
    let err = ing.accept(submission(vec![event("d")])).await.expect_err("third is over the limit");
    let Rejection::RateLimited { retry_after } = err else { panic!("expected RateLimited, got {err:?}") };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60), "{retry_after:?}");
    assert_eq!(b.depth(QueueId::Ingest).await.unwrap(), 3, "the refused submission was not queued");
}

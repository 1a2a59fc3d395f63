//! [`Ingest::accept`], the one ingest step, called directly (no HTTP) on both backends: what
//! a syslog or SNMP listener gets back, and what ends up queued.

mod common;

use common::setup;
use mutt_ingest::{IngestConfig, Problem, RateLimit, Rejection, Submission};
use mutt_queue::QueueId;
use mutt_testapp::{BackendKind, TestBackend};
use serde_json::{Map, Value, json};
use std::time::Duration;

fn event(host: &str) -> Map<String, Value> {
    let v = json!({"hostname": host, "message": "LINK-DOWN Gi0/1", "timestamp": "2026-12-01T10:00:00Z"});
    v.as_object().cloned().unwrap_or_default()
}

fn submission(events: Vec<Map<String, Value>>) -> Submission {
    Submission {
        batch: events.len() > 1,
        events: events.into_iter().map(Into::into).collect(),
        correlation_id: "cid-1".into(),
    }
}

async fn queued(b: &TestBackend) -> Vec<Value> {
    queued_bytes(b).await.iter().map(|m| serde_json::from_slice(m).expect("queued JSON")).collect()
}

/// The ingest queue's messages as queued (leased, then handed back).
async fn queued_bytes(b: &TestBackend) -> Vec<Vec<u8>> {
    let mut c = b
        .queue
        .consumer(mutt_queue::ConsumerConfig::new(mutt_queue::WorkerRole::Alerter, mutt_core::PodName::random("t")))
        .await
        .expect("consumer");
    let lease = c.lease(100, Duration::from_millis(50)).await.expect("lease").unwrap_or_default();
    let out = lease.messages.clone();
    c.release().await.expect("release");
    c.shutdown().await.expect("shutdown");
    out
}

fn unlimited() -> IngestConfig {
    IngestConfig { rate_limit: None, ..IngestConfig::default() }
}

mutt_testapp::both_backends!(
    accepted_events_are_stamped_and_queued,
    a_batch_with_one_bad_element_queues_nothing,
    normalisation_refusals_name_the_field,
    too_many_events_is_refused,
    backpressure_refuses_at_the_queue_limit,
    the_rate_limit_counts_submissions,
    raw_events_are_queued_as_written_and_measured_compact,
);

async fn accepted_events_are_stamped_and_queued(kind: BackendKind) {
    let (_site, b, ing) = setup(kind, unlimited()).await;
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

async fn a_batch_with_one_bad_element_queues_nothing(kind: BackendKind) {
    let (_site, b, ing) = setup(kind, unlimited()).await;
    let mut bad = event("r2");
    bad.remove("message");
    bad.insert("timestamp".into(), json!(""));
    let err = ing.accept(submission(vec![event("r1"), bad])).await.expect_err("refused");
    let Rejection::Invalid(elements) = err else { panic!("expected Invalid, got {err:?}") };
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].index, 1);
    assert_eq!(elements[0].problem, Problem::MissingFields(vec!["message".into(), "timestamp".into()]));
    assert_eq!(elements[0].problem.to_string(), "missing or empty required fields: ['message', 'timestamp']");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 0, "nothing queued");
}

async fn normalisation_refusals_name_the_field(kind: BackendKind) {
    let (_site, b, ing) = setup(kind, unlimited()).await;
    let mut bad = event("r1");
    bad.insert("syslog_severity".into(), json!(12));
    let err = ing.accept(submission(vec![bad])).await.expect_err("refused");
    let Rejection::Invalid(elements) = err else { panic!("expected Invalid, got {err:?}") };
    assert!(matches!(&elements[0].problem, Problem::Invalid(r) if r.contains("syslog_severity")), "{elements:?}");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 0);
}

async fn too_many_events_is_refused(kind: BackendKind) {
    let (_site, b, ing) =
        setup(kind, IngestConfig { rate_limit: None, max_batch_events: 2, ..IngestConfig::default() }).await;
    let err = ing.accept(submission(vec![event("a"), event("b"), event("c")])).await.expect_err("refused");
    assert!(matches!(err, Rejection::TooManyEvents { count: 3, max: 2 }), "{err:?}");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 0);
}

async fn backpressure_refuses_at_the_queue_limit(kind: BackendKind) {
    let (_site, b, ing) =
        setup(kind, IngestConfig { rate_limit: None, max_queue_size: 2, ..IngestConfig::default() }).await;
    ing.accept(submission(vec![event("a"), event("b")])).await.expect("below the limit");
    let err = ing.accept(submission(vec![event("c")])).await.expect_err("at the limit");
    assert!(matches!(err, Rejection::QueueFull { depth: 2, limit: 2 }), "{err:?}");
    assert_eq!(err.metric_reason(), "queue_full");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 2);
}

async fn the_rate_limit_counts_submissions(kind: BackendKind) {
    let limit = RateLimit { limit: 2, window: Duration::from_secs(60) };
    let (_site, b, ing) = setup(kind, IngestConfig { rate_limit: Some(limit), ..IngestConfig::default() }).await;
    ing.accept(submission(vec![event("a"), event("b")])).await.expect("first");
    ing.accept(submission(vec![event("c")])).await.expect("second");
    let err = ing.accept(submission(vec![event("d")])).await.expect_err("third is over the limit");
    let Rejection::RateLimited { retry_after } = err else { panic!("expected RateLimited, got {err:?}") };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60), "{retry_after:?}");
    assert_eq!(b.queue.depth(QueueId::Ingest).await.unwrap(), 3, "the refused submission was not queued");
}

/// An event no check changes is queued as the client wrote it, the two ids last; the
/// per-event size limit still applies to it written compact, so a client's spacing cannot push
/// one over the limit.
async fn raw_events_are_queued_as_written_and_measured_compact(kind: BackendKind) {
    use mutt_ingest::IngestEvent;
    use serde_json::value::RawValue;
    let raw = |text: String| IngestEvent::Raw(RawValue::from_string(text).expect("raw JSON"));
    let fields = r#""message":"LINK-DOWN","hostname":"r1","timestamp":"2026-12-01T10:00:00Z""#;
    let limit = 400;
    let (_site, b, ing) = setup(kind, IngestConfig { max_event_bytes: limit, ..unlimited() }).await;
    let spaced = format!("{{{}{fields}}}", " ".repeat(limit));
    let submission = Submission {
        events: vec![raw(format!("{{{fields}}}")), raw(spaced)],
        batch: true,
        correlation_id: "cid-1".into(),
    };
    ing.accept(submission).await.expect("accepted: compact, both fit");
    let texts: Vec<String> = queued_bytes(&b).await.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    let prefix = format!("{{{fields},\"_correlation_id\":\"cid-1\",\"_event_id\":\"");
    assert!(texts[0].starts_with(&prefix), "as written, ids last: {}", texts[0]);
    assert!(
        texts[1].len() <= limit && texts[1].starts_with("{\"_correlation_id\""),
        "compact, keys sorted: {}",
        texts[1]
    );
}

//! Drop-in parity of the alerter on both backends: ingest items the original MUTT queued
//! (no `_event_id`) are processed and deduplicated, and a `_retry_count` that arrives above
//! `ALERTER_MAX_RETRIES` sends the item to the DLQ unprocessed.

mod common;

use common::Setup;
use mutt_alerter::{Alerter, AlerterConfig, BatchOutcome};
use mutt_testapp::BackendKind;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An ingest item as the original ingestor queued it (spec §3.2): no `_event_id`.
fn original_item(cid: &str, host: &str, message: &str) -> Value {
    json!({"timestamp": "2025-11-08T12:00:00Z", "message": message, "hostname": host,
           "syslog_severity": 2, "_correlation_id": cid})
}

impl Setup {
    async fn alerter(&self) -> Alerter {
        let config = AlerterConfig {
            block_timeout: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..AlerterConfig::default()
        };
        self.start_alerter(config).await
    }
}

async fn one_batch(a: &mut Alerter) -> BatchOutcome {
    a.process_one_batch(&CancellationToken::new()).await.unwrap()
}

/// Items without `_event_id` are decided, audited and alerted like any other; their id is
/// derived from their content, so the same item again (a redelivery, or the original
/// alerter's retry copy with `_retry_count`) inserts no second audit row.
async fn items_queued_by_the_original_are_processed_once(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let mut a = s.alerter().await;
    let first = br#"{"timestamp": "2025-11-08T12:00:00Z", "message": "CRITICAL: System failure detected", "hostname": "server-01.example.com", "syslog_severity": 2, "_correlation_id": "6f1c-original"}"#;
    s.push_raw(&[first]).await;
    s.push(&[original_item("7a2d-original", "server-02", "CRITICAL: fan failure")]).await;
    let out = one_batch(&mut a).await;
    assert_eq!(
        out,
        BatchOutcome::Processed {
            events: 2,
            handled: 2,
            unhandled: 0,
            audited: 2,
            alerts: 2,
            dead_lettered: 0,
            retried: 0
        }
    );
    let alerts = s.list(&s.keys().alert_queue).await;
    let cids: Vec<&str> = alerts.iter().map(|a| a["_correlation_id"].as_str().unwrap()).collect();
    assert_eq!(cids, vec!["6f1c-original", "7a2d-original"]);
    let id = alerts[0]["_event_id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 5, "derived from the content: {id}");
    assert_ne!(alerts[1]["_event_id"], id.as_str());
    assert_eq!(alerts[0]["raw_json"]["_correlation_id"], "6f1c-original");
    assert!(alerts.iter().all(|a| a.get("api_key").is_none()));

    // The same bytes again, and the original's retry copy of them (re-serialised, counted).
    let mut retried: Value = serde_json::from_slice(first).unwrap();
    retried["_retry_count"] = json!(1);
    s.push_raw(&[first]).await;
    s.push(&[retried]).await;
    let out = one_batch(&mut a).await;
    assert!(matches!(out, BatchOutcome::Processed { events: 2, handled: 2, audited: 0, .. }), "{out:?}");
    let again = s.list(&s.keys().alert_queue).await;
    assert!(again[2..].iter().all(|a| a["_event_id"] == id.as_str()), "the same id, so the forwarder drops them");
    assert!(s.list(&s.keys().alerter_dlq).await.is_empty());
}

/// `_retry_count` above `ALERTER_MAX_RETRIES` (3): dead-lettered with a reason, not decided,
/// not audited, no alert, no unhandled count; 3 itself is still processed.
async fn exhausted_retry_counts_are_dead_lettered_unprocessed(kind: BackendKind) {
    let s = Setup::new(kind).await;
    let mut a = s.alerter().await;
    let mut left_by_original = original_item("c-4", "h1", "CRITICAL: from the original");
    left_by_original["_retry_count"] = json!(4);
    let mut replayed = original_item("c-9", "h2", "no rule for this one");
    replayed["_event_id"] = json!(uuid::Uuid::now_v7().to_string());
    replayed["_retry_count"] = json!(9);
    let mut last_try = original_item("c-3", "h3", "CRITICAL: last attempt");
    last_try["_retry_count"] = json!(3);
    s.push(&[left_by_original, replayed, last_try]).await;
    let out = one_batch(&mut a).await;
    assert_eq!(
        out,
        BatchOutcome::Processed {
            events: 3,
            handled: 1,
            unhandled: 0,
            audited: 1,
            alerts: 1,
            dead_lettered: 2,
            retried: 0
        }
    );
    let alerts = s.list(&s.keys().alert_queue).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["_correlation_id"], "c-3");
    let dlq = s.list(&s.keys().alerter_dlq).await;
    let got: Vec<(&str, &str)> =
        dlq.iter().map(|d| (d["_correlation_id"].as_str().unwrap(), d["_dlq_reason"].as_str().unwrap())).collect();
    assert_eq!(got, vec![("c-4", "retries_exhausted"), ("c-9", "retries_exhausted")]);
    assert_eq!(dlq[0]["_dlq_error"], "arrived with _retry_count 4, above ALERTER_MAX_RETRIES (3)");
    assert_eq!(dlq[0]["_retry_count"], 4, "the item as it came");
    assert_eq!(dlq[0]["message"], "CRITICAL: from the original");
}

mutt_testapp::both_backends!(
    items_queued_by_the_original_are_processed_once,
    exhausted_retry_counts_are_dead_lettered_unprocessed,
);

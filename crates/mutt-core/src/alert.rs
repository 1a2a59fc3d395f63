//! The alert message on `mutt:alert_queue`: what the alerter hands to the forwarder.
//!
//! Field names are the original's (spec §3.2) so that existing tooling that reads the queue or
//! the DLQ keeps working. Deliberate differences: there is no `api_key` (secrets never enter a
//! queue), and `_event_id`, `rule_id` and `handling` are added for idempotent delivery and for
//! the record of what went where.
//!
//! Alerts the original MUTT left on the queue before an upgrade are read too
//! ([`Alert::from_queue`]): their `api_key` is dropped, and they get an id derived from their
//! content. Every field has a default, as the original forwarder read each with one (spec §5.3).

use crate::event::{Event, EventId, retry_counter};
use crate::rule::Rule;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// The original alerter's copy of the Moog API key in every queued alert (spec §3.2).
pub const ORIGINAL_API_KEY: &str = "api_key";
/// The forwarder's retry counter in an alert (the original's name).
pub const MOOG_RETRY_COUNT: &str = "_moog_retry_count";
const EVENT_ID: &str = "_event_id";

/// Namespace of ids derived from alerts queued without `_event_id` (by the original MUTT).
const LEGACY_ALERT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d75_7474_2d61_6c65_7274_2d69_6430_0001);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub team_assignment: String,
    /// The original always sends the literal `Warning`; kept for the `legacy` output format.
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub message_body: String,
    /// The whole event as ingested (`null` only in an alert that came without one).
    #[serde(default)]
    pub raw_json: Value,
    #[serde(rename = "_correlation_id", default)]
    pub correlation_id: String,
    #[serde(rename = "_event_id", default)]
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling: Option<String>,
}

impl Alert {
    /// The alert for an event handled by `rule` with the given handling decision.
    pub fn for_handled_event(event: &Event, rule: &Rule, handling: &str) -> Self {
        Self {
            hostname: event.hostname().unwrap_or_default().to_owned(),
            team_assignment: rule.team_assignment.clone(),
            severity: "Warning".to_owned(),
            message_body: event.message().unwrap_or_default().to_owned(),
            raw_json: Value::Object(event.fields().clone()),
            correlation_id: event.correlation_id().to_owned(),
            event_id: event.event_id().to_string(),
            rule_id: Some(rule.id),
            handling: Some(handling.to_owned()),
        }
    }

    pub fn event_id(&self) -> Option<EventId> {
        EventId::parse(&self.event_id)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message from the alert queue: muttd's own, or one the original MUTT queued. The
    /// original's `api_key` is dropped here, so it reaches no payload, file, log or error text;
    /// an alert without `_event_id` gets [`legacy_alert_id`].
    pub fn from_queue(raw: &[u8]) -> Result<QueuedAlert, AlertError> {
        let mut object = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(AlertError::NotAnObject),
            Err(e) => return Err(AlertError::InvalidJson(e.to_string())),
        };
        // A map of JSON values always serialises.
        let scrubbed = object.remove(ORIGINAL_API_KEY).map(|_| serde_json::to_vec(&object).unwrap_or_default());
        let retry_count = object.get(MOOG_RETRY_COUNT).map_or(0, retry_counter);
        if object.get(EVENT_ID).and_then(Value::as_str).is_none_or(str::is_empty) {
            let id = legacy_alert_id(&object);
            object.insert(EVENT_ID.to_owned(), Value::from(id.hyphenated().to_string()));
        }
        let alert = serde_json::from_value(Value::Object(object)).map_err(|e| AlertError::NotAnAlert(e.to_string()))?;
        Ok(QueuedAlert { alert, scrubbed, retry_count })
    }
}

/// Why a queued message is not an alert.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlertError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("not an alert: {0}")]
    NotAnAlert(String),
}

/// An alert as read from the alert queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedAlert {
    pub alert: Alert,
    /// When the message carried the original's `api_key`: the message without it, to be
    /// re-queued or dead-lettered in place of the leased bytes (no secret in a queue or DLQ).
    pub scrubbed: Option<Vec<u8>>,
    /// `_moog_retry_count` as the message arrived with it (0 when absent).
    pub retry_count: u64,
}

/// The id of an alert queued without `_event_id` (by the original MUTT): a UUIDv5 of its
/// content without the retry counter, so the same alert redelivered or retried keeps one id
/// and the forwarder's delivered-id check drops a second copy. The content is the parsed
/// object re-serialised (keys sorted), not the raw bytes, because a retry re-serialises it.
pub fn legacy_alert_id(object: &Map<String, Value>) -> uuid::Uuid {
    let mut canonical = object.clone();
    canonical.remove(MOOG_RETRY_COUNT);
    canonical.remove(EVENT_ID);
    canonical.remove(ORIGINAL_API_KEY);
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    uuid::Uuid::new_v5(&LEGACY_ALERT_NAMESPACE, &bytes)
}

/// Namespace of meta-alert ids: derived from the triggering event's id, so that a redelivered
/// trigger yields the same meta-alert id (and the forwarder drops the duplicate).
const META_ALERT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d75_7474_2d6d_6574_612d_616c_6572_0001);

/// The original's signature of an unhandled message: the first 16 hex characters of the
/// SHA-1 of its UTF-8 text.
pub fn unhandled_signature(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(message.as_bytes());
    // By hand: one `format!` per byte showed in the alerter's profile.
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

impl Alert {
    /// The meta-alert sent when `threshold` unhandled messages from one host arrived within
    /// `expiry_secs` (spec §4.8): hostname `MUTT_Alerter`, the host's team.
    pub fn unhandled_meta(event: &Event, team: &str, threshold: u64, expiry_secs: u64) -> Self {
        let host = event.hostname().unwrap_or_default();
        let sample: String = event.message().unwrap_or_default().chars().take(200).collect();
        let id = uuid::Uuid::new_v5(&META_ALERT_NAMESPACE, event.event_id().to_string().as_bytes());
        Self {
            hostname: "MUTT_Alerter".to_owned(),
            team_assignment: team.to_owned(),
            severity: "Warning".to_owned(),
            message_body: format!(
                "[MUTT] Detected {threshold} unhandled messages in {expiry_secs}s from '{host}'. Sample message: {sample}"
            ),
            raw_json: Value::Object(event.fields().clone()),
            correlation_id: event.correlation_id().to_owned(),
            event_id: id.hyphenated().to_string(),
            rule_id: None,
            handling: Some("unhandled_meta_alert".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signature_is_sha1_prefix() {
        // sha1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d (FIPS 180 test vector)
        assert_eq!(unhandled_signature("abc"), "a9993e364706816a");
    }

    /// An alert as the original alerter queued it (spec §4.7).
    fn original_alert() -> Value {
        json!({"api_key": "original-secret-key", "hostname": "server-01", "team_assignment": "NETO",
               "severity": "Warning", "message_body": "CRITICAL: System failure detected",
               "raw_json": {"hostname": "server-01", "message": "CRITICAL: System failure detected",
                            "timestamp": "2025-11-08T12:00:00Z", "_correlation_id": "6f1c"},
               "_correlation_id": "6f1c"})
    }

    #[test]
    fn an_alert_queued_by_the_original_is_read_without_its_api_key() {
        let raw = serde_json::to_vec(&original_alert()).unwrap();
        let q = Alert::from_queue(&raw).unwrap();
        assert_eq!(q.alert.hostname, "server-01");
        assert_eq!(q.alert.correlation_id, "6f1c");
        assert_eq!(q.alert.raw_json["timestamp"], "2025-11-08T12:00:00Z");
        assert_eq!((q.alert.rule_id, q.alert.handling.as_deref()), (None, None));
        assert_eq!(q.retry_count, 0);
        let scrubbed: Value = serde_json::from_slice(q.scrubbed.as_deref().unwrap()).unwrap();
        let mut want = original_alert();
        want.as_object_mut().unwrap().remove("api_key");
        assert_eq!(scrubbed, want, "only the key is dropped");
        assert!(!q.alert.to_json().contains("original-secret-key"));
        assert!(!format!("{q:?}").contains("original-secret-key"));
    }

    #[test]
    fn a_legacy_alert_keeps_one_id_across_retries_and_key_order() {
        let raw = serde_json::to_vec(&original_alert()).unwrap();
        let id = Alert::from_queue(&raw).unwrap().alert.event_id;
        assert!(EventId::parse(&id).is_some(), "{id}");
        let mut retried = original_alert();
        retried["_moog_retry_count"] = json!(2);
        retried.as_object_mut().unwrap().remove("api_key");
        let q = Alert::from_queue(&serde_json::to_vec(&retried).unwrap()).unwrap();
        assert_eq!(q.alert.event_id, id);
        assert_eq!((q.retry_count, q.scrubbed), (2, None));
        // Reordered keys (another serialiser) give the same id; other content another one.
        let reordered = br#"{"_correlation_id":"6f1c","severity":"Warning","team_assignment":"NETO","api_key":"k","hostname":"server-01","message_body":"CRITICAL: System failure detected","raw_json":{"_correlation_id":"6f1c","timestamp":"2025-11-08T12:00:00Z","message":"CRITICAL: System failure detected","hostname":"server-01"}}"#;
        assert_eq!(Alert::from_queue(reordered).unwrap().alert.event_id, id);
        let mut other = original_alert();
        other["_correlation_id"] = json!("7a2d");
        assert_ne!(Alert::from_queue(&serde_json::to_vec(&other).unwrap()).unwrap().alert.event_id, id);
    }

    #[test]
    fn muttd_alerts_and_unreadable_messages() {
        let e = Event::from_value(
            json!({"hostname": "h", "message": "m", "_event_id": "01900000-0000-7000-8000-000000000001"}),
        )
        .unwrap();
        let a = Alert::unhandled_meta(&e, "NETO", 3, 60);
        let q = Alert::from_queue(a.to_json().as_bytes()).unwrap();
        assert_eq!((q.alert, q.scrubbed, q.retry_count), (a, None, 0));
        for (count, want) in [(json!(6), 6), (json!(6.0), 6), (json!("7"), 7), (json!(-1), 0), (json!(null), 0)] {
            let v = json!({"hostname": "h", "_moog_retry_count": count});
            assert_eq!(Alert::from_queue(&serde_json::to_vec(&v).unwrap()).unwrap().retry_count, want, "{v}");
        }
        assert_eq!(Alert::from_queue(b"[1]"), Err(AlertError::NotAnObject));
        assert!(matches!(Alert::from_queue(b"{"), Err(AlertError::InvalidJson(_))));
        let bad = Alert::from_queue(br#"{"api_key": "original-secret-key", "hostname": 5}"#).unwrap_err();
        assert!(matches!(bad, AlertError::NotAnAlert(_)) && !bad.to_string().contains("original-secret-key"), "{bad}");
    }

    #[test]
    fn meta_alert_text_and_stable_id() {
        let e = Event::from_value(json!({"hostname": "router1", "message": "fan tray ok", "_event_id": "01900000-0000-7000-8000-000000000001"})).unwrap();
        let a = Alert::unhandled_meta(&e, "NETO", 3, 86400);
        assert_eq!(
            a.message_body,
            "[MUTT] Detected 3 unhandled messages in 86400s from 'router1'. Sample message: fan tray ok"
        );
        assert_eq!(a.hostname, "MUTT_Alerter");
        assert_eq!(a.event_id, Alert::unhandled_meta(&e, "NETO", 3, 86400).event_id);
        assert_ne!(a.event_id, e.event_id().to_string());
    }
}

//! The alert message on `mutt:alert_queue`: what the alerter hands to the forwarder.
//!
//! Field names are the original's (spec §3.2) so that existing tooling that reads the queue or
//! the DLQ keeps working. Deliberate differences: there is no `api_key` (secrets never enter a
//! queue), and `_event_id`, `rule_id` and `handling` are added for idempotent delivery and for
//! the record of what went where.

use crate::event::{Event, EventId};
use crate::rule::Rule;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::{Digest, Sha1};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub hostname: String,
    pub team_assignment: String,
    /// The original always sends the literal `Warning`; kept for the `legacy` output format.
    pub severity: String,
    pub message_body: String,
    /// The whole event as ingested.
    pub raw_json: Value,
    #[serde(rename = "_correlation_id")]
    pub correlation_id: String,
    #[serde(rename = "_event_id")]
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
}

/// Namespace of meta-alert ids: derived from the triggering event's id, so that a redelivered
/// trigger yields the same meta-alert id (and the forwarder drops the duplicate).
const META_ALERT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d75_7474_2d6d_6574_612d_616c_6572_0001);

/// The original's signature of an unhandled message: the first 16 hex characters of the
/// SHA-1 of its UTF-8 text.
pub fn unhandled_signature(message: &str) -> String {
    let digest = Sha1::digest(message.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..16].to_owned()
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

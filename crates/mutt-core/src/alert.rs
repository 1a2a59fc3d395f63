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

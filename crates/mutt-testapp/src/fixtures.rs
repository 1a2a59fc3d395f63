//! Data that the tests of several crates build alike.

use mutt_core::{EventId, MatchType};
use mutt_store::{AuditRecord, NewRule};

/// An active `contains` rule on `match_string` at priority 10 for team NETO: page and ticket
/// in production, ticket only on development hosts.
pub fn rule(match_string: &str) -> NewRule {
    NewRule {
        match_string: Some(match_string.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 10,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Ticket_only".into(),
        team_assignment: "NETO".into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    }
}

/// An audit row of a new event from router1 that `rule_id` matched, written now: paged and
/// forwarded.
pub fn audit_row(rule_id: i32) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: chrono::Utc::now(),
        hostname: "router1".into(),
        matched_rule_id: rule_id,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: r#"{"hostname":"router1","message":"x"}"#.into(),
        silenced_by: None,
        flap_suppressed: false,
    }
}

/// A consumer of `role` with a pod name of its own: `prefix` and six random hex digits, so
/// that workers of parallel tests on one backend never share heartbeats or processing lists.
pub fn consumer(role: mutt_queue::WorkerRole, prefix: &str) -> mutt_queue::ConsumerConfig {
    let pod = format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    mutt_queue::ConsumerConfig::new(role, mutt_core::PodName::parse(pod).expect("a valid pod name"))
}

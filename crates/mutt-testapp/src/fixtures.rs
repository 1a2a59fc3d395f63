//! Data that the tests of several crates build alike.

use mutt_core::MatchType;
use mutt_store::NewRule;

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

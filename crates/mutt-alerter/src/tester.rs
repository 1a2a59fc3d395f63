//! The rule tester: what the alerter would do with an example event, and why.

use mutt_core::rule::{Explanation, Skipped};
use mutt_core::{Event, RuleSet, decision_forwards};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandlingReport {
    pub handling: String,
    pub forwarded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleTestReport {
    /// The event as the alerter sees it (after ingest normalisation).
    pub event: serde_json::Value,
    /// The id of the rule that would handle it, if any.
    pub matched_rule_id: Option<i32>,
    pub team: Option<String>,
    /// The handling on a production host and on a development host.
    pub production: Option<HandlingReport>,
    pub development: Option<HandlingReport>,
    /// Whether this hostname is a development host now.
    pub host_is_development: bool,
    /// Rules tried before the match (or all, when none matched), with why each did not match.
    pub not_matched: Vec<Skipped>,
}

/// Tests one event against a rule set.
pub fn test_event(rules: &RuleSet, event: &Event) -> RuleTestReport {
    let Explanation { matched, skipped } = rules.explain(event);
    let handling = |h: &str| HandlingReport { handling: h.to_owned(), forwarded: decision_forwards(h) };
    RuleTestReport {
        event: serde_json::Value::Object(event.fields().clone()),
        matched_rule_id: matched.as_ref().map(|r| r.id),
        team: matched.as_ref().map(|r| r.team_assignment.clone()),
        production: matched.as_ref().map(|r| handling(&r.prod_handling)),
        development: matched.as_ref().map(|r| handling(&r.dev_handling)),
        host_is_development: event.hostname().is_some_and(|h| rules.is_development_host(h)),
        not_matched: skipped,
    }
}

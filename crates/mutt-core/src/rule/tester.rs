//! The rule tester: what the alerter would do with an example event, and why (for
//! `muttd rules test`, the web API and any editor). Built on [`RuleSet::explain`].

use super::{Explanation, RuleSet, Skipped, decision_forwards};
use crate::event::Event;
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
    /// The matched rule's flap limit, when it has one (informational: whether this event
    /// would be held back depends on how many came before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flap_limit: Option<FlapLimitReport>,
}

/// A rule's flap limit: at most `threshold` alerts per host within `window_secs` seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlapLimitReport {
    pub threshold: i32,
    pub window_secs: i32,
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
        flap_limit: matched
            .as_ref()
            .and_then(|r| Some(FlapLimitReport { threshold: r.flap_threshold?, window_secs: r.flap_window_secs? })),
        not_matched: skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{MatchType, RuleDraft, RuleSnapshot};
    use serde_json::json;

    fn rule(id: i32, s: &str, prio: i32, prod: &str, dev: &str) -> crate::Rule {
        RuleDraft {
            match_string: Some(s.into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: MatchType::Contains,
            priority: prio,
            prod_handling: prod.into(),
            dev_handling: dev.into(),
            team_assignment: "NETO".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        }
        .to_rule(id)
    }

    fn rules() -> RuleSet {
        RuleSet::compile(RuleSnapshot {
            rules: vec![
                rule(1, "CRITICAL", 10, "Page_and_ticket", "Ticket_only"),
                rule(2, "ERROR", 20, "Ticket_only", "Ignore"),
            ],
            development_hosts: ["dev-1".to_string()].into(),
            ..Default::default()
        })
    }

    #[test]
    fn reports_handling_on_both_kinds_of_host_and_why_earlier_rules_missed() {
        let e = Event::from_value(json!({"hostname": "dev-1", "message": "an ERROR happened"})).unwrap();
        let report = test_event(&rules(), &e);
        assert_eq!(report.matched_rule_id, Some(2));
        assert_eq!(report.team.as_deref(), Some("NETO"));
        assert_eq!(report.production, Some(HandlingReport { handling: "Ticket_only".into(), forwarded: true }));
        assert_eq!(report.development, Some(HandlingReport { handling: "Ignore".into(), forwarded: false }));
        assert!(report.host_is_development);
        assert_eq!(report.not_matched.len(), 1);
        assert_eq!(report.not_matched[0].rule_id, 1);
        assert!(report.not_matched[0].reason.contains("CRITICAL"), "{}", report.not_matched[0].reason);
        assert_eq!(report.event["message"], "an ERROR happened");
        assert_eq!(report.flap_limit, None);
        assert!(json!(report).get("flap_limit").is_none(), "absent when the rule has none");
    }

    #[test]
    fn the_matched_rules_flap_limit_is_reported() {
        let mut flapping = rule(3, "FLAP", 5, "Page_only", "Ignore");
        (flapping.flap_threshold, flapping.flap_window_secs) = (Some(5), Some(60));
        let rules = RuleSet::compile(RuleSnapshot { rules: vec![flapping], ..Default::default() });
        let e = Event::from_value(json!({"hostname": "r1", "message": "FLAP FLAP"})).unwrap();
        let report = test_event(&rules, &e);
        assert_eq!(report.flap_limit, Some(FlapLimitReport { threshold: 5, window_secs: 60 }));
        assert_eq!(json!(report)["flap_limit"], json!({"threshold": 5, "window_secs": 60}));
    }

    #[test]
    fn no_match_lists_every_rule() {
        let e = Event::from_value(json!({"hostname": "r1", "message": "all fine"})).unwrap();
        let report = test_event(&rules(), &e);
        assert_eq!((report.matched_rule_id, report.production, report.host_is_development), (None, None, false));
        assert_eq!(report.not_matched.iter().map(|s| s.rule_id).collect::<Vec<_>>(), [1, 2]);
    }
}

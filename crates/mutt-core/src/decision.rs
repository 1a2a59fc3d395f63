//! What the alerter does with one event: the rule that handles it, for which environment,
//! and whether it is forwarded, or that no rule handles it (spec §4.3–4.5).

use crate::event::EventFields;
use crate::rule::{Rule, RuleSet, decision_forwards};

/// Production or development host (`development_hosts` holds exact, case-sensitive names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostEnvironment {
    Production,
    Development,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// A rule matched: write an audit row; send an alert when `forward` is set.
    Handled {
        rule: &'a Rule,
        environment: HostEnvironment,
        /// The rule's prod or dev handling string, verbatim (e.g. `Page_and_ticket`).
        handling: &'a str,
        forward: bool,
    },
    /// No rule matched: counted towards the unhandled meta-alert, not audited.
    Unhandled,
}

/// Decides one event against the current rule set.
pub fn decide<'a>(rules: &'a RuleSet, event: &(impl EventFields + ?Sized)) -> Decision<'a> {
    let Some(rule) = rules.first_match(event) else {
        return Decision::Unhandled;
    };
    let environment = match event.hostname() {
        Some(h) if rules.is_development_host(h) => HostEnvironment::Development,
        _ => HostEnvironment::Production,
    };
    let handling = match environment {
        HostEnvironment::Production => rule.prod_handling.as_str(),
        HostEnvironment::Development => rule.dev_handling.as_str(),
    };
    Decision::Handled { rule, environment, handling, forward: decision_forwards(handling) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::rule::{MatchType, RuleSnapshot};
    use serde_json::json;

    #[test]
    fn dev_hosts_get_dev_handling() {
        let rule = Rule {
            id: 7,
            match_string: Some("CRITICAL".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: MatchType::Contains,
            priority: 10,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NETO".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        };
        let rs = RuleSet::compile(RuleSnapshot {
            rules: vec![rule],
            development_hosts: ["dev-1".to_string()].into(),
            ..Default::default()
        });
        let prod = Event::from_value(json!({"hostname": "p", "message": "CRITICAL"})).unwrap();
        let dev = Event::from_value(json!({"hostname": "dev-1", "message": "CRITICAL"})).unwrap();
        let none = Event::from_value(json!({"hostname": "p", "message": "ok"})).unwrap();
        assert!(matches!(
            decide(&rs, &prod),
            Decision::Handled {
                environment: HostEnvironment::Production,
                handling: "Page_and_ticket",
                forward: true,
                ..
            }
        ));
        assert!(matches!(
            decide(&rs, &dev),
            Decision::Handled { environment: HostEnvironment::Development, handling: "Ignore", forward: false, .. }
        ));
        assert_eq!(decide(&rs, &none), Decision::Unhandled);
    }
}

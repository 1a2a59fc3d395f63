//! Alert rules and the first-match decision procedure of the original (spec §4.4).
//!
//! Rules are tried in priority order (lower number first, then lower id); the first rule that
//! matches wins. An event that carries a `trap_oid` only ever matches through the OID branch of
//! a rule that has a `trap_oid`; otherwise the text branch applies (`contains` or `regex` on
//! `message`, with an optional exact `syslog_severity` filter).

use crate::event::Event;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    Contains,
    Regex,
    OidPrefix,
}

impl MatchType {
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchType::Contains => "contains",
            MatchType::Regex => "regex",
            MatchType::OidPrefix => "oid_prefix",
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MatchType {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contains" => Ok(MatchType::Contains),
            "regex" => Ok(MatchType::Regex),
            "oid_prefix" => Ok(MatchType::OidPrefix),
            other => Err(RuleError::UnknownMatchType(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("unknown match_type {0:?} (expected contains, regex or oid_prefix)")]
    UnknownMatchType(String),
    #[error("rule {id}: invalid regex: {reason}")]
    InvalidRegex { id: i32, reason: String },
}

/// One row of `alert_rules` (active or not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: i32,
    pub match_string: Option<String>,
    pub trap_oid: Option<String>,
    pub syslog_severity: Option<i32>,
    pub match_type: MatchType,
    pub priority: i32,
    pub prod_handling: String,
    pub dev_handling: String,
    pub team_assignment: String,
    pub is_active: bool,
}

/// Handling decisions that send an alert to Moogsoft (compared case-insensitively); any other
/// decision (`Ignore`, `Log_only`, …) is audit only.
pub const FORWARDING_DECISIONS: [&str; 3] = ["page_and_ticket", "page_only", "ticket_only"];

/// Returns whether a handling decision forwards the event to Moogsoft.
pub fn decision_forwards(decision: &str) -> bool {
    FORWARDING_DECISIONS.iter().any(|d| d.eq_ignore_ascii_case(decision))
}

/// Everything the alerter caches from the store: rules and the two lookup tables.
#[derive(Clone, Debug, Default)]
pub struct RuleSnapshot {
    pub rules: Vec<Rule>,
    pub development_hosts: HashSet<String>,
    pub device_teams: HashMap<String, String>,
}

/// A compiled, ordered set of active rules plus the lookups, ready to evaluate events.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    development_hosts: HashSet<String>,
    device_teams: HashMap<String, String>,
    /// Rules left out of this generation (invalid regex), with the reason.
    excluded: Vec<RuleError>,
}

#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    /// Lower-cased `match_string` for `contains`.
    needle: Option<String>,
    regex: Option<Regex>,
    /// `trap_oid` without a leading dot, so `.1.3.6` and `1.3.6` match alike.
    oid: Option<String>,
}

impl RuleSet {
    /// Builds the set from a snapshot: drops inactive rules, sorts by (priority, id), compiles
    /// regexes case-insensitively and excludes (and reports) rules whose pattern is invalid.
    pub fn compile(snapshot: RuleSnapshot) -> Self {
        let mut rules: Vec<Rule> = snapshot.rules.into_iter().filter(|r| r.is_active).collect();
        rules.sort_by_key(|r| (r.priority, r.id));
        let mut compiled = Vec::with_capacity(rules.len());
        let mut excluded = Vec::new();
        for rule in rules {
            let pattern = rule.match_string.as_deref().filter(|s| !s.is_empty());
            let regex = match (rule.match_type, pattern) {
                (MatchType::Regex, Some(p)) => match RegexBuilder::new(p).case_insensitive(true).build() {
                    Ok(re) => Some(re),
                    Err(e) => {
                        excluded.push(RuleError::InvalidRegex { id: rule.id, reason: e.to_string() });
                        continue;
                    }
                },
                _ => None,
            };
            compiled.push(CompiledRule {
                needle: pattern.map(str::to_lowercase),
                oid: rule.trap_oid.as_deref().filter(|s| !s.is_empty()).map(|s| s.trim_start_matches('.').to_owned()),
                regex,
                rule,
            });
        }
        Self {
            rules: compiled,
            development_hosts: snapshot.development_hosts,
            device_teams: snapshot.device_teams,
            excluded,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn excluded(&self) -> &[RuleError] {
        &self.excluded
    }

    pub fn development_hosts(&self) -> &HashSet<String> {
        &self.development_hosts
    }

    pub fn device_teams(&self) -> &HashMap<String, String> {
        &self.device_teams
    }

    pub fn is_development_host(&self, hostname: &str) -> bool {
        self.development_hosts.contains(hostname)
    }

    /// Returns the first rule (by priority, then id) that matches the event.
    pub fn first_match(&self, event: &Event) -> Option<&Rule> {
        let oid = event.trap_oid().and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| s.trim_start_matches('.'));
        // A non-string trap_oid still takes the OID branch (it is "present") but never matches.
        let has_oid = oid.is_some() || event.trap_oid().is_some_and(crate::event::is_truthy);
        let body = event.message().filter(|s| !s.is_empty());
        let lowered = body.map(str::to_lowercase);
        let severity = event.syslog_severity();
        self.rules.iter().find(|c| c.matches(has_oid, oid, body, lowered.as_deref(), severity)).map(|c| &c.rule)
    }
}

impl CompiledRule {
    fn matches(
        &self,
        has_oid: bool,
        oid: Option<&str>,
        body: Option<&str>,
        lowered: Option<&str>,
        severity: Option<&Value>,
    ) -> bool {
        if has_oid && let Some(prefix) = &self.oid {
            // OID branch: decided here, the text branch is not tried for this rule.
            return self.rule.match_type == MatchType::OidPrefix && oid.is_some_and(|o| o.starts_with(prefix.as_str()));
        }
        let (Some(body), Some(lowered), Some(needle)) = (body, lowered, &self.needle) else {
            return false;
        };
        if let Some(want) = self.rule.syslog_severity
            && !severity_equals(severity, want)
        {
            return false;
        }
        match self.rule.match_type {
            MatchType::Contains => lowered.contains(needle.as_str()),
            MatchType::Regex => self.regex.as_ref().is_some_and(|re| re.is_match(body)),
            MatchType::OidPrefix => false,
        }
    }
}

/// Numeric equality only: 3 equals 3.0, never "3" or "Error"; absent never equals.
fn severity_equals(value: Option<&Value>, want: i32) -> bool {
    match value {
        Some(Value::Number(n)) => n.as_f64() == Some(f64::from(want)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn rule(id: i32, mt: MatchType, s: Option<&str>, oid: Option<&str>, prio: i32) -> Rule {
        Rule {
            id,
            match_string: s.map(Into::into),
            trap_oid: oid.map(Into::into),
            syslog_severity: None,
            match_type: mt,
            priority: prio,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NETO".into(),
            is_active: true,
        }
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet::compile(RuleSnapshot { rules, ..Default::default() })
    }

    fn ev(v: Value) -> Event {
        Event::from_value(v).unwrap()
    }

    fn matched(rs: &RuleSet, v: Value) -> Option<i32> {
        rs.first_match(&ev(v)).map(|r| r.id)
    }

    #[test]
    fn lower_priority_wins_then_lower_id() {
        let rs = set(vec![
            rule(3, MatchType::Contains, Some("crit"), None, 10),
            rule(2, MatchType::Contains, Some("critical"), None, 10),
            rule(1, MatchType::Contains, Some("system"), None, 20),
        ]);
        assert_eq!(matched(&rs, json!({"message": "CRITICAL system"})), Some(2));
    }

    #[test]
    fn contains_is_case_insensitive_and_regex_searches() {
        let rs = set(vec![
            rule(1, MatchType::Regex, Some("LINK-(UP|DOWN)"), None, 5),
            rule(2, MatchType::Contains, Some("ERROR"), None, 20),
        ]);
        assert_eq!(matched(&rs, json!({"message": "x link-down y"})), Some(1));
        assert_eq!(matched(&rs, json!({"message": "an error"})), Some(2));
        assert_eq!(matched(&rs, json!({"message": "fine"})), None);
        assert_eq!(matched(&rs, json!({"message": ""})), None);
        assert_eq!(matched(&rs, json!({"message": 42})), None);
    }

    #[test]
    fn oid_branch_excludes_text_branch() {
        let mut text_with_oid = rule(1, MatchType::Contains, Some("link"), Some(".1.3.6.1.6"), 1);
        text_with_oid.team_assignment = "X".into();
        let rs = set(vec![
            text_with_oid,
            rule(2, MatchType::OidPrefix, Some("link"), Some(".1.3.6.1.6.3.1.1.5"), 2),
            rule(3, MatchType::Contains, Some("link"), None, 3),
        ]);
        // Event with OID: rule 1 takes the OID branch and fails; rule 2 matches by prefix.
        assert_eq!(matched(&rs, json!({"message": "link", "trap_oid": "1.3.6.1.6.3.1.1.5.3"})), Some(2));
        // Leading dot on either side matches alike.
        assert_eq!(matched(&rs, json!({"message": "zz", "trap_oid": ".1.3.6.1.6.3.1.1.5.3"})), Some(2));
        // OID that matches no OID rule: rule 3 has no trap_oid, so its text branch applies.
        assert_eq!(matched(&rs, json!({"message": "link", "trap_oid": "9.9"})), Some(3));
        // No OID: oid_prefix never matches by text; rule 1 matches by text.
        assert_eq!(matched(&rs, json!({"message": "link"})), Some(1));
    }

    #[test]
    fn severity_filter_is_numeric_equality() {
        let mut r = rule(1, MatchType::Contains, Some("x"), None, 1);
        r.syslog_severity = Some(3);
        let rs = set(vec![r]);
        assert_eq!(matched(&rs, json!({"message": "x", "syslog_severity": 3})), Some(1));
        assert_eq!(matched(&rs, json!({"message": "x", "syslog_severity": 3.0})), Some(1));
        assert_eq!(matched(&rs, json!({"message": "x", "syslog_severity": "3"})), None);
        assert_eq!(matched(&rs, json!({"message": "x", "syslog_severity": 4})), None);
        assert_eq!(matched(&rs, json!({"message": "x"})), None);
    }

    #[test]
    fn invalid_regex_is_excluded_and_inactive_rules_ignored() {
        let mut inactive = rule(3, MatchType::Contains, Some("a"), None, 1);
        inactive.is_active = false;
        let rs = set(vec![
            rule(1, MatchType::Regex, Some("(unclosed"), None, 1),
            rule(2, MatchType::Contains, Some("a"), None, 2),
            inactive,
        ]);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs.excluded().len(), 1);
        assert_eq!(matched(&rs, json!({"message": "a"})), Some(2));
    }

    #[test]
    fn forwarding_decisions() {
        assert!(decision_forwards("Page_and_ticket"));
        assert!(decision_forwards("TICKET_ONLY"));
        assert!(!decision_forwards("Ignore"));
        assert!(!decision_forwards(""));
    }
}

//! Alert rules and the first-match decision procedure of the original (spec §4.4).
//!
//! Rules are tried in priority order (lower number first, then lower id); the first rule that
//! matches wins. An event that carries a `trap_oid` only ever matches through the OID branch of
//! a rule that has a `trap_oid`; otherwise the text branch applies (`contains` or `regex` on
//! `message`, with an optional exact `syslog_severity` filter).
//!
//! - [`draft`]: a rule as someone wrote it ([`RuleDraft`]), parsed into a [`ValidRule`] the
//!   store accepts (`muttd rules import`, the web API, any editor);
//! - [`tester`]: what the alerter would do with an example event, and why.

pub mod draft;
mod lowered;
pub mod tester;

pub use draft::{RuleDraft, ValidRule};

use crate::event::EventFields;
use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
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

/// Why a rule is refused (parse) or left out of a rule set (compile). Each names its field.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("unknown match_type {0:?} (expected contains, regex or oid_prefix)")]
    UnknownMatchType(String),
    /// A stored rule whose pattern does not compile (the alerter leaves it out).
    #[error("rule {id}: invalid regex: {reason}")]
    InvalidRegex { id: i32, reason: String },
    /// A field the rule's match type needs is absent or empty.
    #[error("{field}: required when match_type is {match_type}")]
    Required { field: &'static str, match_type: MatchType },
    #[error("{field}: {value} is out of range (must be {min} to {max})")]
    OutOfRange { field: &'static str, value: i64, min: i64, max: i64 },
    /// Lengths in characters, as the database's VARCHAR(n) counts them.
    #[error("{field}: must be {min} to {max} characters long, not {len}")]
    Length { field: &'static str, min: usize, max: usize, len: usize },
    /// PostgreSQL text cannot hold NUL; refused on both backends alike.
    #[error("{field}: must not contain NUL characters")]
    Nul { field: &'static str },
    /// One of the two flap fields without the other (`field` is the missing one).
    #[error("{field}: required with {} (set both or neither)", flap_partner(field))]
    FlapPair { field: &'static str },
    /// The pattern of a draft does not compile within [`REGEX_SIZE_LIMIT`].
    #[error("match_string: not a valid regex: {reason}")]
    Regex { reason: String },
}

impl RuleError {
    /// The rule field at fault (`match_string`, `priority`, …), for a form or an API error.
    pub fn field(&self) -> &'static str {
        match self {
            RuleError::UnknownMatchType(_) => "match_type",
            RuleError::InvalidRegex { .. } | RuleError::Regex { .. } => "match_string",
            RuleError::Required { field, .. }
            | RuleError::OutOfRange { field, .. }
            | RuleError::Length { field, .. }
            | RuleError::Nul { field }
            | RuleError::FlapPair { field } => field,
        }
    }
}

/// The other flap field of a [`RuleError::FlapPair`].
fn flap_partner(field: &str) -> &'static str {
    if field == "flap_threshold" { "flap_window_secs" } else { "flap_threshold" }
}

/// Compiled size limit of one rule's regex (the regex crate's default, named so that the
/// draft check and the alerter's compile cannot drift apart).
pub const REGEX_SIZE_LIMIT: usize = 10 * (1 << 20);
/// Lazy DFA cache limit of one rule's regex (the regex crate's default).
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 * (1 << 20);

/// Compiles a rule pattern as the alerter matches it: case-insensitive, within the limits.
pub fn compile_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
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
    /// Flap suppression: more than this many forwarded events for one host within
    /// `flap_window_secs` are audited but not forwarded, and one summary alert follows the
    /// window (both set or both absent; absent in the original's rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_window_secs: Option<i32>,
}

impl Rule {
    /// The rule's flap limit as (events, window), when it has one.
    pub fn flap_limit(&self) -> Option<(u64, std::time::Duration)> {
        let (n, secs) = (self.flap_threshold?, self.flap_window_secs?);
        (n > 0 && secs > 0).then(|| (n as u64, std::time::Duration::from_secs(secs as u64)))
    }
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
    /// Active rules in decision order: priority ascending, then id.
    rules: Vec<CompiledRule>,
    /// Finds every candidate in one pass over the message, so that the cost per event does not
    /// grow with the number of rules; the lowest index among candidates is the first match.
    matcher: Matcher,
    development_hosts: HashSet<String>,
    device_teams: HashMap<String, String>,
    /// Rules left out of this generation (invalid regex), with the reason.
    excluded: Vec<RuleError>,
}

/// One automaton for all `contains` needles and one regex set for all `regex` patterns.
#[derive(Debug, Default)]
struct Matcher {
    needles: Option<AhoCorasick>,
    /// Needle pattern id → indices of the rules using that needle.
    needle_rules: Vec<Vec<usize>>,
    regexes: Option<RegexSet>,
    /// The same patterns for the lower-cased message, used when it is ASCII ([`lowered`]).
    lowered: Option<RegexSet>,
    /// Regex-set pattern id → rule index.
    regex_rules: Vec<usize>,
    /// Rules with a `trap_oid` (they take the OID branch for events with one), ascending.
    oid_rules: Vec<usize>,
}

impl Matcher {
    fn build(rules: &[CompiledRule]) -> Self {
        let mut m = Matcher::default();
        let mut needles: Vec<&str> = Vec::new();
        let mut needle_ids: HashMap<&str, usize> = HashMap::new();
        let mut patterns = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.oid.is_some() {
                m.oid_rules.push(i);
            }
            match (r.rule.match_type, r.needle.as_deref()) {
                (MatchType::Contains, Some(n)) => {
                    let id = *needle_ids.entry(n).or_insert_with(|| {
                        needles.push(n);
                        m.needle_rules.push(Vec::new());
                        needles.len() - 1
                    });
                    m.needle_rules[id].push(i);
                }
                (MatchType::Regex, Some(_)) if r.regex.is_some() => {
                    patterns.push(r.rule.match_string.clone().unwrap_or_default());
                    m.regex_rules.push(i);
                }
                _ => {}
            }
        }
        if !needles.is_empty() {
            m.needles = AhoCorasick::new(&needles).ok();
        }
        if !patterns.is_empty() {
            // Each pattern compiled alone already; a set too large for the engine's limits
            // falls back to trying the rules' own regexes one by one.
            m.regexes = RegexSetBuilder::new(&patterns)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
                .build()
                .ok();
            if m.regexes.is_some() {
                m.lowered = lowered::lowered_set(&patterns);
            }
        }
        m
    }
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
                (MatchType::Regex, Some(p)) => match compile_pattern(p) {
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
            matcher: Matcher::build(&compiled),
            rules: compiled,
            development_hosts: snapshot.development_hosts,
            device_teams: snapshot.device_teams,
            excluded,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The active rules, in decision order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
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
    pub fn first_match(&self, event: &(impl EventFields + ?Sized)) -> Option<&Rule> {
        let view = EventView::of(event);
        let mut best = usize::MAX;
        if view.has_oid {
            // Ascending: the first OID rule that matches is the best OID candidate.
            for &i in &self.matcher.oid_rules {
                let r = &self.rules[i];
                if r.rule.match_type == MatchType::OidPrefix
                    && view.oid.is_some_and(|o| r.oid.as_deref().is_some_and(|p| o.starts_with(p)))
                {
                    best = i;
                    break;
                }
            }
        }
        if let (Some(body), Some(lowered)) = (view.body, view.lowered.as_deref()) {
            let text_ok = |i: usize| {
                let r = &self.rules[i];
                !(view.has_oid && r.oid.is_some())
                    && r.rule.syslog_severity.is_none_or(|want| severity_equals(view.severity, want))
            };
            if let Some(ac) = &self.matcher.needles {
                for m in ac.find_overlapping_iter(lowered) {
                    for &i in &self.matcher.needle_rules[m.pattern().as_usize()] {
                        if i < best && text_ok(i) {
                            best = i;
                        }
                    }
                }
            }
            // Same pattern ids in both sets; the lower-cased one is the cheap one.
            let set = match &self.matcher.lowered {
                Some(small) if body.is_ascii() => Some((small, lowered)),
                _ => self.matcher.regexes.as_ref().map(|s| (s, body)),
            };
            match set {
                Some((set, text)) => {
                    for k in set.matches(text).iter() {
                        let i = self.matcher.regex_rules[k];
                        if i < best && text_ok(i) {
                            best = i;
                        }
                    }
                }
                None => {
                    for &i in &self.matcher.regex_rules {
                        if i < best && text_ok(i) && self.rules[i].regex.as_ref().is_some_and(|re| re.is_match(body)) {
                            best = i;
                        }
                    }
                }
            }
        }
        self.rules.get(best).map(|c| &c.rule)
    }

    /// The reference procedure: tries each rule in order (spec §4.4). Same answer as
    /// [`RuleSet::first_match`], at a cost linear in the number of rules; kept for the rule
    /// tester and as the oracle of the matcher's property test.
    pub fn first_match_linear(&self, event: &(impl EventFields + ?Sized)) -> Option<&Rule> {
        let v = EventView::of(event);
        self.rules.iter().find(|c| c.check(&v).is_ok()).map(|c| &c.rule)
    }

    /// Why each rule before the winner did not match, and the winner (for the rule tester).
    pub fn explain(&self, event: &(impl EventFields + ?Sized)) -> Explanation {
        let v = EventView::of(event);
        let mut skipped = Vec::new();
        for c in &self.rules {
            match c.check(&v) {
                Ok(()) => {
                    return Explanation { matched: Some(c.rule.clone()), skipped };
                }
                Err(reason) => skipped.push(Skipped { rule_id: c.rule.id, priority: c.rule.priority, reason }),
            }
        }
        Explanation { matched: None, skipped }
    }
}

/// The rule tester's answer: the winning rule, and for every rule tried before it, why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub matched: Option<Rule>,
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub rule_id: i32,
    pub priority: i32,
    pub reason: String,
}

/// The parts of an event the rules look at, extracted once.
struct EventView<'a> {
    has_oid: bool,
    oid: Option<&'a str>,
    body: Option<&'a str>,
    lowered: Option<String>,
    severity: Option<&'a Value>,
}

impl<'a> EventView<'a> {
    fn of(event: &'a (impl EventFields + ?Sized)) -> Self {
        let oid = event.trap_oid().and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| s.trim_start_matches('.'));
        // A non-string trap_oid still takes the OID branch (it is "present") but never matches.
        let has_oid = oid.is_some() || event.trap_oid().is_some_and(crate::event::is_truthy);
        let body = event.message().filter(|s| !s.is_empty());
        Self { has_oid, oid, body, lowered: body.map(str::to_lowercase), severity: event.syslog_severity() }
    }
}

impl CompiledRule {
    /// Decides this rule alone; `Err` says why it does not match.
    fn check(&self, v: &EventView<'_>) -> Result<(), String> {
        if v.has_oid
            && let Some(prefix) = &self.oid
        {
            // OID branch: decided here, the text branch is not tried for this rule.
            if self.rule.match_type != MatchType::OidPrefix {
                return Err(format!(
                    "the event has a trap_oid and the rule has trap_oid {prefix}, but its match_type is {} (only oid_prefix matches OIDs)",
                    self.rule.match_type
                ));
            }
            return match v.oid {
                Some(o) if o.starts_with(prefix.as_str()) => Ok(()),
                Some(o) => Err(format!("trap_oid {o} does not start with {prefix}")),
                None => Err("the event's trap_oid is not text".into()),
            };
        }
        if self.rule.match_type == MatchType::OidPrefix {
            return Err(if self.oid.is_some() {
                "oid_prefix rule: the event has no trap_oid".into()
            } else {
                "oid_prefix rule without trap_oid never matches".into()
            });
        }
        let Some(needle) = &self.needle else {
            return Err("the rule has no match_string".into());
        };
        let (Some(body), Some(lowered)) = (v.body, v.lowered.as_deref()) else {
            return Err("the event has no message text".into());
        };
        if let Some(want) = self.rule.syslog_severity
            && !severity_equals(v.severity, want)
        {
            let got = v.severity.map(Value::to_string).unwrap_or_else(|| "none".into());
            return Err(format!("syslog_severity must be {want}, the event has {got}"));
        }
        let hit = match self.rule.match_type {
            MatchType::Contains => lowered.contains(needle.as_str()),
            MatchType::Regex => self.regex.as_ref().is_some_and(|re| re.is_match(body)),
            MatchType::OidPrefix => false,
        };
        if hit {
            Ok(())
        } else {
            Err(format!(
                "message does not {} {:?}",
                if self.rule.match_type == MatchType::Regex { "match regex" } else { "contain" },
                self.rule.match_string.as_deref().unwrap_or("")
            ))
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
    use crate::event::Event;
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
            flap_threshold: None,
            flap_window_secs: None,
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
    fn regex_rules_match_ascii_messages_lower_cased_and_others_as_they_are() {
        let rs = set(vec![
            rule(1, MatchType::Regex, Some(r"LINK-\d+-down"), None, 1),
            rule(2, MatchType::Regex, Some("caf[EÉ]"), None, 2),
        ]);
        assert!(rs.matcher.lowered.is_some());
        assert_eq!(matched(&rs, json!({"message": "x Link-3-DOWN y"})), Some(1));
        assert_eq!(matched(&rs, json!({"message": "CAFE"})), Some(2));
        // Not ASCII: the case-insensitive set.
        assert_eq!(matched(&rs, json!({"message": "CAFÉ é"})), Some(2));
        assert_eq!(matched(&rs, json!({"message": "link-x-down"})), None);
        // A pattern that is case-sensitive in part: the case-insensitive set for everything.
        let rs = set(vec![
            rule(1, MatchType::Regex, Some("(?-i)Up"), None, 1),
            rule(2, MatchType::Regex, Some("down"), None, 2),
        ]);
        assert!(rs.matcher.lowered.is_none());
        assert_eq!(matched(&rs, json!({"message": "up DOWN"})), Some(2));
        assert_eq!(matched(&rs, json!({"message": "Up"})), Some(1));
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

    mod agreement {
        use super::*;
        use proptest::prelude::*;

        fn arb_rule() -> impl Strategy<Value = Rule> {
            (
                0..4i32,
                prop_oneof![Just(MatchType::Contains), Just(MatchType::Regex), Just(MatchType::OidPrefix)],
                proptest::option::of(prop_oneof![
                    Just("ab".to_string()),
                    Just("B".to_string()),
                    Just("a.".to_string()),
                    Just("(a|b)c".to_string()),
                    Just("^x".to_string()),
                    Just("(".to_string()),
                    Just("".to_string()),
                    "[abcx]{1,3}",
                    // Classes and boundaries under case folding, a pattern that turns case
                    // sensitivity back on, non-ASCII: the lowered set's edges.
                    Just("[A-C]x".to_string()),
                    Just(r"\bab\b".to_string()),
                    Just("[^a]B".to_string()),
                    Just("(?-i)B".to_string()),
                    Just("(?-i)[AB]".to_string()),
                    Just("é|K".to_string()),
                ]),
                proptest::option::of(prop_oneof![
                    Just("1.3".to_string()),
                    Just(".1.3.6".to_string()),
                    Just("1.4".to_string())
                ]),
                proptest::option::of(0..8i32),
                any::<bool>(),
            )
                .prop_map(|(priority, match_type, match_string, trap_oid, syslog_severity, is_active)| {
                    Rule {
                        id: 0,
                        match_string,
                        trap_oid,
                        syslog_severity,
                        match_type,
                        priority,
                        prod_handling: "Page_and_ticket".into(),
                        dev_handling: "Ignore".into(),
                        team_assignment: "T".into(),
                        is_active,
                        flap_threshold: None,
                        flap_window_secs: None,
                    }
                })
        }

        fn arb_event() -> impl Strategy<Value = Event> {
            (
                proptest::option::of("[abcxABé\u{212A}. ]{0,12}"),
                prop_oneof![
                    Just(Value::Null),
                    Just(json!("1.3.6.1")),
                    Just(json!(".1.3")),
                    Just(json!("1.4.2")),
                    Just(json!("2")),
                    Just(json!(5)),
                    Just(json!(""))
                ],
                prop_oneof![Just(Value::Null), (0..8i64).prop_map(Value::from), Just(json!("3")), Just(json!(3.0))],
            )
                .prop_map(|(message, oid, sev)| {
                    let mut m = serde_json::Map::new();
                    if let Some(msg) = message {
                        m.insert("message".into(), Value::from(msg));
                    }
                    if !oid.is_null() {
                        m.insert("trap_oid".into(), oid);
                    }
                    if !sev.is_null() {
                        m.insert("syslog_severity".into(), sev);
                    }
                    Event::from_value(Value::Object(m)).unwrap()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            /// The compiled matcher picks the same rule as trying each rule in order.
            #[test]
            fn compiled_matcher_agrees_with_first_match_loop(
                mut rules in proptest::collection::vec(arb_rule(), 0..25),
                events in proptest::collection::vec(arb_event(), 1..8),
                order in any::<u64>(),
            ) {
                // Ids unique but not in priority order.
                let n = rules.len() as i32;
                for (k, r) in rules.iter_mut().enumerate() {
                    r.id = ((k as u64 * 7919 + order) % 1009) as i32 * 32 + k as i32 + n;
                }
                let set = set(rules);
                for e in &events {
                    let fast = set.first_match(e).map(|r| r.id);
                    let slow = set.first_match_linear(e).map(|r| r.id);
                    prop_assert_eq!(fast, slow, "event {:?}", e);
                    let explained = set.explain(e).matched.map(|r| r.id);
                    prop_assert_eq!(explained, slow);
                }
            }
        }
    }

    #[test]
    fn explain_says_why_earlier_rules_did_not_match() {
        let mut sev = rule(1, MatchType::Contains, Some("link"), None, 1);
        sev.syslog_severity = Some(2);
        let rs = set(vec![
            sev,
            rule(2, MatchType::Regex, Some("^down"), None, 2),
            rule(3, MatchType::Contains, Some("LINK"), None, 3),
        ]);
        let e = ev(json!({"message": "link down", "syslog_severity": 4}));
        let x = rs.explain(&e);
        assert_eq!(x.matched.map(|r| r.id), Some(3));
        assert_eq!(x.skipped.len(), 2);
        assert!(x.skipped[0].reason.contains("syslog_severity must be 2"), "{}", x.skipped[0].reason);
        assert!(x.skipped[1].reason.contains("does not match regex"), "{}", x.skipped[1].reason);
    }

    #[test]
    fn many_literal_rules_share_one_automaton() {
        let rules: Vec<Rule> = (0..500)
            .map(|i| rule(i + 1, MatchType::Contains, Some(&format!("needle-{i:03}")), None, 1000 - i))
            .collect();
        let rs = set(rules);
        assert_eq!(rs.first_match(&ev(json!({"message": "x NEEDLE-250 y needle-499"}))).map(|r| r.id), Some(500));
        assert_eq!(rs.first_match(&ev(json!({"message": "nothing here"}))), None);
    }
}

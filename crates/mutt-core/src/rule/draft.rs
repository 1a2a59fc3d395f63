//! A rule as someone wrote it (a rules file, a web form, an API body), and the parse step that
//! turns it into a rule the store accepts and the alerter can use. No I/O.
//!
//! The checks are those of the database's constraints (so the store never answers a bad rule
//! with a database error) plus what the database cannot see: the regex must compile within the
//! alerter's limits, and the match fields must suit the match type (a rule that could never
//! match is refused rather than stored).

use super::{MatchType, Rule, RuleError, compile_pattern};
use serde::{Deserialize, Serialize};
use std::ops::{Deref, RangeInclusive};

/// Longest `match_string` / `trap_oid` (VARCHAR(255)).
pub const MAX_MATCH_LEN: usize = 255;
/// Longest handling decision or team name (VARCHAR(100)).
pub const MAX_NAME_LEN: usize = 100;
/// Syslog severities, emergency (0) to debug (7): the database's CHECK.
pub const SEVERITIES: RangeInclusive<i32> = 0..=7;
/// Priorities a rule may have (lower wins). The database takes any INT and the original's
/// rules files may use negative numbers to go before everything, so those stay valid; numbers
/// beyond a million either way are typing mistakes more often than intent.
pub const PRIORITIES: RangeInclusive<i32> = -1_000_000..=1_000_000;
/// Events per window a rule with flap suppression forwards before it suppresses.
pub const FLAP_THRESHOLDS: RangeInclusive<i32> = 1..=1_000_000;
/// A flap window, in seconds: one second to one day.
pub const FLAP_WINDOWS_SECS: RangeInclusive<i32> = 1..=86_400;

/// A rule to create, unchecked: the nine fields of `alert_rules` without the id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDraft {
    pub match_string: Option<String>,
    pub trap_oid: Option<String>,
    #[serde(default)]
    pub syslog_severity: Option<i32>,
    /// `contains` when absent, as the original's API and the table's default.
    #[serde(default = "default_match_type")]
    pub match_type: MatchType,
    #[serde(default = "default_priority")]
    pub priority: i32,
    pub prod_handling: String,
    pub dev_handling: String,
    pub team_assignment: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Flap suppression (see [`Rule::flap_threshold`]): both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_window_secs: Option<i32>,
}

fn default_match_type() -> MatchType {
    MatchType::Contains
}

fn default_priority() -> i32 {
    100
}

fn default_true() -> bool {
    true
}

/// A draft that passed [`RuleDraft::parse`]. Reads as the draft (`Deref`); only `parse` makes
/// one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidRule(RuleDraft);

impl RuleDraft {
    /// The rule this draft is once stored under `id` (no check: see [`RuleDraft::parse`]).
    pub fn into_rule(self, id: i32) -> super::Rule {
        super::Rule {
            id,
            match_string: self.match_string,
            trap_oid: self.trap_oid,
            syslog_severity: self.syslog_severity,
            match_type: self.match_type,
            priority: self.priority,
            prod_handling: self.prod_handling,
            dev_handling: self.dev_handling,
            team_assignment: self.team_assignment,
            is_active: self.is_active,
            flap_threshold: self.flap_threshold,
            flap_window_secs: self.flap_window_secs,
        }
    }

    /// Checks every field; the first problem found is the error (it names its field).
    pub fn parse(&self) -> Result<ValidRule, RuleError> {
        self.check_match()?;
        if let Some(s) = self.syslog_severity {
            in_range("syslog_severity", s, &SEVERITIES)?;
        }
        in_range("priority", self.priority, &PRIORITIES)?;
        self.check_flap()?;
        for (field, value) in [
            ("prod_handling", &self.prod_handling),
            ("dev_handling", &self.dev_handling),
            ("team_assignment", &self.team_assignment),
        ] {
            text(field, value, 1, MAX_NAME_LEN)?;
        }
        Ok(ValidRule(self.clone()))
    }

    /// The match fields: present as the match type needs them, short enough, and a regex
    /// that compiles.
    fn check_match(&self) -> Result<(), RuleError> {
        for (field, value) in [("match_string", &self.match_string), ("trap_oid", &self.trap_oid)] {
            if let Some(v) = value {
                text(field, v, 0, MAX_MATCH_LEN)?;
            }
        }
        let (field, value) = match self.match_type {
            MatchType::Contains | MatchType::Regex => ("match_string", &self.match_string),
            MatchType::OidPrefix => ("trap_oid", &self.trap_oid),
        };
        let needed = value.as_deref().filter(|s| !s.is_empty());
        let Some(needed) = needed else {
            return Err(RuleError::Required { field, match_type: self.match_type });
        };
        if self.match_type == MatchType::Regex {
            compile_pattern(needed).map_err(|e| RuleError::Regex { reason: e.to_string() })?;
        }
        Ok(())
    }

    /// The flap fields: both set (each in range) or both absent.
    fn check_flap(&self) -> Result<(), RuleError> {
        match (self.flap_threshold, self.flap_window_secs) {
            (None, None) => Ok(()),
            (Some(n), Some(secs)) => {
                in_range("flap_threshold", n, &FLAP_THRESHOLDS)?;
                in_range("flap_window_secs", secs, &FLAP_WINDOWS_SECS)
            }
            (Some(_), None) => Err(RuleError::FlapPair { field: "flap_window_secs" }),
            (None, Some(_)) => Err(RuleError::FlapPair { field: "flap_threshold" }),
        }
    }

    /// The rule this draft becomes once stored with `id`.
    pub fn to_rule(&self, id: i32) -> Rule {
        Rule {
            id,
            match_string: self.match_string.clone(),
            trap_oid: self.trap_oid.clone(),
            syslog_severity: self.syslog_severity,
            match_type: self.match_type,
            priority: self.priority,
            prod_handling: self.prod_handling.clone(),
            dev_handling: self.dev_handling.clone(),
            team_assignment: self.team_assignment.clone(),
            is_active: self.is_active,
            flap_threshold: self.flap_threshold,
            flap_window_secs: self.flap_window_secs,
        }
    }
}

fn in_range(field: &'static str, value: i32, range: &RangeInclusive<i32>) -> Result<(), RuleError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(RuleError::OutOfRange { field, value: value.into(), min: (*range.start()).into(), max: (*range.end()).into() })
}

fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), RuleError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(RuleError::Length { field, min, max, len });
    }
    if value.contains('\0') {
        return Err(RuleError::Nul { field });
    }
    Ok(())
}

impl ValidRule {
    pub fn draft(&self) -> &RuleDraft {
        &self.0
    }

    pub fn into_draft(self) -> RuleDraft {
        self.0
    }
}

impl Deref for ValidRule {
    type Target = RuleDraft;
    fn deref(&self) -> &RuleDraft {
        &self.0
    }
}

impl TryFrom<RuleDraft> for ValidRule {
    type Error = RuleError;
    fn try_from(draft: RuleDraft) -> Result<Self, RuleError> {
        draft.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(mt: MatchType, s: Option<&str>, oid: Option<&str>) -> RuleDraft {
        RuleDraft {
            match_string: s.map(Into::into),
            trap_oid: oid.map(Into::into),
            syslog_severity: None,
            match_type: mt,
            priority: 10,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NetOps".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        }
    }

    fn contains(s: &str) -> RuleDraft {
        draft(MatchType::Contains, Some(s), None)
    }

    fn refused(d: &RuleDraft) -> RuleError {
        d.parse().expect_err("the draft must be refused")
    }

    #[test]
    fn a_good_rule_of_each_type_parses_unchanged() {
        for d in [
            contains("LINK-DOWN"),
            draft(MatchType::Regex, Some(r"LINK-(UP|DOWN) on Gi\d+/\d+"), None),
            draft(MatchType::OidPrefix, None, Some(".1.3.6.1.4.1.9.9.41.2")),
            // Allowed combinations of the original (spec §4.4): a text rule with a trap_oid
            // never matches trap events; an oid_prefix rule ignores its match_string.
            draft(MatchType::Contains, Some("link"), Some("1.3.6")),
            draft(MatchType::OidPrefix, Some("unused"), Some("1.3.6")),
        ] {
            let valid = d.parse().unwrap_or_else(|e| panic!("{d:?}: {e}"));
            assert_eq!(*valid, d);
            assert_eq!(valid.to_rule(7).id, 7);
            assert_eq!(ValidRule::try_from(d.clone()).unwrap().into_draft(), d);
        }
    }

    #[test]
    fn text_rules_need_a_match_string() {
        for mt in [MatchType::Contains, MatchType::Regex] {
            for s in [None, Some("")] {
                let e = refused(&draft(mt, s, Some("1.3.6")));
                assert_eq!(e, RuleError::Required { field: "match_string", match_type: mt });
                assert_eq!(e.field(), "match_string");
                assert_eq!(e.to_string(), format!("match_string: required when match_type is {mt}"));
            }
        }
    }

    #[test]
    fn oid_prefix_rules_need_a_trap_oid() {
        for oid in [None, Some("")] {
            let e = refused(&draft(MatchType::OidPrefix, Some("LINK"), oid));
            assert_eq!(e.field(), "trap_oid");
            assert!(e.to_string().starts_with("trap_oid: required when match_type is oid_prefix"), "{e}");
        }
    }

    #[test]
    fn a_regex_must_compile_within_the_alerters_limits() {
        let e = refused(&draft(MatchType::Regex, Some("(unclosed"), None));
        assert_eq!(e.field(), "match_string");
        assert!(e.to_string().starts_with("match_string: not a valid regex:"), "{e}");
        // Short to write, too large to compile: 255 characters of nested repetition.
        let huge = format!("{}{}", r"\w{1000}".repeat(31), "x");
        assert!(huge.len() <= MAX_MATCH_LEN);
        let e = refused(&draft(MatchType::Regex, Some(&huge), None));
        assert!(e.to_string().contains("size limit"), "{e}");
        // The same text as `contains` is a plain string: fine.
        contains(&huge).parse().unwrap();
    }

    #[test]
    fn match_fields_are_at_most_255_characters() {
        let long = "é".repeat(MAX_MATCH_LEN + 1);
        let e = refused(&contains(&long));
        assert_eq!(e, RuleError::Length { field: "match_string", min: 0, max: 255, len: 256 });
        assert_eq!(e.to_string(), "match_string: must be 0 to 255 characters long, not 256");
        // Characters, not bytes: 255 two-byte characters fit.
        contains(&"é".repeat(MAX_MATCH_LEN)).parse().unwrap();
        let e = refused(&draft(MatchType::OidPrefix, None, Some(&"1".repeat(256))));
        assert_eq!(e.field(), "trap_oid");
    }

    #[test]
    fn syslog_severity_is_0_to_7() {
        for ok in [0, 3, 7] {
            RuleDraft { syslog_severity: Some(ok), ..contains("x") }.parse().unwrap();
        }
        for bad in [-1, 8, 42] {
            let e = refused(&RuleDraft { syslog_severity: Some(bad), ..contains("x") });
            assert_eq!(e.field(), "syslog_severity");
            assert_eq!(e.to_string(), format!("syslog_severity: {bad} is out of range (must be 0 to 7)"));
        }
    }

    #[test]
    fn priority_is_in_range() {
        for ok in [-1_000_000, -1, 0, 100, 1_000_000] {
            RuleDraft { priority: ok, ..contains("x") }.parse().unwrap();
        }
        for bad in [-1_000_001, 1_000_001, i32::MIN, i32::MAX] {
            let e = refused(&RuleDraft { priority: bad, ..contains("x") });
            assert_eq!(e.field(), "priority");
            assert!(e.to_string().starts_with(&format!("priority: {bad} is out of range")), "{e}");
        }
    }

    #[test]
    fn handling_and_team_are_1_to_100_characters() {
        type Set = fn(&mut RuleDraft, String);
        let setters: [(&str, Set); 3] = [
            ("prod_handling", |d, v| d.prod_handling = v),
            ("dev_handling", |d, v| d.dev_handling = v),
            ("team_assignment", |d, v| d.team_assignment = v),
        ];
        for (field, set) in setters {
            for (value, len) in [(String::new(), 0), ("x".repeat(101), 101)] {
                let mut d = contains("x");
                set(&mut d, value);
                let e = refused(&d);
                assert_eq!(e, RuleError::Length { field, min: 1, max: 100, len });
                assert!(e.to_string().starts_with(&format!("{field}: must be 1 to 100 characters")), "{e}");
            }
            let mut d = contains("x");
            set(&mut d, "y".repeat(100));
            d.parse().unwrap();
        }
    }

    #[test]
    fn nul_characters_are_refused_in_every_text_field() {
        let e = refused(&contains("a\0b"));
        assert_eq!(e, RuleError::Nul { field: "match_string" });
        let e = refused(&RuleDraft { team_assignment: "Net\0Ops".into(), ..contains("x") });
        assert_eq!(e.field(), "team_assignment");
        assert_eq!(e.to_string(), "team_assignment: must not contain NUL characters");
    }

    #[test]
    fn deserializes_with_the_defaults_of_the_original() {
        let d: RuleDraft = serde_json::from_str(
            r#"{"match_string":"X","prod_handling":"a","dev_handling":"b",
                "team_assignment":"c","reason":"extra fields (the API's reason) are ignored"}"#,
        )
        .unwrap();
        assert_eq!((d.priority, d.is_active, d.syslog_severity, d.trap_oid.as_deref()), (100, true, None, None));
        assert_eq!(d.match_type, MatchType::Contains, "match_type defaults to contains, as in the original");
        let back: RuleDraft = serde_json::from_value(serde_json::to_value(d.parse().unwrap()).unwrap()).unwrap();
        assert_eq!(back, d, "a valid rule serializes as its draft");
        let bad = serde_json::from_str::<RuleDraft>(r#"{"match_type":"glob","prod_handling":"a"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn flap_fields_come_in_pairs_within_range() {
        let flap = |n: Option<i32>, secs: Option<i32>| RuleDraft {
            flap_threshold: n,
            flap_window_secs: secs,
            ..contains("x")
        };
        let ok = flap(Some(40), Some(60)).parse().unwrap();
        assert_eq!(ok.to_rule(1).flap_limit(), Some((40, std::time::Duration::from_secs(60))));
        assert_eq!(flap(None, None).parse().unwrap().to_rule(1).flap_limit(), None);
        assert_eq!(refused(&flap(Some(3), None)).field(), "flap_window_secs");
        assert_eq!(refused(&flap(None, Some(3))).field(), "flap_threshold");
        assert_eq!(
            refused(&flap(Some(3), None)).to_string(),
            "flap_window_secs: required with flap_threshold (set both or neither)"
        );
        assert_eq!(refused(&flap(Some(0), Some(60))).field(), "flap_threshold");
        assert_eq!(refused(&flap(Some(5), Some(86_401))).field(), "flap_window_secs");
        let d: RuleDraft = serde_json::from_str(
            r#"{"match_string":"X","prod_handling":"a","dev_handling":"b","team_assignment":"c",
                "flap_threshold":5,"flap_window_secs":60}"#,
        )
        .unwrap();
        assert_eq!((d.flap_threshold, d.flap_window_secs), (Some(5), Some(60)));
        let plain = serde_json::to_value(contains("x")).unwrap();
        assert!(plain.get("flap_threshold").is_none(), "absent flap fields are not written: {plain}");
    }

    #[test]
    fn unknown_match_type_names_its_field() {
        let e = "glob".parse::<MatchType>().unwrap_err();
        assert_eq!(e.field(), "match_type");
        assert!(e.to_string().contains("match_type"), "{e}");
    }
}

//! The dynamic-configuration catalogue (spec §7.3): every key operators may set at run time
//! (`muttd config set`, the management API, or `redis-cli SET mutt:config:<key>`), with its
//! type, the original's default, the allowed range and the role that reads it, and the
//! validation of a new value (spec §7.4). No I/O: the CLI and the API validate here, and the
//! readers take their defaults and ranges from the same constants (a stored value outside the
//! range counts as unset there, so a value refused here is never in force).

use crate::slo::{self, SloKind};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::LazyLock;

/// The role (or tool) that reads a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reader {
    Ingestor,
    Alerter,
    Forwarder,
    Remediation,
    /// The SLO report (`muttd slo`, `GET /api/v1/slo`).
    Slo,
    Retention,
}

impl Reader {
    pub fn as_str(self) -> &'static str {
        match self {
            Reader::Ingestor => "ingestor",
            Reader::Alerter => "alerter",
            Reader::Forwarder => "forwarder",
            Reader::Remediation => "remediation",
            Reader::Slo => "slo",
            Reader::Retention => "retention",
        }
    }
}

/// The unit of a number, for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    None,
    Seconds,
    Milliseconds,
    Hours,
    Days,
    Years,
}

impl Unit {
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Seconds => "s",
            Unit::Milliseconds => "ms",
            Unit::Hours => "h",
            Unit::Days => "d",
            Unit::Years => "y",
        }
    }
}

/// A whole-number key. Readers use [`IntKey::parse`]: a value outside `min..=max` counts as
/// unset, as in the original (which fell back on any parse failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntKey {
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    pub unit: Unit,
    pub reader: Reader,
    pub read_when: &'static str,
}

impl IntKey {
    /// The value if it is a whole number in range.
    pub fn parse(&self, text: &str) -> Option<u64> {
        text.trim().parse::<u64>().ok().filter(|v| (self.min..=self.max).contains(v))
    }
}

/// A key that takes one of a few words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChoiceKey {
    pub key: &'static str,
    pub default: &'static str,
    pub choices: &'static [&'static str],
    pub reader: Reader,
    pub read_when: &'static str,
}

impl ChoiceKey {
    pub fn parse(&self, text: &str) -> Option<&'static str> {
        let text = text.trim();
        self.choices.iter().copied().find(|c| *c == text)
    }
}

/// A true/false key (`true`/`false`, any case, as the original compared lower-cased text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoolKey {
    pub key: &'static str,
    pub default: bool,
    pub reader: Reader,
    pub read_when: &'static str,
}

impl BoolKey {
    pub fn parse(&self, text: &str) -> Option<bool> {
        parse_bool(text)
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

macro_rules! int_key {
    ($name:ident, $key:literal, $default:expr, $min:expr, $max:expr, $unit:ident, $reader:ident, $when:literal) => {
        pub const $name: IntKey = IntKey {
            key: $key,
            default: $default,
            min: $min,
            max: $max,
            unit: Unit::$unit,
            reader: Reader::$reader,
            read_when: $when,
        };
    };
}

/// One day, one year and a large count, the upper ends of most ranges.
const DAY: u64 = 86_400;
const BIG: u64 = 1_000_000_000_000;

// 0 refuses every event, as in the original (an emergency stop for ingest).
int_key!(MAX_INGEST_QUEUE_SIZE, "max_ingest_queue_size", 1_000_000, 0, BIG, None, Ingestor, "every request");
int_key!(INGEST_MAX_RATE, "ingest_max_rate", 1000, 1, BIG, None, Ingestor, "every request");
int_key!(INGEST_RATE_WINDOW, "ingest_rate_window", 60, 1, DAY, Seconds, Ingestor, "every request");
int_key!(CACHE_RELOAD_INTERVAL, "cache_reload_interval", 300, 1, DAY, Seconds, Alerter, "every reload cycle");
int_key!(UNHANDLED_THRESHOLD, "unhandled_threshold", 100, 1, BIG, None, Alerter, "every unhandled event");
int_key!(
    UNHANDLED_EXPIRY_SECONDS,
    "unhandled_expiry_seconds",
    86_400,
    1,
    366 * DAY,
    Seconds,
    Alerter,
    "every unhandled event"
);
int_key!(ALERTER_QUEUE_WARN_THRESHOLD, "alerter_queue_warn_threshold", 1000, 1, BIG, None, Alerter, "every batch");
int_key!(ALERTER_QUEUE_SHED_THRESHOLD, "alerter_queue_shed_threshold", 2000, 1, BIG, None, Alerter, "every batch");
int_key!(ALERTER_DEFER_SLEEP_MS, "alerter_defer_sleep_ms", 250, 1, 60_000, Milliseconds, Alerter, "when deferring");
int_key!(MOOG_RATE_LIMIT, "moog_rate_limit", 50, 1, BIG, None, Forwarder, "every batch");
int_key!(MOOG_RATE_PERIOD, "moog_rate_period", 1, 1, DAY, Seconds, Forwarder, "every batch");
int_key!(CIRCUIT_BREAKER_THRESHOLD, "circuit_breaker_threshold", 10, 1, 1_000_000, None, Forwarder, "start");
int_key!(CIRCUIT_BREAKER_TIMEOUT, "circuit_breaker_timeout", 300, 1, DAY, Seconds, Forwarder, "start");
int_key!(REMEDIATION_INTERVAL, "remediation_interval", 300, 1, DAY, Seconds, Remediation, "every cycle");
int_key!(REMEDIATION_BATCH_SIZE, "remediation_batch_size", 10, 1, 100_000, None, Remediation, "every cycle");
int_key!(MAX_POISON_RETRIES, "max_poison_retries", 3, 1, 1000, None, Remediation, "every cycle");
int_key!(EVENT_RETENTION_DAYS, "event_retention_days", 90, 1, 36_500, Days, Retention, "run start");
int_key!(EVENT_ARCHIVE_RETENTION_YEARS, "event_archive_retention_years", 7, 1, 100, Years, Retention, "run start");
int_key!(CONFIG_AUDIT_RETENTION_DAYS, "config_audit_retention_days", 365, 1, 36_500, Days, Retention, "run start");

pub const ALERTER_SHED_MODE: ChoiceKey = ChoiceKey {
    key: "alerter_shed_mode",
    default: "dlq",
    choices: &["dlq", "defer"],
    reader: Reader::Alerter,
    read_when: "when shedding",
};

pub const RETENTION_ENFORCEMENT_ENABLED: BoolKey =
    BoolKey { key: "retention_enforcement_enabled", default: true, reader: Reader::Retention, read_when: "run start" };

const INT_KEYS: &[IntKey] = &[
    MAX_INGEST_QUEUE_SIZE,
    INGEST_MAX_RATE,
    INGEST_RATE_WINDOW,
    CACHE_RELOAD_INTERVAL,
    UNHANDLED_THRESHOLD,
    UNHANDLED_EXPIRY_SECONDS,
    ALERTER_QUEUE_WARN_THRESHOLD,
    ALERTER_QUEUE_SHED_THRESHOLD,
    ALERTER_DEFER_SLEEP_MS,
    MOOG_RATE_LIMIT,
    MOOG_RATE_PERIOD,
    CIRCUIT_BREAKER_THRESHOLD,
    CIRCUIT_BREAKER_TIMEOUT,
    REMEDIATION_INTERVAL,
    REMEDIATION_BATCH_SIZE,
    MAX_POISON_RETRIES,
    EVENT_RETENTION_DAYS,
    EVENT_ARCHIVE_RETENTION_YEARS,
    CONFIG_AUDIT_RETENTION_DAYS,
];

/// Keys the original's docs and seed scripts mention but no code of it read (spec §7.3);
/// muttd reads none of them either, so setting one is refused without `--force` with a hint.
pub const UNREAD_IN_ORIGINAL: &[&str] = &[
    "slo_window_hours",
    "slo_ingest_success_target",
    "slo_forward_success_target",
    "slo_burn_rate_warning",
    "slo_burn_rate_critical",
    "remediation_enabled",
    "ingest_queue_depth_limit",
    "alerter_cache_reload_interval",
    "max_queue_depth",
    "moog_batch_size",
    "moog_circuit_breaker_timeout",
    "webui_cache_ttl",
    "api_rate_limit",
    "log_level",
    "metrics_enabled",
    "metrics_retention_days",
    "log_retention_days",
    "retention_check_interval_hours",
];

/// What values a key takes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Integer {
        min: u64,
        max: u64,
    },
    /// Above zero, at most `max`.
    Float {
        max: f64,
    },
    Bool,
    Choice {
        choices: &'static [&'static str],
    },
}

/// One row of the catalogue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub key: Cow<'static, str>,
    #[serde(flatten)]
    pub kind: Kind,
    /// The default as text (the original's static fallback); a role's own static
    /// configuration may replace it.
    pub default: String,
    pub unit: Unit,
    pub reader: Reader,
    pub read_when: &'static str,
}

/// A value checked against its key.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Integer(u64),
    Float(f64),
    Bool(bool),
    Choice(&'static str),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Integer(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Choice(v) => f.write_str(v),
        }
    }
}

/// Why a value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigValueError {
    #[error("{key} is not a known configuration key{}", if *unread_in_original { " (the original read it nowhere either)" } else { "" })]
    Unknown { key: String, unread_in_original: bool },
    /// The API's wording (spec §7.4): `invalid value for <key>: …`.
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl Setting {
    /// `value` parsed and range-checked for this key (no cross-key rule; see [`validate`]).
    pub fn parse(&self, value: &str) -> Result<Value, ConfigValueError> {
        let invalid = |reason: String| ConfigValueError::Invalid { key: self.key.to_string(), reason };
        let text = value.trim();
        match &self.kind {
            Kind::Integer { min, max } => match text.parse::<u64>() {
                Ok(v) if (min..=max).contains(&&v) => Ok(Value::Integer(v)),
                _ => Err(invalid(format!("{text:?} is not a whole number from {min} to {max}"))),
            },
            Kind::Float { max } => match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v <= *max => Ok(Value::Float(v)),
                _ => Err(invalid(format!("{text:?} is not a number above 0 and at most {max}"))),
            },
            Kind::Bool => {
                parse_bool(text).map(Value::Bool).ok_or_else(|| invalid(format!("{text:?} is not true or false")))
            }
            Kind::Choice { choices } => choices
                .iter()
                .find(|c| **c == text)
                .map(|c| Value::Choice(c))
                .ok_or_else(|| invalid(format!("{text:?} is not one of {}", choices.join(", ")))),
        }
    }

    /// The range as people read it: `1..=86400`, `>= 1`, `dlq|defer`, `true|false`, `(0, 10]`.
    pub fn range_text(&self) -> String {
        match &self.kind {
            Kind::Integer { min, max } if *max >= BIG => format!(">= {min}"),
            Kind::Integer { min, max } => format!("{min}..={max}"),
            Kind::Float { max } => format!("(0, {max}]"),
            Kind::Bool => "true|false".into(),
            Kind::Choice { choices } => choices.join("|"),
        }
    }
}

static CATALOGUE: LazyLock<Vec<Setting>> = LazyLock::new(build);

fn int_setting(k: &IntKey) -> Setting {
    Setting {
        key: Cow::Borrowed(k.key),
        kind: Kind::Integer { min: k.min, max: k.max },
        default: k.default.to_string(),
        unit: k.unit,
        reader: k.reader,
        read_when: k.read_when,
    }
}

fn build() -> Vec<Setting> {
    let mut all: Vec<Setting> = INT_KEYS.iter().map(int_setting).collect();
    let c = ALERTER_SHED_MODE;
    all.push(Setting {
        key: Cow::Borrowed(c.key),
        kind: Kind::Choice { choices: c.choices },
        default: c.default.into(),
        unit: Unit::None,
        reader: c.reader,
        read_when: c.read_when,
    });
    let b = RETENTION_ENFORCEMENT_ENABLED;
    all.push(Setting {
        key: Cow::Borrowed(b.key),
        kind: Kind::Bool,
        default: b.default.to_string(),
        unit: Unit::None,
        reader: b.reader,
        read_when: b.read_when,
    });
    for def in slo::DEFINITIONS {
        all.extend(slo_settings(def));
    }
    all
}

/// The per-SLO keys of spec §6.7: the window, then the burn-rate thresholds of an
/// availability SLO or the latency bounds of a latency SLO (the other pair means nothing).
fn slo_settings(def: &slo::SloDefinition) -> Vec<Setting> {
    let setting = |suffix: &str, kind: Kind, default: String, unit: Unit| Setting {
        key: Cow::Owned(format!("slo_{}_{suffix}", def.name)),
        kind,
        default,
        unit,
        reader: Reader::Slo,
        read_when: "every report",
    };
    let window = Kind::Integer { min: 1, max: slo::MAX_WINDOW_HOURS };
    let mut out = vec![setting("window_hours", window, def.window_hours.to_string(), Unit::Hours)];
    let (names, values, unit, max) = match def.kind {
        SloKind::Availability { .. } => {
            (["burn_rate_warning", "burn_rate_critical"], [def.burn_warning, def.burn_critical], Unit::None, 1000.0)
        }
        SloKind::Latency { upper_warning, upper_critical, .. } => {
            (["upper_bound_warning", "upper_bound_critical"], [upper_warning, upper_critical], Unit::Seconds, 86_400.0)
        }
    };
    for (name, value) in names.into_iter().zip(values) {
        out.push(setting(name, Kind::Float { max }, value.to_string(), unit));
    }
    out
}

/// Every key, in the order of spec §7.3.
pub fn catalogue() -> &'static [Setting] {
    &CATALOGUE
}

/// The catalogue row of `key`.
pub fn lookup(key: &str) -> Option<&'static Setting> {
    CATALOGUE.iter().find(|s| s.key == key)
}

/// Pairs whose first value must stay below the second (spec §7.4: warn < shed).
fn ordered_pairs() -> impl Iterator<Item = (String, String)> {
    let alerter = (ALERTER_QUEUE_WARN_THRESHOLD.key.to_owned(), ALERTER_QUEUE_SHED_THRESHOLD.key.to_owned());
    let slos = slo::DEFINITIONS.iter().map(|d| {
        let pair = match d.kind {
            SloKind::Availability { .. } => ("burn_rate_warning", "burn_rate_critical"),
            SloKind::Latency { .. } => ("upper_bound_warning", "upper_bound_critical"),
        };
        (format!("slo_{}_{}", d.name, pair.0), format!("slo_{}_{}", d.name, pair.1))
    });
    std::iter::once(alerter).chain(slos)
}

/// Checks `value` for `key` (spec §7.4): a known key, the right type, in range, and below or
/// above its partner key (`current` gives the partner's stored value; an unset or invalid one
/// counts as its default). Returns the value in its canonical text (trimmed, `true`/`false`).
pub fn validate(key: &str, value: &str, current: impl Fn(&str) -> Option<String>) -> Result<String, ConfigValueError> {
    let Some(setting) = lookup(key) else {
        return Err(ConfigValueError::Unknown {
            key: key.to_owned(),
            unread_in_original: UNREAD_IN_ORIGINAL.contains(&key),
        });
    };
    let parsed = setting.parse(value)?;
    for (low, high) in ordered_pairs() {
        let (partner, this_is_low) = if key == low {
            (high, true)
        } else if key == high {
            (low, false)
        } else {
            continue;
        };
        let Some(other_setting) = lookup(&partner) else { continue };
        let other = current(&partner)
            .and_then(|v| other_setting.parse(&v).ok())
            .or_else(|| other_setting.parse(&other_setting.default).ok());
        let (Some(this), Some(other)) = (as_f64(&parsed), other.as_ref().and_then(as_f64)) else { continue };
        let ordered = if this_is_low { this < other } else { this > other };
        if !ordered {
            let relation = if this_is_low { "below" } else { "above" };
            return Err(ConfigValueError::Invalid {
                key: key.to_owned(),
                reason: format!("must be {relation} {partner} (now {})", fmt_number(other)),
            });
        }
    }
    Ok(parsed.to_string())
}

/// Where the value in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Set in dynamic configuration (`mutt:config:<key>`).
    Dynamic,
    /// Set in dynamic configuration but refused by the catalogue, so readers ignore it.
    DynamicInvalid,
    /// The role's static configuration (file or environment), differing from the default.
    Config,
    /// The default.
    Default,
    /// Set in dynamic configuration under a key the catalogue does not know.
    Unknown,
}

/// One line of `muttd config list` (and the API's listing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub key: String,
    /// The value in force (for an unknown key: the stored one).
    pub value: String,
    /// What is in force without a dynamic value (what deleting the key restores).
    pub default: Option<String>,
    pub source: Source,
    /// The stored dynamic value, when there is one.
    pub stored: Option<String>,
    pub reader: Option<Reader>,
    pub range: Option<String>,
}

/// Every catalogue key with its value in force, then the other stored keys. `stored` holds the
/// dynamic values; `fallback` gives a key's static value and whether it differs from the
/// default (`None`: the catalogue's default applies).
pub fn listing(
    stored: &std::collections::BTreeMap<String, String>,
    fallback: impl Fn(&str) -> Option<(String, bool)>,
) -> Vec<Entry> {
    let mut out: Vec<Entry> = catalogue()
        .iter()
        .map(|s| {
            let (default, source) = match fallback(&s.key) {
                Some((v, true)) => (v, Source::Config),
                Some((v, false)) => (v, Source::Default),
                None => (s.default.clone(), Source::Default),
            };
            let dynamic = stored.get(s.key.as_ref());
            let (value, source) = match dynamic.map(|v| s.parse(v)) {
                Some(Ok(v)) => (v.to_string(), Source::Dynamic),
                Some(Err(_)) => (default.clone(), Source::DynamicInvalid),
                None => (default.clone(), source),
            };
            Entry {
                key: s.key.to_string(),
                value,
                default: Some(default),
                source,
                stored: dynamic.cloned(),
                reader: Some(s.reader),
                range: Some(s.range_text()),
            }
        })
        .collect();
    for (key, value) in stored.iter().filter(|(k, _)| lookup(k).is_none()) {
        out.push(Entry {
            key: key.clone(),
            value: value.clone(),
            default: None,
            source: Source::Unknown,
            stored: Some(value.clone()),
            reader: None,
            range: None,
        });
    }
    out
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn fmt_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_key_of_the_spec_is_there_once_with_a_valid_default() {
        let spec_keys = [
            "max_ingest_queue_size",
            "ingest_max_rate",
            "ingest_rate_window",
            "cache_reload_interval",
            "unhandled_threshold",
            "unhandled_expiry_seconds",
            "alerter_queue_warn_threshold",
            "alerter_queue_shed_threshold",
            "alerter_shed_mode",
            "alerter_defer_sleep_ms",
            "moog_rate_limit",
            "moog_rate_period",
            "circuit_breaker_threshold",
            "circuit_breaker_timeout",
            "remediation_interval",
            "remediation_batch_size",
            "max_poison_retries",
            "event_retention_days",
            "event_archive_retention_years",
            "config_audit_retention_days",
            "retention_enforcement_enabled",
            "slo_ingestor_availability_window_hours",
            "slo_ingestor_availability_burn_rate_warning",
            "slo_forwarder_latency_p99_upper_bound_critical",
        ];
        for k in spec_keys {
            let s = lookup(k).unwrap_or_else(|| panic!("{k} missing"));
            assert!(s.parse(&s.default).is_ok(), "{k}: default {} out of its own range", s.default);
        }
        let mut keys: Vec<_> = catalogue().iter().map(|s| s.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), catalogue().len(), "a key twice");
        // 21 plain keys and 3 per SLO.
        assert_eq!(catalogue().len(), 21 + 3 * slo::DEFINITIONS.len());
        for k in UNREAD_IN_ORIGINAL {
            assert!(lookup(k).is_none(), "{k}");
        }
    }

    #[test]
    fn integers_are_whole_and_in_range() {
        assert_eq!(validate("moog_rate_limit", " 75 ", none), Ok("75".into()));
        for bad in ["0", "-1", "1.5", "", "ten", "99999999999999999999"] {
            let e = validate("moog_rate_limit", bad, none).unwrap_err();
            assert!(e.to_string().starts_with("invalid value for moog_rate_limit: "), "{e}");
        }
        assert!(validate("alerter_defer_sleep_ms", "60001", none).is_err());
        assert!(validate("alerter_defer_sleep_ms", "60000", none).is_ok());
        assert_eq!(MOOG_RATE_LIMIT.parse("0"), None);
        assert_eq!(MOOG_RATE_LIMIT.parse(" 7"), Some(7));
        assert_eq!(validate("max_ingest_queue_size", "0", none), Ok("0".into()), "0 stops ingest");
    }

    #[test]
    fn floats_are_positive_and_finite() {
        let k = "slo_ingestor_availability_burn_rate_critical";
        assert_eq!(validate(k, "12.5", none), Ok("12.5".into()));
        for bad in ["0", "-2", "NaN", "inf", "1001", "x"] {
            assert!(validate(k, bad, none).is_err(), "{bad}");
        }
    }

    #[test]
    fn choices_and_booleans() {
        assert_eq!(validate("alerter_shed_mode", "defer", none), Ok("defer".into()));
        let e = validate("alerter_shed_mode", "drop", none).unwrap_err();
        assert_eq!(e.to_string(), "invalid value for alerter_shed_mode: \"drop\" is not one of dlq, defer");
        assert_eq!(validate("retention_enforcement_enabled", "TRUE", none), Ok("true".into()));
        assert_eq!(validate("retention_enforcement_enabled", "False", none), Ok("false".into()));
        assert!(validate("retention_enforcement_enabled", "yes", none).is_err());
        assert_eq!(ALERTER_SHED_MODE.parse(" dlq "), Some("dlq"));
        assert_eq!(RETENTION_ENFORCEMENT_ENABLED.parse("no"), None);
    }

    #[test]
    fn unknown_keys_are_refused_with_a_hint_for_the_originals_unread_ones() {
        let e = validate("no_such_key", "1", none).unwrap_err();
        assert_eq!(e, ConfigValueError::Unknown { key: "no_such_key".into(), unread_in_original: false });
        let e = validate("slo_window_hours", "24", none).unwrap_err();
        assert!(e.to_string().contains("the original read it nowhere"), "{e}");
        // A burn threshold means nothing for a latency SLO.
        assert!(validate("slo_ingestor_latency_p99_burn_rate_warning", "2", none).is_err());
    }

    #[test]
    fn warn_stays_below_shed_against_the_stored_or_default_partner() {
        assert!(validate("alerter_queue_warn_threshold", "1999", none).is_ok());
        let e = validate("alerter_queue_warn_threshold", "2000", none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for alerter_queue_warn_threshold: must be below alerter_queue_shed_threshold (now 2000)"
        );
        let stored = |k: &str| (k == "alerter_queue_shed_threshold").then(|| "5000".to_string());
        assert!(validate("alerter_queue_warn_threshold", "4000", stored).is_ok());
        assert!(validate("alerter_queue_shed_threshold", "1000", none).is_err());
        // An invalid stored partner counts as its default.
        let junk = |_: &str| Some("junk".to_string());
        assert!(validate("alerter_queue_shed_threshold", "1001", junk).is_ok());
        // SLO thresholds too.
        assert!(validate("slo_forwarder_latency_p99_upper_bound_warning", "5", none).is_err());
        assert!(validate("slo_forwarder_latency_p99_upper_bound_warning", "4.5", none).is_ok());
        assert!(validate("slo_ingestor_availability_burn_rate_critical", "5", none).is_err());
    }

    #[test]
    fn listing_names_the_source_of_each_value() {
        let stored: std::collections::BTreeMap<String, String> =
            [("moog_rate_limit", "75"), ("alerter_shed_mode", "drop"), ("my_tool_setting", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let fallback = |k: &str| match k {
            "moog_rate_limit" => Some(("50".to_string(), false)),
            "ingest_max_rate" => Some(("5000".to_string(), true)),
            _ => None,
        };
        let list = listing(&stored, fallback);
        let get = |k: &str| list.iter().find(|e| e.key == k).unwrap().clone();
        let e = get("moog_rate_limit");
        assert_eq!((e.value.as_str(), e.default.as_deref(), e.source), ("75", Some("50"), Source::Dynamic));
        let e = get("alerter_shed_mode");
        assert_eq!((e.value.as_str(), e.source, e.stored.as_deref()), ("dlq", Source::DynamicInvalid, Some("drop")));
        assert_eq!((get("ingest_max_rate").value, get("ingest_max_rate").source), ("5000".into(), Source::Config));
        assert_eq!(
            (get("unhandled_threshold").value, get("unhandled_threshold").source),
            ("100".into(), Source::Default)
        );
        let last = list.last().unwrap();
        assert_eq!((last.key.as_str(), last.source, last.default.clone()), ("my_tool_setting", Source::Unknown, None));
        assert_eq!(list.len(), catalogue().len() + 1);
    }

    #[test]
    fn settings_serialise_for_the_api() {
        let v = serde_json::to_value(lookup("ingest_rate_window").unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"key": "ingest_rate_window", "type": "integer", "min": 1, "max": 86400,
                "default": "60", "unit": "seconds", "reader": "ingestor", "read_when": "every request"})
        );
        assert_eq!(lookup("alerter_shed_mode").unwrap().range_text(), "dlq|defer");
    }
}

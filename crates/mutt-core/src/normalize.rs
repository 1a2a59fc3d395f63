//! Ingest normalisation (spec §15 items 34–35): makes rsyslog- and test-data-shaped events
//! usable by the rules without changing what the client sent beyond that.
//!
//! - `syslog_severity` given as text ("Warning", "err", …), or absent with a textual `severity`
//!   (rsyslog's template), becomes the number 0–7; the replaced text is kept in
//!   `syslog_severity_name`.
//! - `timestamp` in RFC 3339 (any offset) or RFC 3164 style (`Nov  8 12:00:00`, no year or
//!   zone: this year, UTC) is rewritten as RFC 3339 UTC; a changed value is kept in
//!   `timestamp_original`.
//! - Known fields with the wrong type are refused with a reason (they would fail later).

use crate::event::parse_timestamp;
use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Longest hostname accepted (the audit column is VARCHAR(255)).
pub const MAX_HOSTNAME_LEN: usize = 255;

/// Maps a syslog severity name (RFC 5424 keywords and common spellings) to 0–7.
pub fn severity_from_name(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    Some(match n.as_str() {
        "emerg" | "emergency" | "panic" => 0,
        "alert" => 1,
        "crit" | "critical" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" | "informational" => 6,
        "debug" => 7,
        _ => return None,
    })
}

/// Parses RFC 3164's `Mmm dd hh:mm:ss` (no year, no zone) as UTC in the year of `now`, or the
/// year before if that would put it more than a day in the future (December events read in
/// January).
pub fn parse_rfc3164(raw: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let parse = |year: i32| NaiveDateTime::parse_from_str(&format!("{year} {s}"), "%Y %b %d %H:%M:%S").ok();
    let t = parse(now.year())?.and_utc();
    if t > now + chrono::Duration::days(1) {
        return parse(now.year() - 1).map(|t| t.and_utc());
    }
    Some(t)
}

/// Normalises one event in place; `Err` names the field and what is wrong with it.
pub fn normalize(event: &mut Map<String, Value>, now: DateTime<Utc>) -> Result<(), String> {
    for field in ["hostname", "message", "trap_oid"] {
        match event.get(field) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(format!("field {field:?} must be a string, got {}", crate::text::json_type_name(other)));
            }
        }
    }
    if let Some(Value::String(h)) = event.get("hostname") {
        if h.len() > MAX_HOSTNAME_LEN {
            return Err(format!("field \"hostname\" is longer than {MAX_HOSTNAME_LEN} bytes"));
        }
        if h.contains('\0') {
            return Err("field \"hostname\" contains a NUL character".into());
        }
    }

    match event.get("syslog_severity").cloned() {
        Some(Value::Number(n)) => {
            if !n.as_f64().is_some_and(|f| (0.0..=7.0).contains(&f) && f.fract() == 0.0) {
                return Err(format!("field \"syslog_severity\" must be 0..7, got {n}"));
            }
        }
        Some(Value::String(name)) => {
            match severity_from_name(&name).or_else(|| name.trim().parse::<u8>().ok().filter(|v| *v <= 7)) {
                Some(v) => {
                    event.insert("syslog_severity".into(), Value::from(v));
                    event.insert("syslog_severity_name".into(), Value::from(name));
                }
                None => return Err(format!("field \"syslog_severity\" is not a syslog severity: {name:?}")),
            }
        }
        Some(Value::Null) | None => {
            if let Some(v) = event.get("severity").and_then(Value::as_str).and_then(severity_from_name) {
                event.insert("syslog_severity".into(), Value::from(v));
            }
        }
        Some(other) => {
            return Err(format!(
                "field \"syslog_severity\" must be a number 0..7, got {}",
                crate::text::json_type_name(&other)
            ));
        }
    }

    // Read in place (no copy of the text per event); written back only when it changes.
    let normal = match event.get("timestamp") {
        Some(Value::String(raw)) => {
            let parsed = parse_timestamp(raw).or_else(|| parse_rfc3164(raw, now)).ok_or_else(|| {
                format!(
                    "field \"timestamp\" is not RFC 3339 (2025-11-08T12:00:00Z) or RFC 3164 (Nov  8 12:00:00): {raw:?}"
                )
            })?;
            Some(parsed.to_rfc3339_opts(SecondsFormat::AutoSi, true)).filter(|normal| normal != raw)
        }
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(format!("field \"timestamp\" must be a string, got {}", crate::text::json_type_name(other)));
        }
    };
    if let Some(normal) = normal
        && let Some(raw) = event.insert("timestamp".into(), Value::from(normal))
    {
        event.insert("timestamp_original".into(), raw);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2025-11-26T10:00:00Z".parse().unwrap()
    }

    fn norm(v: Value) -> Result<Map<String, Value>, String> {
        let Value::Object(mut m) = v else { panic!() };
        normalize(&mut m, now()).map(|()| m)
    }

    #[test]
    fn textual_severities_become_numbers() {
        let m = norm(json!({"syslog_severity": "Warning"})).unwrap();
        assert_eq!(m["syslog_severity"], 4);
        assert_eq!(m["syslog_severity_name"], "Warning");
        let m = norm(json!({"severity": "err"})).unwrap();
        assert_eq!(m["syslog_severity"], 3);
        assert_eq!(m["severity"], "err", "the original field is kept");
        let m = norm(json!({"severity": "Major"})).unwrap();
        assert!(!m.contains_key("syslog_severity"), "not a syslog name: left alone");
        assert_eq!(norm(json!({"syslog_severity": 2})).unwrap()["syslog_severity"], 2);
        assert!(norm(json!({"syslog_severity": 9})).is_err());
        assert!(norm(json!({"syslog_severity": "loud"})).is_err());
        assert!(norm(json!({"syslog_severity": [1]})).is_err());
    }

    #[test]
    fn timestamps_become_rfc3339_utc() {
        let m = norm(json!({"timestamp": "2025-11-08T13:00:00+01:00"})).unwrap();
        assert_eq!(m["timestamp"], "2025-11-08T12:00:00Z");
        assert_eq!(m["timestamp_original"], "2025-11-08T13:00:00+01:00");
        let m = norm(json!({"timestamp": "Nov  8 12:00:00"})).unwrap();
        assert_eq!(m["timestamp"], "2025-11-08T12:00:00Z");
        let m = norm(json!({"timestamp": "Dec 31 23:59:59"})).unwrap();
        assert_eq!(m["timestamp"], "2024-12-31T23:59:59Z", "a date that would lie in the future is from last year");
        let m = norm(json!({"timestamp": "2025-11-08T12:00:00Z"})).unwrap();
        assert!(!m.contains_key("timestamp_original"), "unchanged values are not duplicated");
        let m = norm(json!({"timestamp": "2025-11-11T16:34:50.6719073Z"})).unwrap();
        assert_eq!(m["timestamp"], "2025-11-11T16:34:50.671907300Z");
        assert!(norm(json!({"timestamp": "yesterday"})).is_err());
        assert!(norm(json!({"timestamp": 1700000000})).is_err());
    }

    #[test]
    fn wrong_types_and_bad_hostnames_are_refused() {
        assert!(norm(json!({"hostname": 5})).unwrap_err().contains("hostname"));
        assert!(norm(json!({"message": {"a": 1}})).unwrap_err().contains("message"));
        assert!(norm(json!({"trap_oid": 1.3})).is_err());
        assert!(norm(json!({"hostname": "a".repeat(256)})).is_err());
        assert!(norm(json!({"hostname": "a\u{0}b"})).is_err());
        assert!(norm(json!({"hostname": "ok", "extra": [1, {"x": null}]})).is_ok());
    }
}

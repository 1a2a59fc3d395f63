//! Events queued as the client wrote them (issue 21, "pass event bytes through").
//!
//! Parsing each event into a `serde_json` map and writing the map out again was a third of the
//! ingestor's CPU per batched event (a string and a tree node per field, every string escaped
//! again). Most events need neither: their fields are already what normalisation would make of
//! them. Such an event is kept as its bytes ([`IngestEvent::Raw`]) and queued as they are, with
//! `_correlation_id` and `_event_id` appended ([`write_stamped`]); any event that normalisation
//! would change, or that a check would refuse, is read into a map and takes the one path every
//! event took before ([`IngestEvent::Fields`]), so refusals and their texts are unchanged.
//!
//! What differs in the queued bytes, and no reader depends on: the client's key order is kept
//! (the original, in Python, kept it too; the map wrote keys sorted), the two stamped fields come
//! last, and the client's spacing and string escapes are kept (`"\u00e9"` stays as written).
//! Elements holding a newline byte are read into a map, so that queued events stay one line
//! each and travel in batch envelopes.

use mutt_core::event::{CORRELATION_ID, EVENT_ID, parse_timestamp};
use mutt_core::json_check::Truthy;
use mutt_core::normalize::{MAX_HOSTNAME_LEN, parse_rfc3164, severity_from_name};
use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One event of a submission.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// Read into a map: checked, normalised and written out field by field.
    Fields(Map<String, Value>),
    /// A JSON object as the client sent it, already checked to be one `serde_json` reads into a
    /// map ([`checked_object`]).
    Raw(Box<RawValue>),
}

impl From<Map<String, Value>> for IngestEvent {
    fn from(m: Map<String, Value>) -> Self {
        IngestEvent::Fields(m)
    }
}

impl IngestEvent {
    /// The event as a map (a raw event is read now).
    pub fn into_fields(self) -> Result<Map<String, Value>, serde_json::Error> {
        match self {
            IngestEvent::Fields(m) => Ok(m),
            IngestEvent::Raw(raw) => read_fields(&raw),
        }
    }
}

/// A raw event read into a map: the old path, for events a check changes or refuses.
pub fn read_fields(raw: &RawValue) -> Result<Map<String, Value>, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// `raw` if it is a JSON object that reads into a `serde_json` map without error and holds no
/// newline byte, for [`IngestEvent::Raw`]; `None` otherwise (the caller reads it the old way).
/// A raw value is only checked for syntax, so the value is walked as a map would read it
/// ([`Truthy`]).
pub fn checked_object(raw: &RawValue) -> Option<&RawValue> {
    let text = raw.get();
    if !text.starts_with('{') || text.as_bytes().contains(&b'\n') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Truthy.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(raw)
}

/// The fields of a raw event that the checks read (the last of a repeated key, as a map keeps).
#[derive(Default)]
struct Looked<'a> {
    reserved: bool,
    hostname: Option<&'a RawValue>,
    message: Option<&'a RawValue>,
    trap_oid: Option<&'a RawValue>,
    syslog_severity: Option<&'a RawValue>,
    severity: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    /// Bit `i`: required field `i` is present and truthy (no allocation per event).
    required_truthy: u64,
}

struct Look<'r> {
    required: &'r [String],
}

impl<'de, 'r> Visitor<'de> for Look<'r> {
    type Value = Looked<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Looked<'de>, A::Error> {
        let mut out = Looked::default();
        // A key with escapes does not borrow: an error, and the event is read into a map.
        while let Some(key) = map.next_key::<&'de str>()? {
            let wanted = self.required.iter().position(|r| r == key);
            let slot = match key {
                CORRELATION_ID | EVENT_ID => {
                    out.reserved = true;
                    None
                }
                "hostname" => Some(&mut out.hostname),
                "message" => Some(&mut out.message),
                "trap_oid" => Some(&mut out.trap_oid),
                "syslog_severity" => Some(&mut out.syslog_severity),
                "severity" => Some(&mut out.severity),
                "timestamp" => Some(&mut out.timestamp),
                _ => None,
            };
            if slot.is_none() && wanted.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            if let Some(slot) = slot {
                *slot = Some(value);
            }
            if let Some(i) = wanted {
                // The last of a repeated key counts, as in a map.
                out.required_truthy &= !(1 << i);
                out.required_truthy |= u64::from(truthy(value)) << i;
            }
        }
        Ok(out)
    }
}

/// What the submission's events had in common: the last timestamp found already normal.
#[derive(Default)]
pub struct SeenTimestamps {
    normal: String,
}

/// Whether the raw event `raw` passes the checks unchanged: every `required` field present and
/// truthy, no reserved field to overwrite, and (with `normalize`) nothing normalisation would
/// refuse or rewrite. `false` says "read it into a map": it does not mean refused.
pub fn passes_as_is(
    raw: &RawValue,
    required: &[String],
    normalize: bool,
    now: chrono::DateTime<chrono::Utc>,
    seen: &mut SeenTimestamps,
) -> bool {
    // One bit per required field; a longer list (never seen in practice) takes the map path.
    if required.len() > 64 {
        return false;
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let Ok(looked) = de.deserialize_map(Look { required }) else {
        return false;
    };
    let all_required = if required.len() == 64 { u64::MAX } else { (1u64 << required.len()) - 1 };
    if looked.reserved || looked.required_truthy != all_required {
        return false;
    }
    !normalize || already_normal(&looked, now, seen)
}

/// Mirrors [`mutt_core::normalize::normalize`]: `true` only where it would change nothing and
/// refuse nothing.
fn already_normal(looked: &Looked<'_>, now: chrono::DateTime<chrono::Utc>, seen: &mut SeenTimestamps) -> bool {
    let string_or_null = |v: Option<&RawValue>| v.is_none_or(|v| v.get() == "null" || v.get().starts_with('"'));
    if !string_or_null(looked.message) || !string_or_null(looked.trap_oid) {
        return false;
    }
    match looked.hostname.map(RawValue::get) {
        None | Some("null") => {}
        // Unescaped (else not borrowed: read into a map), so it holds no NUL either.
        Some(h) => match serde_json::from_str::<&str>(h) {
            Ok(h) if h.len() <= MAX_HOSTNAME_LEN => {}
            _ => return false,
        },
    }
    match looked.syslog_severity.map(RawValue::get) {
        // A textual `severity` that names a level would be copied into `syslog_severity`;
        // escaped text (not borrowed) might name one: read it into a map.
        None | Some("null") => match looked.severity.map(RawValue::get) {
            Some(s) if s.starts_with('"') => match serde_json::from_str::<&str>(s) {
                Ok(s) if severity_from_name(s).is_none() => {}
                _ => return false,
            },
            _ => {}
        },
        Some(n) => match serde_json::from_str::<f64>(n) {
            Ok(f) if (0.0..=7.0).contains(&f) && f.fract() == 0.0 => {}
            _ => return false,
        },
    }
    match looked.timestamp.map(RawValue::get) {
        None | Some("null") => true,
        Some(t) => {
            let Ok(t) = serde_json::from_str::<&str>(t) else {
                return false;
            };
            if !seen.normal.is_empty() && t == seen.normal {
                return true;
            }
            let normal = parse_timestamp(t)
                .or_else(|| parse_rfc3164(t, now))
                .map(|p| p.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            if normal.as_deref() != Some(t) {
                return false;
            }
            seen.normal.clear();
            seen.normal.push_str(t);
            true
        }
    }
}

/// Python truthiness of a raw JSON value, as [`mutt_core::event::is_truthy`] of its value.
fn truthy(v: &RawValue) -> bool {
    let t = v.get();
    match t.as_bytes().first() {
        Some(b'"') => t != "\"\"",
        Some(b'[' | b'{') => !t[1..t.len() - 1].trim_ascii().is_empty(),
        Some(b't') => true,
        Some(b'f' | b'n') => false,
        _ => serde_json::from_str::<f64>(t).is_ok_and(|f| f != 0.0),
    }
}

/// Appends the raw event with `_correlation_id` and `_event_id` added as its last fields.
pub fn write_stamped(out: &mut Vec<u8>, raw: &RawValue, cid: &str, event_id: &str) {
    let text = raw.get().as_bytes();
    // A checked object: `{`, its fields, `}`.
    let inner = &text[1..text.len().saturating_sub(1).max(1)];
    out.push(b'{');
    if !inner.trim_ascii().is_empty() {
        out.extend_from_slice(inner);
        out.push(b',');
    }
    out.extend_from_slice(b"\"");
    out.extend_from_slice(CORRELATION_ID.as_bytes());
    out.extend_from_slice(b"\":");
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, cid);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(EVENT_ID.as_bytes());
    out.extend_from_slice(b"\":");
    let _ = serde_json::to_writer(&mut *out, event_id);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::{BodyFormat, parse};

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2025-11-26T10:00:00Z".parse().unwrap()
    }

    fn required() -> Vec<String> {
        vec!["hostname".into(), "message".into(), "timestamp".into()]
    }

    /// Whether the one event of `body` is kept raw and passes the checks unchanged.
    fn kept_raw(body: &str) -> bool {
        let parsed = parse(body.as_bytes(), BodyFormat::Json, 10).unwrap();
        match &parsed.events[..] {
            [IngestEvent::Raw(raw)] => passes_as_is(raw, &required(), true, now(), &mut SeenTimestamps::default()),
            _ => false,
        }
    }

    #[test]
    fn a_normal_event_is_queued_as_written_with_the_ids_appended() {
        let body = r#"{"message":"LINK DOWN", "hostname":"sw1","timestamp":"2025-11-08T12:00:00Z","syslog_severity":3,"x":[1e3,{"y":null}]}"#;
        assert!(kept_raw(body));
        let parsed = parse(body.as_bytes(), BodyFormat::Json, 10).unwrap();
        let IngestEvent::Raw(raw) = &parsed.events[0] else { panic!("not raw") };
        let mut out = Vec::new();
        write_stamped(&mut out, raw, "c\"1", "e-1");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"message":"LINK DOWN", "hostname":"sw1","timestamp":"2025-11-08T12:00:00Z","syslog_severity":3,"x":[1e3,{"y":null}],"_correlation_id":"c\"1","_event_id":"e-1"}"#
        );
        let mut out = Vec::new();
        write_stamped(&mut out, &RawValue::from_string("{ }".into()).unwrap(), "c", "e");
        assert_eq!(out, br#"{"_correlation_id":"c","_event_id":"e"}"#);
    }

    #[test]
    fn events_a_check_would_change_or_refuse_are_read_into_maps() {
        let ok = r#""hostname":"sw1","message":"m","timestamp":"2025-11-08T12:00:00Z""#;
        for extra in [
            r#""_correlation_id":"mine""#,
            r#""_event_id":"mine""#,
            r#""syslog_severity":"Warning""#,
            r#""syslog_severity":9"#,
            r#""syslog_severity":"4""#,
            r#""severity":"err""#,
            r#""severity":"\u0065rr""#,
            r#""timestamp":"2025-11-08T13:00:00+01:00""#,
            r#""timestamp":"Nov  8 12:00:00""#,
            r#""timestamp":"""#,
            r#""timestamp":5"#,
            r#""hostname":"sw\u0031""#,
            r#""hostname":5"#,
            r#""message":{"a":1}"#,
            r#""trap_oid":1.5"#,
            r#""message":"""#,
            r#""hostname":null"#,
        ] {
            assert!(!kept_raw(&format!("{{{ok},{extra}}}")), "{extra}");
        }
        for fine in [
            r#""severity":"Major""#,
            r#""severity":5"#,
            r#""syslog_severity":null"#,
            r#""trap_oid":null"#,
            r#""message":"\u00e9""#,
        ] {
            assert!(kept_raw(&format!("{{{ok},{fine}}}")), "{fine}");
        }
        // A repeated key counts by its last value, as in a map.
        assert!(!kept_raw(&format!(r#"{{{ok},"hostname":""}}"#)));
        assert!(kept_raw(&format!(r#"{{"hostname":"",{ok}}}"#)));
        // Pretty-printed elements are read into maps (written compact, one line each).
        let pretty = format!("[{{\n{ok}\n}}]");
        assert!(matches!(parse(pretty.as_bytes(), BodyFormat::Json, 10).unwrap().events[..], [IngestEvent::Fields(_)]));
    }

    #[test]
    fn values_a_map_cannot_hold_are_refused_as_before() {
        for bad in [r#"[{"n":1e400}]"#, r#"[{"s":"\ud800"}]"#, r#"{"n":-1e999}"#, r#"{"a":"\udc00x"}"#] {
            let e = parse(bad.as_bytes(), BodyFormat::Json, 10).unwrap_err();
            assert_eq!(
                e,
                crate::http::body::parse_as_fields(bad.as_bytes(), BodyFormat::Json, 10).unwrap_err(),
                "{bad}"
            );
        }
        assert!(checked_object(&RawValue::from_string(r#"{"n":1e400}"#.into()).unwrap()).is_none());
    }

    #[test]
    fn truthiness_of_raw_values_is_pythons() {
        for (text, want) in [
            ("\"\"", false),
            ("\"a\"", true),
            ("0", false),
            ("-0.0", false),
            ("0.5", true),
            ("[]", false),
            ("[ ]", false),
            ("[0]", true),
            ("{}", false),
            ("{\"a\":1}", true),
            ("null", false),
            ("false", false),
            ("true", true),
        ] {
            let raw = RawValue::from_string(text.into()).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(truthy(&raw), want, "{text}");
            assert_eq!(mutt_core::event::is_truthy(&value), want, "{text}");
        }
    }
}

//! An event as it travels through MUTT: the client's JSON object, unchanged, plus reserved fields.
//!
//! Reserved fields (all start with `_`, the original's convention):
//! - `_correlation_id`: the ingest request's correlation id (the original's name, kept).
//! - `_event_id`: a UUIDv7 given to each event at ingest. It makes the audit row and the Moog
//!   delivery idempotent: a redelivered event carries the same id.
//! - `_retry_count`: how often the alerter failed on this event (the original's name).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

pub const CORRELATION_ID: &str = "_correlation_id";
pub const EVENT_ID: &str = "_event_id";
pub const RETRY_COUNT: &str = "_retry_count";

/// Namespace for ids derived from events that arrived without `_event_id` (queued by the
/// original MUTT before an upgrade, or pushed by hand): see [`Event::event_id`].
const LEGACY_EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6d75_7474_2d65_7665_6e74_2d69_6430_0001);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("field {0:?} is missing or empty")]
    MissingField(String),
    #[error("field \"timestamp\" is not a date and time MUTT understands: {0:?}")]
    BadTimestamp(String),
}

/// The stable identity of one event (a UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

impl EventId {
    /// A new time-ordered id (UUIDv7), given at ingest.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(Self)
    }

    /// When muttd made this id (ms since the epoch), which a UUIDv7 carries; `None` for other
    /// ids (the original's alerts and meta-alerts are UUIDv5s).
    pub fn made_at_ms(&self) -> Option<i64> {
        if self.0.get_version_num() != 7 {
            return None;
        }
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        i64::try_from(secs).ok()?.checked_mul(1000)?.checked_add(i64::from(nanos / 1_000_000))
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The fields of an event that deciding it reads: the rules, the development hosts, silences
/// and the alert's own fields. [`Event`] (a whole map) and [`crate::QueuedEvent`] (the alerter's
/// borrowed read of a queued message) give the same answers for the same bytes.
pub trait EventFields {
    /// `hostname` when it is a string.
    fn hostname(&self) -> Option<&str>;
    /// `message` when it is a string.
    fn message(&self) -> Option<&str>;
    fn trap_oid(&self) -> Option<&Value>;
    fn syslog_severity(&self) -> Option<&Value>;
    /// `_correlation_id`, or "unknown" when it is absent or not a string.
    fn correlation_id(&self) -> &str;
    /// See [`Event::event_id`].
    fn event_id(&self) -> EventId;
}

impl<T: EventFields + ?Sized> EventFields for &T {
    fn hostname(&self) -> Option<&str> {
        (**self).hostname()
    }
    fn message(&self) -> Option<&str> {
        (**self).message()
    }
    fn trap_oid(&self) -> Option<&Value> {
        (**self).trap_oid()
    }
    fn syslog_severity(&self) -> Option<&Value> {
        (**self).syslog_severity()
    }
    fn correlation_id(&self) -> &str {
        (**self).correlation_id()
    }
    fn event_id(&self) -> EventId {
        (**self).event_id()
    }
}

impl EventFields for Event {
    fn hostname(&self) -> Option<&str> {
        Event::hostname(self)
    }
    fn message(&self) -> Option<&str> {
        Event::message(self)
    }
    fn trap_oid(&self) -> Option<&Value> {
        Event::trap_oid(self)
    }
    fn syslog_severity(&self) -> Option<&Value> {
        Event::syslog_severity(self)
    }
    fn correlation_id(&self) -> &str {
        Event::correlation_id(self)
    }
    fn event_id(&self) -> EventId {
        Event::event_id(self)
    }
}

/// One event: a JSON object. Unknown fields are kept and passed on untouched.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
}

impl Event {
    /// Parses queued bytes; anything but a JSON object is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EventError::InvalidJson(e.to_string()))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self, EventError> {
        match value {
            Value::Object(fields) => Ok(Self { fields }),
            _ => Err(EventError::NotAnObject),
        }
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }

    pub fn to_json(&self) -> String {
        // A map of JSON values always serialises.
        serde_json::to_string(&self.fields).unwrap_or_default()
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Returns a string field, or `None` when it is absent or not a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub fn hostname(&self) -> Option<&str> {
        self.str_field("hostname")
    }

    pub fn message(&self) -> Option<&str> {
        self.str_field("message")
    }

    pub fn trap_oid(&self) -> Option<&Value> {
        self.fields.get("trap_oid")
    }

    pub fn syslog_severity(&self) -> Option<&Value> {
        self.fields.get("syslog_severity")
    }

    pub fn correlation_id(&self) -> &str {
        self.str_field(CORRELATION_ID).unwrap_or("unknown")
    }

    /// Returns `_event_id`, or for events queued without one, an id derived from the event's
    /// content: a UUIDv5 of the object re-serialised with sorted keys, without `_retry_count`
    /// (and an unreadable `_event_id`). Not of the raw bytes: a retry re-serialises the message
    /// and raises its counter, and the retried copy must still map to the same id, so that a
    /// redelivered or retried legacy event inserts no second audit row. Two events with the
    /// same content and the same correlation id share an id (the original gave each request
    /// its own correlation id).
    pub fn event_id(&self) -> EventId {
        if let Some(id) = self.str_field(EVENT_ID).and_then(EventId::parse) {
            return id;
        }
        let mut canonical = self.fields.clone();
        canonical.remove(RETRY_COUNT);
        canonical.remove(EVENT_ID);
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        EventId(Uuid::new_v5(&LEGACY_EVENT_NAMESPACE, &bytes))
    }

    /// `_retry_count` as the event arrived with it (0 when absent).
    pub fn retry_count(&self) -> u64 {
        self.fields.get(RETRY_COUNT).map_or(0, retry_counter)
    }

    /// Checks that each named field is present and not empty (null, "", 0, false, [] or {}:
    /// the alerter's "truthy" test). The first missing field is reported.
    pub fn require(&self, fields: &[impl AsRef<str>]) -> Result<(), EventError> {
        for f in fields {
            let f = f.as_ref();
            if !self.fields.get(f).is_some_and(is_truthy) {
                return Err(EventError::MissingField(f.to_owned()));
            }
        }
        Ok(())
    }

    /// The event's `timestamp` as UTC. Accepts RFC 3339 (`2025-11-08T12:00:00Z`, offsets,
    /// fractions) and the same with a space instead of `T`; a time without a zone is UTC.
    pub fn timestamp(&self) -> Result<DateTime<Utc>, EventError> {
        let raw = match self.fields.get("timestamp") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(EventError::BadTimestamp(other.to_string())),
            None => return Err(EventError::MissingField("timestamp".into())),
        };
        parse_timestamp(raw).ok_or_else(|| EventError::BadTimestamp(raw.to_owned()))
    }
}

/// Parses the date-time forms MUTT accepts in `timestamp`; `None` when it is none of them.
pub fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let spaced = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&spaced) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&spaced, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// A retry counter (`_retry_count`, `_moog_retry_count`) as a message arrived with it: an
/// integer as the original wrote it, a float or a numeric string as a hand-edited replay may
/// carry it; anything else counts as 0.
pub fn retry_counter(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64)).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Python truthiness for JSON values, as the original alerter tests required fields.
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Event {
        Event::from_value(v).unwrap()
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert_eq!(Event::from_slice(b"[1]"), Err(EventError::NotAnObject));
        assert!(matches!(Event::from_slice(b"{"), Err(EventError::InvalidJson(_))));
        assert!(matches!(Event::from_slice(&[0xff, 0xfe]), Err(EventError::InvalidJson(_))));
    }

    #[test]
    fn required_fields_must_be_truthy() {
        let e = ev(json!({"hostname": "h", "message": "", "timestamp": "t"}));
        assert_eq!(e.require(&["hostname"]), Ok(()));
        assert_eq!(e.require(&["hostname", "message"]), Err(EventError::MissingField("message".into())));
        assert_eq!(e.require(&["nope"]), Err(EventError::MissingField("nope".into())));
    }

    #[test]
    fn timestamps_in_accepted_forms() {
        let want = "2025-11-08T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for raw in [
            "2025-11-08T12:00:00Z",
            "2025-11-08T13:00:00+01:00",
            "2025-11-08 12:00:00",
            "2025-11-08T12:00:00",
            "2025-11-08 12:00:00+00:00",
        ] {
            assert_eq!(ev(json!({"timestamp": raw})).timestamp(), Ok(want), "{raw}");
        }
        let frac = ev(json!({"timestamp": "2025-11-11T16:34:50.6719073Z"})).timestamp().unwrap();
        assert_eq!(frac.timestamp(), 1762878890);
        assert!(matches!(ev(json!({"timestamp": "yesterday"})).timestamp(), Err(EventError::BadTimestamp(_))));
        assert!(matches!(ev(json!({"timestamp": 5})).timestamp(), Err(EventError::BadTimestamp(_))));
    }

    #[test]
    fn event_id_is_read_or_derived_stably() {
        let id = EventId::new();
        let e = ev(json!({"_event_id": id.to_string(), "message": "x"}));
        assert_eq!(e.event_id(), id);
        // Legacy messages: the same content gives the same id, whatever the retry count.
        let a = ev(json!({"message": "x", "hostname": "h"}));
        let b = ev(json!({"hostname": "h", "message": "x", "_retry_count": 2}));
        assert_eq!(a.event_id(), b.event_id());
        assert_ne!(a.event_id(), ev(json!({"message": "y"})).event_id());
        // A retried copy re-serialised by another writer keeps the id.
        let raw = br#"{"timestamp":"2025-11-08T12:00:00Z", "message":"x","hostname":"h","_correlation_id":"c1"}"#;
        let retried = br#"{"_correlation_id":"c1","_retry_count":1,"hostname":"h","message":"x","timestamp":"2025-11-08T12:00:00Z"}"#;
        let id = Event::from_slice(raw).unwrap().event_id();
        assert_eq!(Event::from_slice(retried).unwrap().event_id(), id);
        assert_eq!(id.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn only_muttds_ids_tell_when_they_were_made() {
        let before = chrono::Utc::now().timestamp_millis();
        let made = EventId::new().made_at_ms().unwrap();
        assert!((before..=chrono::Utc::now().timestamp_millis()).contains(&made), "{made}");
        assert_eq!(ev(json!({"message": "x"})).event_id().made_at_ms(), None, "the original's (UUIDv5)");
    }

    #[test]
    fn retry_counts_as_they_arrive() {
        assert_eq!(ev(json!({})).retry_count(), 0);
        assert_eq!(ev(json!({"_retry_count": 4})).retry_count(), 4);
        assert_eq!(ev(json!({"_retry_count": "5"})).retry_count(), 5);
        assert_eq!(ev(json!({"_retry_count": 4.0})).retry_count(), 4);
        assert_eq!(ev(json!({"_retry_count": -2})).retry_count(), 0);
        assert_eq!(ev(json!({"_retry_count": [1]})).retry_count(), 0);
    }
}

//! The alerter's read of a queued event: the fields it decides on, borrowed from the message's
//! bytes (issue 21, "pass event bytes through").
//!
//! Reading each event into an [`Event`] (a `serde_json` map) cost the alerter a string per key
//! and value and a tree node per few fields, about a fifth of its CPU, for the handful of fields
//! it reads: the rest of the message goes into the audit row and the alert as the bytes it came
//! as. [`QueuedEvent::read`] walks the message once, checks it as a map would read it (numbers
//! out of range and lone surrogate escapes fail it, as they fail a map), borrows `hostname`,
//! `message`, `timestamp` and `_correlation_id` where they hold no escapes, and keeps nothing
//! else. A message it is not sure to read as a map would — a key with escapes, no readable
//! `_event_id` (the id is derived from the whole map), a required-field list longer than 64 —
//! or one a map refuses is read into an [`Event`] instead, so every answer and every refusal's
//! text is the map's.

use crate::event::{CORRELATION_ID, EVENT_ID, RETRY_COUNT};
use crate::event::{Event, EventError, EventFields, EventId, is_truthy, parse_timestamp, retry_counter};
use crate::json_check::Truthy;
use chrono::{DateTime, Utc};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;

/// The fields of one queued event that the alerter reads.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedEvent<'a> {
    hostname: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    trap_oid: Option<Value>,
    syslog_severity: Option<Value>,
    correlation_id: Option<Cow<'a, str>>,
    event_id: EventId,
    retry_count: u64,
    timestamp: Timestamp<'a>,
    /// The first required field (in the order asked for) that is missing or empty.
    missing: Option<String>,
}

/// `timestamp` as the message holds it.
#[derive(Clone, Debug, PartialEq)]
enum Timestamp<'a> {
    Missing,
    Text(Cow<'a, str>),
    /// Not a string: the value as JSON, for the error.
    Other(String),
}

impl<'a> QueuedEvent<'a> {
    /// Reads a queued message; `required` are the fields that must be present and truthy
    /// (see [`QueuedEvent::missing_field`]). The errors are [`Event::from_slice`]'s.
    pub fn read(raw: &'a [u8], required: &[impl AsRef<str>]) -> Result<Self, EventError> {
        match Self::read_borrowed(raw, required) {
            Some(event) => Ok(event),
            None => Event::from_slice(raw).map(|e| Self::of_event(&e, required)),
        }
    }

    /// The fast path: `None` when the message is not certain to read as a map would.
    fn read_borrowed(raw: &'a [u8], required: &[impl AsRef<str>]) -> Option<Self> {
        if required.len() > 64 {
            return None;
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        let seen = de.deserialize_map(Look { required }).ok()?;
        de.end().ok()?;
        let event_id = match &seen.event_id? {
            Field::Text(id) => EventId::parse(id)?,
            Field::Other(_) => return None,
        };
        let text = |f: Option<Field<'a>>| match f {
            Some(Field::Text(s)) => Some(s),
            _ => None,
        };
        let timestamp = match seen.timestamp {
            None => Timestamp::Missing,
            Some(Field::Text(s)) => Timestamp::Text(s),
            Some(Field::Other(v)) => Timestamp::Other(v.to_string()),
        };
        let missing = (0..required.len()).find(|i| seen.required_truthy & (1 << i) == 0);
        Some(Self {
            hostname: text(seen.hostname),
            message: text(seen.message),
            trap_oid: seen.trap_oid,
            syslog_severity: seen.syslog_severity,
            correlation_id: text(seen.correlation_id),
            event_id,
            retry_count: seen.retry_count.as_ref().map_or(0, retry_counter),
            timestamp,
            missing: missing.map(|i| required[i].as_ref().to_owned()),
        })
    }

    /// The same fields, read from an event already in a map (owned).
    pub fn of_event(event: &Event, required: &[impl AsRef<str>]) -> QueuedEvent<'static> {
        let owned = |s: Option<&str>| s.map(|s| Cow::Owned(s.to_owned()));
        let timestamp = match event.get("timestamp") {
            None => Timestamp::Missing,
            Some(Value::String(s)) => Timestamp::Text(Cow::Owned(s.clone())),
            Some(other) => Timestamp::Other(other.to_string()),
        };
        QueuedEvent {
            hostname: owned(event.hostname()),
            message: owned(event.message()),
            trap_oid: event.trap_oid().cloned(),
            syslog_severity: event.syslog_severity().cloned(),
            correlation_id: owned(event.str_field(CORRELATION_ID)),
            event_id: event.event_id(),
            retry_count: event.retry_count(),
            timestamp,
            missing: match event.require(required) {
                Err(EventError::MissingField(f)) => Some(f),
                _ => None,
            },
        }
    }

    /// `hostname`, `message` and `_correlation_id` when strings, as read: borrowed text had no
    /// escapes in the message, so serde_json would write it back as it stands (quotes, control
    /// characters and backslashes are escaped in JSON text, and serde_json escapes nothing else).
    pub fn texts(&self) -> [Option<&Cow<'a, str>>; 3] {
        [self.hostname.as_ref(), self.message.as_ref(), self.correlation_id.as_ref()]
    }

    /// `_retry_count` as the event arrived with it (0 when absent): [`Event::retry_count`].
    pub fn retry_count(&self) -> u64 {
        self.retry_count
    }

    /// The first required field that is missing or empty: [`Event::require`].
    pub fn missing_field(&self) -> Result<(), EventError> {
        match &self.missing {
            Some(f) => Err(EventError::MissingField(f.clone())),
            None => Ok(()),
        }
    }

    /// The event's `timestamp` as UTC: [`Event::timestamp`].
    pub fn timestamp(&self) -> Result<DateTime<Utc>, EventError> {
        match &self.timestamp {
            Timestamp::Missing => Err(EventError::MissingField("timestamp".into())),
            Timestamp::Other(json) => Err(EventError::BadTimestamp(json.clone())),
            Timestamp::Text(raw) => parse_timestamp(raw).ok_or_else(|| EventError::BadTimestamp(raw.to_string())),
        }
    }
}

impl EventFields for QueuedEvent<'_> {
    fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }
    fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    fn trap_oid(&self) -> Option<&Value> {
        self.trap_oid.as_ref()
    }
    fn syslog_severity(&self) -> Option<&Value> {
        self.syslog_severity.as_ref()
    }
    fn correlation_id(&self) -> &str {
        self.correlation_id.as_deref().unwrap_or("unknown")
    }
    fn event_id(&self) -> EventId {
        self.event_id
    }
}

/// A string field as the message holds it: a string (borrowed unless it has escapes), or any
/// other value.
enum Field<'a> {
    Text(Cow<'a, str>),
    Other(Value),
}

impl Field<'_> {
    fn truthy(&self) -> bool {
        match self {
            Field::Text(s) => !s.is_empty(),
            Field::Other(v) => is_truthy(v),
        }
    }
}

/// The fields [`Look`] keeps (the last of a repeated key, as a map keeps).
#[derive(Default)]
struct Seen<'a> {
    hostname: Option<Field<'a>>,
    message: Option<Field<'a>>,
    timestamp: Option<Field<'a>>,
    correlation_id: Option<Field<'a>>,
    event_id: Option<Field<'a>>,
    trap_oid: Option<Value>,
    syslog_severity: Option<Value>,
    retry_count: Option<Value>,
    /// Bit `i`: required field `i` is present and truthy.
    required_truthy: u64,
}

/// Reads the top-level object: the fields above, the truthiness of the required ones, and
/// every other value walked as a map would read it.
struct Look<'r, R> {
    required: &'r [R],
}

impl<'de, R: AsRef<str>> Visitor<'de> for Look<'_, R> {
    type Value = Seen<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seen<'de>, A::Error> {
        let mut seen = Seen::default();
        // A key with escapes does not borrow: an error here, and the map path reads the event.
        while let Some(key) = map.next_key::<&'de str>()? {
            let truthy = match key {
                "hostname" => keep(&mut seen.hostname, map.next_value_seed(FieldSeed)?),
                "message" => keep(&mut seen.message, map.next_value_seed(FieldSeed)?),
                "timestamp" => keep(&mut seen.timestamp, map.next_value_seed(FieldSeed)?),
                CORRELATION_ID => keep(&mut seen.correlation_id, map.next_value_seed(FieldSeed)?),
                EVENT_ID => keep(&mut seen.event_id, map.next_value_seed(FieldSeed)?),
                "trap_oid" => keep_value(&mut seen.trap_oid, map.next_value()?),
                "syslog_severity" => keep_value(&mut seen.syslog_severity, map.next_value()?),
                RETRY_COUNT => keep_value(&mut seen.retry_count, map.next_value()?),
                _ => map.next_value_seed(Truthy)?,
            };
            for (i, r) in self.required.iter().enumerate() {
                if r.as_ref() == key {
                    // The last of a repeated key counts, as in a map.
                    seen.required_truthy = (seen.required_truthy & !(1 << i)) | (u64::from(truthy) << i);
                }
            }
        }
        Ok(seen)
    }
}

/// Keeps `field` in `slot` (the last of a repeated key wins); whether it is truthy.
fn keep<'a>(slot: &mut Option<Field<'a>>, field: Field<'a>) -> bool {
    let truthy = field.truthy();
    *slot = Some(field);
    truthy
}

/// [`keep`] for a field kept as a value.
fn keep_value(slot: &mut Option<Value>, value: Value) -> bool {
    let truthy = is_truthy(&value);
    *slot = Some(value);
    truthy
}

/// Reads a [`Field`].
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Field<'de>, E> {
        Ok(Field::Text(Cow::Owned(s)))
    }
    // Any other value as `serde_json::Value` reads it.
    fn visit_bool<E>(self, b: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Field<'de>, E> {
        Ok(Field::Other(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
    }
    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
        serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
        serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Other)
    }
}

#[cfg(test)]
mod tests;

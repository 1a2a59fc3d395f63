//! Reading and parsing an ingest body: one JSON object (the original), a JSON array of objects,
//! or NDJSON (one object per line, as rsyslog's omhttp sends batches).

use crate::raw_event::{IngestEvent, checked_object};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Element errors listed in a 400 body; the rest are only counted, so that a malformed batch
/// of millions of elements costs no more than one of a hundred.
pub const MAX_LISTED_ERRORS: usize = 100;

/// Why a body (or one element of a batch) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body as a whole is unusable; the text follows the original's `Invalid JSON: …`.
    Invalid(String),
    /// A batch with bad elements.
    BadElements(ElementErrors),
}

/// The first [`MAX_LISTED_ERRORS`] bad elements as (index, reason), and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementErrors {
    pub listed: Vec<(usize, String)>,
    pub total: usize,
}

impl ElementErrors {
    /// Counts a bad element; its reason is built only when it is listed.
    pub fn push(&mut self, index: usize, reason: impl FnOnce() -> String) {
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push((index, reason()));
        }
        self.total += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// How the client said the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    NdJson,
}

/// Picks the format from `Content-Type`; anything else is refused like the original did
/// (HTTP 400 with an `Invalid JSON: 415 Unsupported Media Type` message).
pub fn format_from_content_type(ct: Option<&str>) -> Result<BodyFormat, BodyError> {
    let mime = ct.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Ok(BodyFormat::NdJson)
        }
        _ => Err(BodyError::Invalid(format!(
            "415 Unsupported Media Type: expected Content-Type application/json or application/x-ndjson, got {:?}",
            ct.unwrap_or("")
        ))),
    }
}

/// The parsed events and whether the client sent a batch (array or NDJSON).
#[derive(Debug)]
pub struct Parsed {
    /// At most `max_events` of them: past that only `total` counts on.
    pub events: Vec<IngestEvent>,
    pub batch: bool,
    /// How many elements the body held.
    pub total: usize,
}

/// Parses one object, an array or NDJSON, keeping at most `max_events` events (the caller
/// refuses a body with more; memory stays bounded by the limit, not by the body).
pub fn parse(bytes: &[u8], format: BodyFormat, max_events: usize) -> Result<Parsed, BodyError> {
    match parse_raw(bytes, format, max_events) {
        Some(parsed) => Ok(parsed),
        None => parse_as_fields(bytes, format, max_events),
    }
}

/// [`parse`] with every event read into a map, as before raw events.
pub(crate) fn parse_as_fields(bytes: &[u8], format: BodyFormat, max_events: usize) -> Result<Parsed, BodyError> {
    parse_fields(bytes, format, max_events).map(|p| Parsed {
        events: p.events.into_iter().map(IngestEvent::Fields).collect(),
        batch: p.batch,
        total: p.total,
    })
}

/// The body's events kept as the client wrote them ([`IngestEvent::Raw`]), when the body is
/// one that [`parse_fields`] reads without any error: one object, an array of at most
/// `max_events` objects, or NDJSON of such lines. `None` for anything else (errors, too many
/// events, JSON bodies that are NDJSON): the caller parses it the old way, which refuses it or
/// reads it with the same outcome. Elements with a newline byte are read into maps.
fn parse_raw(bytes: &[u8], format: BodyFormat, max_events: usize) -> Option<Parsed> {
    let element = |raw: &RawValue| -> Option<IngestEvent> {
        if let Some(raw) = checked_object(raw) {
            return Some(IngestEvent::Raw(raw.to_owned()));
        }
        match serde_json::from_str::<Value>(raw.get()).ok()? {
            Value::Object(m) => Some(IngestEvent::Fields(m)),
            _ => None,
        }
    };
    let events: Vec<IngestEvent> = match format {
        BodyFormat::NdJson => {
            let mut events = Vec::new();
            for line in bytes.split(|b| *b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if events.len() == max_events {
                    return None;
                }
                events.push(element(serde_json::from_slice(line).ok()?)?);
            }
            events
        }
        BodyFormat::Json => match bytes.trim_ascii_start().first() {
            Some(b'{') => {
                let one = element(serde_json::from_slice(bytes).ok()?)?;
                return Some(Parsed { events: vec![one], batch: false, total: 1 });
            }
            Some(b'[') => {
                // Borrowed first (16 bytes an element): a body of too many is not copied.
                let all: Vec<&RawValue> = serde_json::from_slice(bytes).ok()?;
                if all.len() > max_events {
                    return None;
                }
                all.into_iter().map(element).collect::<Option<_>>()?
            }
            _ => return None,
        },
    };
    if events.is_empty() {
        return None;
    }
    let total = events.len();
    Some(Parsed { events, batch: true, total })
}

/// [`Parsed`], every event read into a map: the body parser as it was before raw events, and
/// still the one that words every refusal.
struct ParsedFields {
    events: Vec<Map<String, Value>>,
    batch: bool,
    total: usize,
}

fn parse_fields(bytes: &[u8], format: BodyFormat, max_events: usize) -> Result<ParsedFields, BodyError> {
    match format {
        BodyFormat::NdJson => parse_ndjson(bytes, max_events),
        BodyFormat::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let top = TopLevel { max_events }.deserialize(&mut de).and_then(|top| de.end().map(|()| top));
            match top {
                Ok(Top::Object(m)) => Ok(ParsedFields { events: vec![m], batch: false, total: 1 }),
                Ok(Top::Array(p)) => batch_result(p),
                Ok(Top::Null) => Err(BodyError::Invalid("Empty or null payload".into())),
                Ok(Top::Other) => Err(BodyError::Invalid("Payload must be a JSON object".into())),
                // rsyslog's omhttp sends newline-separated batches as application/json.
                Err(e) if e.to_string().starts_with("trailing characters") => parse_ndjson(bytes, max_events),
                Err(e) if bytes.iter().all(u8::is_ascii_whitespace) => {
                    Err(BodyError::Invalid(format!("400 Bad Request: empty body ({e})")))
                }
                Err(e) => Err(BodyError::Invalid(format!("400 Bad Request: {e}"))),
            }
        }
    }
}

/// A batch's elements as read: the kept events, the bad elements, the count.
#[derive(Default)]
struct Batch {
    events: Vec<Map<String, Value>>,
    errors: ElementErrors,
    total: usize,
}

impl Batch {
    fn element(&mut self, index: usize, value: Value, what: &str, max_events: usize) {
        self.total += 1;
        match value {
            Value::Object(m) if self.events.len() < max_events => self.events.push(m),
            Value::Object(_) => {}
            other => self
                .errors
                .push(index, || format!("{what} is {}, not a JSON object", mutt_core::text::json_type_name(&other))),
        }
    }
}

fn batch_result(b: Batch) -> Result<ParsedFields, BodyError> {
    if !b.errors.is_empty() {
        return Err(BodyError::BadElements(b.errors));
    }
    if b.total == 0 {
        return Err(BodyError::Invalid("Empty batch: the array holds no events".into()));
    }
    Ok(ParsedFields { events: b.events, batch: true, total: b.total })
}

/// The top-level JSON value, with an array read element by element (never as a whole
/// `Vec<Value>`).
enum Top {
    Object(Map<String, Value>),
    Array(Batch),
    Null,
    Other,
}

struct TopLevel {
    max_events: usize,
}

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = Top;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Top;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Top::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut batch = Batch::default();
        // One element alive at a time; past `max_events` each is checked, counted and dropped.
        while let Some(v) = seq.next_element::<Value>()? {
            batch.element(batch.total, v, "element", self.max_events);
        }
        Ok(Top::Array(batch))
    }

    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Null)
    }
    fn visit_none<E>(self) -> Result<Top, E> {
        Ok(Top::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other)
    }
}

fn parse_ndjson(bytes: &[u8], max_events: usize) -> Result<ParsedFields, BodyError> {
    let mut batch = Batch::default();
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let index = batch.total;
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => batch.element(index, v, "line", max_events),
            Err(e) => {
                batch.total += 1;
                batch.errors.push(index, || format!("invalid JSON: {e}"));
            }
        }
    }
    if !batch.errors.is_empty() {
        return Err(BodyError::BadElements(batch.errors));
    }
    if batch.total == 0 {
        return Err(BodyError::Invalid("Empty or null payload".into()));
    }
    Ok(ParsedFields { events: batch.events, batch: true, total: batch.total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_array_and_ndjson() {
        assert!(!parse(br#"{"a":1}"#, BodyFormat::Json, 100).unwrap().batch);
        assert_eq!(parse(br#"[{"a":1},{"b":2}]"#, BodyFormat::Json, 100).unwrap().events.len(), 2);
        let nd = parse(b"{\"a\":1}\r\n\n{\"b\":2}\n", BodyFormat::NdJson, 100).unwrap();
        assert_eq!(nd.events.len(), 2);
        // Newline-separated objects sent as application/json (rsyslog omhttp) are a batch too.
        assert_eq!(parse(b"{\"a\":1}\n{\"b\":2}", BodyFormat::Json, 100).unwrap().events.len(), 2);
    }

    #[test]
    fn bad_elements_are_indexed() {
        match parse(br#"[{"a":1}, 3, "x"]"#, BodyFormat::Json, 100) {
            Err(BodyError::BadElements(b)) => {
                assert_eq!(b.listed.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2])
            }
            other => panic!("{other:?}"),
        }
        match parse(b"{\"a\":1}\n{bad\n", BodyFormat::NdJson, 100) {
            Err(BodyError::BadElements(b)) => assert_eq!(b.listed[0].0, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_max_events_are_kept_and_only_100_errors_listed() {
        let many = format!("[{}{{}}]", "{},".repeat(999));
        let p = parse(many.as_bytes(), BodyFormat::Json, 10).unwrap();
        assert_eq!((p.events.len(), p.total), (10, 1000));
        let bad = format!("[{}1]", "1,".repeat(999));
        match parse(bad.as_bytes(), BodyFormat::Json, 10) {
            Err(BodyError::BadElements(e)) => {
                assert_eq!((e.listed.len(), e.total), (MAX_LISTED_ERRORS, 1000));
                assert_eq!(e.listed[99].0, 99);
            }
            other => panic!("{other:?}"),
        }
        let nd = "{}\n".repeat(50);
        let p = parse(nd.as_bytes(), BodyFormat::NdJson, 10).unwrap();
        assert_eq!((p.events.len(), p.total), (10, 50));
    }

    #[test]
    fn whole_body_errors() {
        assert_eq!(
            parse(b"null", BodyFormat::Json, 100).unwrap_err(),
            BodyError::Invalid("Empty or null payload".into())
        );
        assert_eq!(
            parse(b"42", BodyFormat::Json, 100).unwrap_err(),
            BodyError::Invalid("Payload must be a JSON object".into())
        );
        assert!(matches!(parse(b"", BodyFormat::Json, 100), Err(BodyError::Invalid(_))));
        assert!(matches!(parse(b"[]", BodyFormat::Json, 100), Err(BodyError::Invalid(_))));
        assert!(matches!(format_from_content_type(Some("text/plain")), Err(BodyError::Invalid(_))));
        assert_eq!(format_from_content_type(Some("application/json; charset=utf-8")), Ok(BodyFormat::Json));
    }
}

//! Reading and parsing an ingest body: one JSON object (the original), a JSON array of objects,
//! or NDJSON (one object per line, as rsyslog's omhttp sends batches).

use serde_json::{Map, Value};

/// Why a body (or one element of a batch) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body as a whole is unusable; the text follows the original's `Invalid JSON: …`.
    Invalid(String),
    /// A batch with bad elements: (index, reason) for each.
    BadElements(Vec<(usize, String)>),
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
    pub events: Vec<Map<String, Value>>,
    pub batch: bool,
}

pub fn parse(bytes: &[u8], format: BodyFormat) -> Result<Parsed, BodyError> {
    match format {
        BodyFormat::NdJson => parse_ndjson(bytes),
        BodyFormat::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Parsed { events: vec![m], batch: false }),
            Ok(Value::Array(items)) => parse_array(items),
            Ok(Value::Null) => Err(BodyError::Invalid("Empty or null payload".into())),
            Ok(_) => Err(BodyError::Invalid("Payload must be a JSON object".into())),
            // rsyslog's omhttp sends newline-separated batches as application/json.
            Err(e) if e.to_string().starts_with("trailing characters") => parse_ndjson(bytes),
            Err(e) if bytes.iter().all(u8::is_ascii_whitespace) => {
                Err(BodyError::Invalid(format!("400 Bad Request: empty body ({e})")))
            }
            Err(e) => Err(BodyError::Invalid(format!("400 Bad Request: {e}"))),
        },
    }
}

fn parse_array(items: Vec<Value>) -> Result<Parsed, BodyError> {
    if items.is_empty() {
        return Err(BodyError::Invalid("Empty batch: the array holds no events".into()));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(m) => events.push(m),
            other => {
                bad.push((i, format!("element is {}, not a JSON object", mutt_core::text::json_type_name(&other))))
            }
        }
    }
    if bad.is_empty() { Ok(Parsed { events, batch: true }) } else { Err(BodyError::BadElements(bad)) }
}

fn parse_ndjson(bytes: &[u8]) -> Result<Parsed, BodyError> {
    let mut events = Vec::new();
    let mut bad = Vec::new();
    let mut index = 0;
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(m)) => events.push(m),
            Ok(other) => {
                bad.push((index, format!("line is {}, not a JSON object", mutt_core::text::json_type_name(&other))))
            }
            Err(e) => bad.push((index, format!("invalid JSON: {e}"))),
        }
        index += 1;
    }
    if !bad.is_empty() {
        return Err(BodyError::BadElements(bad));
    }
    if events.is_empty() {
        return Err(BodyError::Invalid("Empty or null payload".into()));
    }
    Ok(Parsed { events, batch: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_array_and_ndjson() {
        assert!(!parse(br#"{"a":1}"#, BodyFormat::Json).unwrap().batch);
        assert_eq!(parse(br#"[{"a":1},{"b":2}]"#, BodyFormat::Json).unwrap().events.len(), 2);
        let nd = parse(b"{\"a\":1}\r\n\n{\"b\":2}\n", BodyFormat::NdJson).unwrap();
        assert_eq!(nd.events.len(), 2);
        // Newline-separated objects sent as application/json (rsyslog omhttp) are a batch too.
        assert_eq!(parse(b"{\"a\":1}\n{\"b\":2}", BodyFormat::Json).unwrap().events.len(), 2);
    }

    #[test]
    fn bad_elements_are_indexed() {
        match parse(br#"[{"a":1}, 3, "x"]"#, BodyFormat::Json) {
            Err(BodyError::BadElements(b)) => {
                assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2])
            }
            other => panic!("{other:?}"),
        }
        match parse(b"{\"a\":1}\n{bad\n", BodyFormat::NdJson) {
            Err(BodyError::BadElements(b)) => assert_eq!(b[0].0, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_body_errors() {
        assert_eq!(parse(b"null", BodyFormat::Json).unwrap_err(), BodyError::Invalid("Empty or null payload".into()));
        assert_eq!(
            parse(b"42", BodyFormat::Json).unwrap_err(),
            BodyError::Invalid("Payload must be a JSON object".into())
        );
        assert!(matches!(parse(b"", BodyFormat::Json), Err(BodyError::Invalid(_))));
        assert!(matches!(parse(b"[]", BodyFormat::Json), Err(BodyError::Invalid(_))));
        assert!(matches!(format_from_content_type(Some("text/plain")), Err(BodyError::Invalid(_))));
        assert_eq!(format_from_content_type(Some("application/json; charset=utf-8")), Ok(BodyFormat::Json));
    }
}

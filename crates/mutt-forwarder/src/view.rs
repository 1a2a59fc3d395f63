//! A leased alert read once, borrowing from the leased bytes: its text fields are slices of the
//! message (owned only where JSON escapes had to be undone), and its `raw_json` is passed
//! through as the message's own bytes when they say exactly what serde_json would write for the
//! parsed value: serde_json's escapes and numbers, each key once per object, with keys in any
//! order and whitespace between tokens ([`verbatim`]). That is what muttd's alerter queues: the
//! event as the client wrote it, which the original's forwarder also sent in the client's key
//! order. Anything else (the original MUTT's alerts, an `api_key` to drop, a retry counter, no
//! event id, a `raw_json` with other escapes or number forms) takes [`Alert::from_queue`], the
//! one reading of record, and is served from the parsed values.

use mutt_core::Alert;
use mutt_core::alert::QueuedAlert;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// An alert as the forwarder uses it (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView<'a> {
    pub hostname: Cow<'a, str>,
    pub team_assignment: Cow<'a, str>,
    pub severity: Cow<'a, str>,
    pub message_body: Cow<'a, str>,
    pub raw_json: RawJson<'a>,
    pub correlation_id: Cow<'a, str>,
    pub event_id: Cow<'a, str>,
    pub rule_id: Option<i32>,
    pub handling: Option<Cow<'a, str>>,
}

/// An alert's `raw_json`: its bytes as leased (see [`verbatim`]) or its value.
#[derive(Clone, Debug)]
pub enum RawJson<'a> {
    /// Sent as leased; `syslog_severity` read from it.
    Verbatim {
        raw: &'a RawValue,
        syslog_severity: Option<u64>,
    },
    Parsed(Value),
}

/// Equal when the values are, however held.
impl PartialEq for RawJson<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl RawJson<'_> {
    pub fn is_null(&self) -> bool {
        match self {
            RawJson::Verbatim { raw, .. } => raw.get() == "null",
            RawJson::Parsed(v) => v.is_null(),
        }
    }

    /// The value (parsed again from verbatim bytes: for tests and rare paths only).
    pub fn value(&self) -> Cow<'_, Value> {
        match self {
            RawJson::Verbatim { raw, .. } => Cow::Owned(serde_json::from_str(raw.get()).unwrap_or(Value::Null)),
            RawJson::Parsed(v) => Cow::Borrowed(v),
        }
    }

    /// `raw_json.syslog_severity` as an unsigned integer.
    pub fn syslog_severity(&self) -> Option<u64> {
        match self {
            RawJson::Verbatim { syslog_severity, .. } => *syslog_severity,
            RawJson::Parsed(v) => v.get("syslog_severity").and_then(Value::as_u64),
        }
    }

    fn of(raw: Option<&RawValue>) -> RawJson<'_> {
        let Some(raw) = raw else { return RawJson::Parsed(Value::Null) };
        match verbatim(raw.get()) {
            Some(syslog_severity) => RawJson::Verbatim { raw, syslog_severity },
            // A RawValue is valid JSON: it parses.
            None => RawJson::Parsed(serde_json::from_str(raw.get()).unwrap_or(Value::Null)),
        }
    }
}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawJson::Verbatim { raw, .. } => raw.serialize(s),
            RawJson::Parsed(v) => v.serialize(s),
        }
    }
}

/// The fields the fast reading takes; any other field is skipped.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    hostname: Cow<'a, str>,
    #[serde(default, borrow)]
    team_assignment: Cow<'a, str>,
    #[serde(default, borrow)]
    severity: Cow<'a, str>,
    #[serde(default, borrow)]
    message_body: Cow<'a, str>,
    #[serde(default, borrow)]
    raw_json: Option<&'a RawValue>,
    #[serde(rename = "_correlation_id", default, borrow)]
    correlation_id: Cow<'a, str>,
    #[serde(rename = "_event_id", default, borrow)]
    event_id: Cow<'a, str>,
    #[serde(default)]
    rule_id: Option<i32>,
    #[serde(default, borrow)]
    handling: Option<Cow<'a, str>>,
    /// Present (even as `null`): the slow reading drops it (the original's secret).
    #[serde(rename = "api_key", default)]
    api_key: Present,
    #[serde(rename = "_moog_retry_count", default)]
    retry_count: Present,
}

/// Whether a field was there at all, whatever its value.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// Reads a leased message as [`Alert::from_queue`] does (same alert, same retry count, same
/// scrubbed bytes, same errors), borrowing from `raw` when it can.
pub fn read(raw: &[u8]) -> Result<(AlertView<'_>, QueuedParts), mutt_core::alert::AlertError> {
    if let Ok(w) = serde_json::from_slice::<Wire<'_>>(raw)
        && !w.api_key.0
        && !w.retry_count.0
        && !w.event_id.is_empty()
    {
        let view = AlertView {
            hostname: w.hostname,
            team_assignment: w.team_assignment,
            severity: w.severity,
            message_body: w.message_body,
            raw_json: RawJson::of(w.raw_json),
            correlation_id: w.correlation_id,
            event_id: w.event_id,
            rule_id: w.rule_id,
            handling: w.handling,
        };
        return Ok((view, QueuedParts { scrubbed: None, retry_count: 0 }));
    }
    let QueuedAlert { alert, scrubbed, retry_count } = Alert::from_queue(raw)?;
    Ok((AlertView::from(alert), QueuedParts { scrubbed, retry_count }))
}

/// What [`read`] found besides the alert (see [`QueuedAlert`]).
#[derive(Debug, PartialEq, Eq)]
pub struct QueuedParts {
    pub scrubbed: Option<Vec<u8>>,
    pub retry_count: u64,
}

impl From<Alert> for AlertView<'static> {
    fn from(a: Alert) -> Self {
        AlertView {
            hostname: Cow::Owned(a.hostname),
            team_assignment: Cow::Owned(a.team_assignment),
            severity: Cow::Owned(a.severity),
            message_body: Cow::Owned(a.message_body),
            raw_json: RawJson::Parsed(a.raw_json),
            correlation_id: Cow::Owned(a.correlation_id),
            event_id: Cow::Owned(a.event_id),
            rule_id: a.rule_id,
            handling: a.handling.map(Cow::Owned),
        }
    }
}

/// serde_json's recursion limit: deeper input never reaches us.
const MAX_DEPTH: usize = 128;

/// Most keys one object may have for [`verbatim`] to check them for repeats (more: parsed).
const MAX_KEYS: usize = 32;

/// When `json` (valid JSON) may be sent as it is — serde_json's layout of its parsed value up
/// to whitespace between tokens and the order of each object's keys: every key once and without
/// escapes, strings escaped as serde_json escapes them, numbers as serde_json prints them — its
/// top-level `syslog_severity` as `Value::as_u64` would read it; `None` otherwise. A repeated
/// key (which a parse resolves to its last value), a number serde_json cannot hold (`1e400`)
/// or an escape it refuses (a lone surrogate) is never passed on.
pub fn verbatim(json: &str) -> Option<Option<u64>> {
    let mut s = Scanner { b: json.as_bytes(), i: 0, severity: None };
    s.value(0)?;
    s.space();
    (s.i == s.b.len()).then_some(s.severity)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    severity: Option<u64>,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Eats `c` and the whitespace before it.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.space();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// JSON's whitespace between tokens.
    fn space(&mut self) {
        while self.peek().is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(drop),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word.as_bytes()).then(|| self.i = end)
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        // The keys so far, to refuse a repeat; on the stack (objects in events are small).
        let mut keys: [&[u8]; MAX_KEYS] = [&[]; MAX_KEYS];
        let mut count = 0;
        loop {
            self.space();
            let key = self.string()?;
            // An escaped key would have to be compared unescaped: leave it to serde_json.
            if key.contains(&b'\\') || count == MAX_KEYS || keys[..count].contains(&key) {
                return None;
            }
            keys[count] = key;
            count += 1;
            self.eat(b':')?;
            self.space();
            if depth == 0 && key == b"syslog_severity" && self.peek().is_some_and(|c| c == b'-' || c.is_ascii_digit()) {
                let number = self.number()?;
                self.severity = serde_json::from_slice::<Value>(number).ok().and_then(|v| v.as_u64());
            } else {
                self.value(depth + 1)?;
            }
            if self.eat(b'}').is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth + 1)?;
            if self.eat(b']').is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    /// A string's contents between its quotes; `None` if an escape is not serde_json's.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            self.i = quote_or_backslash(self.b, self.i)?;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Some(&self.b[start..self.i - 1]);
            }
            let len = escape_len(self.b.get(self.i + 1..)?)?;
            self.i += 1 + len;
        }
    }

    /// A number's text, if serde_json prints its value the same way.
    fn number(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.peek().is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
            self.i += 1;
        }
        let text = &self.b[start..self.i];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let plain_integer = matches!(digits, [b'1'..=b'9', ..] if digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit))
            || text == b"0";
        if plain_integer {
            return Some(text);
        }
        // Floats, big integers, `-0`: whatever serde_json makes of them, printed again.
        let again = serde_json::from_slice::<Value>(text).ok()?.to_string();
        (again.as_bytes() == text).then_some(text)
    }
}

/// The index of the first `"` or `\\` at or after `i`, looked for eight bytes at a time (the
/// messages inside `raw_json` are long and rarely escaped).
fn quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `w` equals `c`.
    let has = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        if has(w, b'"') | has(w, b'\\') != 0 {
            break;
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\').map(|p| i + p)
}

/// The length after the backslash of an escape serde_json writes: `\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, and `\u00xx` (lowercase hex) for the other control characters.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' => {
            let hex = rest.get(1..5)?;
            let lower_hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
            let code = u8::from_str_radix(std::str::from_utf8(hex.get(2..)?).ok()?, 16).ok()?;
            let short = matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
            (hex.starts_with(b"00") && hex.iter().all(lower_hex) && code < 0x20 && !short).then_some(5)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Passed on as they are: serde_json's own layout, and the same with keys in another order
    /// or whitespace between tokens (a client's event as written); each reads back as the value
    /// serde_json writes, so the payload says the same.
    #[test]
    fn verbatim_is_serde_jsons_layout_up_to_key_order_and_whitespace() {
        for text in [
            r#"{"a":1,"b":[1,2,{"c":null}],"d":"x\"y\\z\n\u0001","e":true,"f":-5,"g":1.5,"h":{}}"#,
            r#"[]"#,
            r#""é ünïcode""#,
            r#"{"syslog_severity":3}"#,
            r#"18446744073709551615"#,
            r#"-9223372036854775808"#,
            r#"1e+300"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a": 1}"#,
            " { \"z\" : [ 1 , { \"y\":2, \"x\" :null } ] ,\t\"a\":\"\" }\r\n",
            r#" 1"#,
        ] {
            assert!(verbatim(text).is_some(), "{text}");
            let value = serde_json::from_str::<Value>(text).unwrap();
            assert!(verbatim(&value.to_string()).is_some(), "{value}");
        }
    }

    /// Left to the parse: forms serde_json would write otherwise, repeated keys (a parse keeps
    /// the last), and what it refuses; and more keys in one object than are checked for repeats.
    #[test]
    fn other_forms_and_repeated_keys_are_parsed() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"b":1,"a":1,"b":2}"#,
            r#"{"x":{"a":1,"b":2,"a":3}}"#,
            r#"{"a\u0062":1}"#,
            r#""\u00e9""#,
            r#""\/""#,
            r#""\u0008""#,
            r#""\u001F""#,
            r#"1.0e2"#,
            r#"-0"#,
            r#"1E5"#,
            r#"100000000000000000000000"#,
        ] {
            assert_eq!(verbatim(text), None, "{text}");
            serde_json::from_str::<Value>(text).unwrap();
        }
        for refused in [r#"{"a":1e400}"#, r#"["\ud800"]"#] {
            assert_eq!(verbatim(refused), None, "{refused}");
            assert!(serde_json::from_str::<Value>(refused).is_err());
        }
        let keys = |n: usize| format!("{{{}}}", (0..n).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(","));
        assert!(verbatim(&keys(MAX_KEYS)).is_some());
        assert_eq!(verbatim(&keys(MAX_KEYS + 1)), None);
    }

    #[test]
    fn quotes_and_backslashes_are_found_at_any_offset() {
        for len in 0..40 {
            for c in [b'"', b'\\'] {
                let mut text = vec![b'a'; len];
                text.push(c);
                text.extend_from_slice(b"xx\"");
                for from in 0..=len {
                    assert_eq!(quote_or_backslash(&text, from), Some(len), "{len} {from}");
                }
            }
            assert_eq!(quote_or_backslash(&vec![b'a'; len], 0), None);
        }
    }

    #[test]
    fn severity_is_read_as_value_as_u64_reads_it() {
        for (raw, want) in [
            (json!({"syslog_severity": 3, "x": 1}), Some(3)),
            (json!({"syslog_severity": -3}), None),
            (json!({"syslog_severity": 3.0}), None),
            (json!({"syslog_severity": "3"}), None),
            (json!({"nested": {"syslog_severity": 3}}), None),
            (json!([{"syslog_severity": 3}]), None),
        ] {
            let text = raw.to_string();
            assert_eq!(verbatim(&text), Some(want), "{text}");
            assert_eq!(raw.get("syslog_severity").and_then(Value::as_u64), want);
        }
    }

    fn alert() -> Alert {
        Alert {
            hostname: "router1 \"core\"".into(),
            team_assignment: "NetOps".into(),
            severity: "Major".into(),
            message_body: "LINK-DOWN on Gi0/1\n".into(),
            raw_json: json!({"message": "LINK-DOWN", "syslog_severity": 2}),
            correlation_id: "c1".into(),
            event_id: uuid::Uuid::now_v7().to_string(),
            rule_id: Some(3),
            handling: Some("Page_and_ticket".into()),
        }
    }

    /// The fast reading and [`Alert::from_queue`] agree on every message, including those the
    /// fast one leaves to the slow.
    #[test]
    fn reads_as_from_queue_does() {
        let own = alert().to_json();
        let mut messages = vec![
            own.clone(),
            own.replace('}', r#","api_key":"s3cret"}"#),
            own.replace('}', r#","_moog_retry_count":2}"#),
            own.replace('}', r#","_moog_retry_count":"7"}"#),
            r#"{"hostname":"h","raw_json":{"b": 1, "a": "\u00e9"}, "_event_id":"x"}"#.to_owned(),
            r#"{"hostname":"h","message_body":"m"}"#.to_owned(),
            r#"{"hostname":"h","hostname":"i","_event_id":"x"}"#.to_owned(),
            r#"{"hostname":"h","_event_id":""}"#.to_owned(),
            r#"{"hostname":5,"_event_id":"x"}"#.to_owned(),
            r#"{"hostname":"h","rule_id":null,"handling":null,"raw_json":null,"_event_id":"x"}"#.to_owned(),
            r#"[1,2]"#.to_owned(),
            r#"not json"#.to_owned(),
        ];
        messages.push(own.replace("Major", r#"Ma\u006aor"#));
        for m in &messages {
            let slow = Alert::from_queue(m.as_bytes());
            let fast = read(m.as_bytes());
            match (slow, fast) {
                (Ok(slow), Ok((view, parts))) => {
                    assert_eq!(view, AlertView::from(slow.alert.clone()), "{m}");
                    assert_eq!(parts, QueuedParts { scrubbed: slow.scrubbed, retry_count: slow.retry_count }, "{m}");
                }
                (Err(slow), Err(fast)) => assert_eq!(slow, fast, "{m}"),
                (slow, fast) => panic!("{m}: {slow:?} vs {fast:?}"),
            }
        }
        let (view, _) = read(own.as_bytes()).unwrap();
        assert!(matches!(view.raw_json, RawJson::Verbatim { syslog_severity: Some(2), .. }), "{view:?}");
        assert!(matches!(view.hostname, Cow::Owned(_)) && matches!(view.team_assignment, Cow::Borrowed(_)));
    }
}

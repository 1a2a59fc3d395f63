//! One syslog message (RFC 3164 or 5424) into the ingest event shape.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::net::IpAddr;
use syslog_loose::{IncompleteDate, Variant};

/// The event and whether the parser had to fall back to its lenient mode (a parse error).
pub struct Parsed {
    pub event: Map<String, Value>,
    pub lenient: bool,
}

/// Parses `raw` (any bytes) received from `sender` at `now`. Never fails: text that is not
/// syslog becomes the message of an event from the sender (counted as a parse error).
pub fn to_event(raw: &[u8], sender: IpAddr, now: DateTime<Utc>) -> Parsed {
    let text = String::from_utf8_lossy(raw);
    let text = trim_frame(&text);
    let year = |(month, ..): IncompleteDate| year_for(month, now);
    let (mut msg, lenient) =
        match syslog_loose::parse_message_with_year_exact_tz(text, year, Some(Utc), Variant::Either) {
            Ok(m) => (m, false),
            Err(_) => (syslog_loose::parse_message_with_year_tz(text, year, Some(Utc), Variant::Either), true),
        };
    // `<PRI>text` without header (some devices): keep the priority, the text is the message.
    if msg.severity.is_none()
        && let Some((pri, rest)) = bare_pri(text)
    {
        (msg.facility, msg.severity) = syslog_loose::decompose_pri(pri);
        msg.msg = rest;
    }
    let mut ev = Map::new();
    let (hostname, source) = match msg.hostname.filter(|h| !h.is_empty() && *h != "-") {
        Some(h) => (h.to_owned(), "message"),
        None => (sender.to_string(), "sender"),
    };
    ev.insert("hostname".into(), hostname.into());
    ev.insert("hostname_source".into(), source.into());
    let ts = msg.timestamp.map(|t| t.with_timezone(&Utc)).unwrap_or(now);
    ev.insert("timestamp".into(), ts.to_rfc3339_opts(SecondsFormat::Millis, true).into());
    if let Some(sev) = msg.severity {
        ev.insert("syslog_severity".into(), (sev as u8).into());
        ev.insert("syslog_severity_name".into(), sev.as_str().into());
    }
    if let Some(fac) = msg.facility {
        ev.insert("facility".into(), fac.as_str().into());
    }
    insert_opt(&mut ev, "app_name", msg.appname);
    insert_opt(&mut ev, "proc_id", msg.procid.map(|p| p.to_string()).as_deref());
    insert_opt(&mut ev, "msg_id", msg.msgid);
    let mut sd = Map::new();
    for element in &msg.structured_data {
        let params: Map<String, Value> =
            element.params.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
        sd.insert(element.id.to_owned(), Value::Object(params));
    }
    ev.insert("structured_data".into(), Value::Object(sd));
    let message = strip_bom(msg.msg).trim_end();
    // An empty body would fail the required `message` field; keep the raw line instead.
    let message = if message.is_empty() { text } else { message };
    ev.insert("message".into(), message.into());
    ev.insert("source".into(), "syslog".into());
    ev.insert("source_ip".into(), sender.to_string().into());
    Parsed { event: ev, lenient }
}

fn insert_opt(ev: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty() && *v != "-") {
        ev.insert(key.into(), v.into());
    }
}

/// `<0>` … `<191>` and what follows it.
fn bare_pri(text: &str) -> Option<(u8, &str)> {
    let (pri, rest) = text.strip_prefix('<')?.split_once('>')?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri: u8 = pri.parse().ok().filter(|p| *p <= 191)?;
    Some((pri, rest.trim_start()))
}

/// RFC 3164 has no year: the current one, or last year for a December message seen in January.
fn year_for(month: u32, now: DateTime<Utc>) -> i32 {
    if month > now.month() + 1 { now.year() - 1 } else { now.year() }
}

/// Trailing LF/CR/NUL left by senders that terminate datagrams.
fn trim_frame(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r', '\0'])
}

/// RFC 5424 allows a UTF-8 BOM before MSG.
fn strip_bom(msg: &str) -> &str {
    msg.strip_prefix('\u{feff}').unwrap_or(msg)
}

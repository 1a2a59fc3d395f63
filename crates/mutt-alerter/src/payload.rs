//! The alert of a handled event, written straight from the event's queued bytes.
//!
//! [`mutt_core::Alert::for_handled_event`] clones the parsed event into `raw_json` and
//! serialises it again: per forwarded event, a deep copy of the object and a second
//! serialisation, the largest costs of the alerter after parsing. The queued bytes already are
//! the event as a JSON object (the batch parsed them to get here), so they go into `raw_json`
//! as they are. The result reads back as the same [`mutt_core::Alert`] (same fields, same
//! order; `raw_json`'s keys keep the order they were queued in instead of being sorted).

use mutt_core::{EventFields, QueuedEvent, Rule};
use std::borrow::Cow;

/// The alert-queue message for `event` (queued as `raw`, already parsed as a JSON object),
/// handled by `rule` with `handling`.
pub(crate) fn handled_alert(raw: &[u8], event: &QueuedEvent<'_>, rule: &Rule, handling: &str) -> Vec<u8> {
    let [hostname, message, correlation_id] = event.texts();
    let mut out = Vec::with_capacity(raw.len() * 2 + 256);
    out.extend_from_slice(b"{\"hostname\":");
    text(&mut out, hostname, "");
    out.extend_from_slice(b",\"team_assignment\":");
    string(&mut out, &rule.team_assignment);
    out.extend_from_slice(b",\"severity\":\"Warning\",\"message_body\":");
    text(&mut out, message, "");
    out.extend_from_slice(b",\"raw_json\":");
    out.extend_from_slice(raw);
    out.extend_from_slice(b",\"_correlation_id\":");
    text(&mut out, correlation_id, "unknown");
    out.extend_from_slice(b",\"_event_id\":\"");
    out.extend_from_slice(
        event.event_id().as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes(),
    );
    out.extend_from_slice(b"\",\"rule_id\":");
    out.extend_from_slice(rule.id.to_string().as_bytes());
    out.extend_from_slice(b",\"handling\":");
    string(&mut out, handling);
    out.push(b'}');
    out
}

/// Appends a field read by [`QueuedEvent`] (`default` when absent) as a JSON string: text
/// borrowed from the message had no escapes there, so it is copied as it stands (serde_json's
/// escaping scans it byte by byte, 4 % of the alerter); other text is escaped.
fn text(out: &mut Vec<u8>, s: Option<&Cow<'_, str>>, default: &str) {
    match s {
        Some(Cow::Borrowed(s)) => {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Some(Cow::Owned(s)) => string(out, s),
        None => string(out, default),
    }
}

/// Appends `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // Serialising a string into a Vec cannot fail (no I/O, no map keys to check).
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_core::{Alert, Event, MatchType};

    fn rule() -> Rule {
        Rule {
            id: 42,
            match_string: Some("DOWN".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: MatchType::Contains,
            priority: 1,
            prod_handling: "Page_and_ticket".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NET \"core\" ⚡".into(),
            is_active: true,
            flap_threshold: None,
            flap_window_secs: None,
        }
    }

    /// The bytes read back as exactly the alert `for_handled_event` builds, for messages
    /// with escapes, unicode, nested values, whitespace and missing fields.
    #[test]
    fn reads_back_as_the_alert_for_handled_event() {
        let raws: [&[u8]; 5] = [
            br#"{"hostname":"sw1","message":"EVT DOWN \"quoted\" \\ tab\t","timestamp":"2025-11-08T12:00:00Z","_correlation_id":"c1","_event_id":"01900000-0000-7000-8000-000000000001","extra":{"a":[1,2.5,null,true]}}"#,
            " { \"message\" : \"caf\u{e9} DOWN \u{2028}\" , \"hostname\":\"h\\u00e9\",\n \"syslog_severity\": 5 } ".as_bytes(),
            br#"{"message":"DOWN"}"#,
            br#"{"hostname":"h","message":"DOWN","_retry_count":2,"z":"last","a":"first"}"#,
            "{\"hostname\":\"h\u{7f}\u{e9}/\",\"message\":\"DOWN \u{2028} \u{1F600}\",\"_correlation_id\":\"c\u{e9}\"}".as_bytes(),
        ];
        for raw in raws {
            let event = Event::from_slice(raw).unwrap();
            let queued = QueuedEvent::read(raw, &[] as &[&str]).unwrap();
            let bytes = handled_alert(raw, &queued, &rule(), "Page_and_ticket");
            let got = Alert::from_queue(&bytes).unwrap();
            assert_eq!(got.alert, Alert::for_handled_event(&event, &rule(), "Page_and_ticket"));
            assert_eq!((got.scrubbed, got.retry_count), (None, 0));
            // Same fields in the same order as the serialised Alert.
            let want: serde_json::Value =
                serde_json::from_str(&Alert::for_handled_event(&event, &rule(), "Page_and_ticket").to_json()).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(got, want);
        }
    }

    /// An event in serde_json's layout (compact, keys sorted) gives byte for byte the alert the
    /// parsed-and-serialised path gave, whether its texts had escapes (written again) or not
    /// (copied as they stand: DEL, `/`, U+2028 and other non-ASCII text unescaped, as
    /// serde_json writes them).
    #[test]
    fn a_canonical_event_gives_the_same_bytes_as_before() {
        let values = [
            serde_json::json!({"hostname": "sw1", "message": "EVT DOWN \"q\" \u{1} é", "timestamp": "2025-11-08T12:00:00Z",
                "syslog_severity": 5, "nested": {"b": [1, -2.5, null], "a": true}, "_correlation_id": "c1",
                "_event_id": "01900000-0000-7000-8000-000000000001"}),
            serde_json::json!({"hostname": "h\u{7f}é/", "message": "DOWN \u{2028} \u{1F600} a/b", "_correlation_id": "c\u{e9}",
                "_event_id": "01900000-0000-7000-8000-000000000002"}),
            serde_json::json!({"message": "DOWN", "_event_id": "01900000-0000-7000-8000-000000000003"}),
        ];
        for value in values {
            let raw = serde_json::to_vec(&value).unwrap();
            let event = Event::from_slice(&raw).unwrap();
            let queued = QueuedEvent::read(&raw, &[] as &[&str]).unwrap();
            let bytes = handled_alert(&raw, &queued, &rule(), "Page_and_ticket");
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                Alert::for_handled_event(&event, &rule(), "Page_and_ticket").to_json()
            );
        }
    }
}

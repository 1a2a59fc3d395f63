//! The bodies written directly must be the bytes the JSON objects of earlier versions (kept
//! below as [`reference`]) serialised to, for every format, field for field and byte for byte.

use super::*;
use crate::view;
use mutt_core::Alert;
use serde_json::{Value, json};

/// The payload code before bodies were written directly (JSON objects, then serialised), with
/// the webhook's insertion of the REST LAM token.
mod reference {
    use super::super::{LEGACY_AGENT, OutputFormat, moog_severity};
    use mutt_core::Alert;
    use serde_json::{Value, json};

    fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
        if s.is_empty() { default } else { s }
    }

    pub fn lam_event(alert: &Alert, severity_map: &[u8; 8], default_severity: u8, now_epoch: i64) -> Value {
        let severity = alert
            .raw_json
            .get("syslog_severity")
            .and_then(Value::as_u64)
            .and_then(|s| severity_map.get(s as usize).copied())
            .unwrap_or(default_severity);
        let host = or(&alert.hostname, "unknown");
        let signature = match alert.rule_id {
            Some(rule) => format!("{host}::rule-{rule}"),
            None => format!("{host}::{}", alert.handling.as_deref().unwrap_or("mutt")),
        };
        json!({
            "signature": signature,
            "source_id": host,
            "external_id": alert.event_id,
            "manager": "MUTT",
            "source": host,
            "class": or(&alert.team_assignment, "Unknown"),
            "agent_location": "MUTT Alerter",
            "type": alert.handling.as_deref().unwrap_or("Alert"),
            "severity": severity,
            "description": alert.message_body,
            "agent_time": now_epoch,
            "custom_info": alert.raw_json,
        })
    }

    fn legacy(a: &Alert, now_epoch: i64) -> Value {
        let mut body = json!({
            "signature": or(&a.hostname, "unknown"),
            "source_id": or(&a.hostname, "unknown"),
            "external_id": or(&a.correlation_id, "unknown"),
            "manager": "MUTT",
            "source": "MUTT Alerter",
            "class": or(&a.team_assignment, "Unknown"),
            "agent": LEGACY_AGENT,
            "agent_location": "Alerter Service",
            "type": "Alert",
            "severity": moog_severity(&a.severity),
            "description": a.message_body,
            "agent_time": now_epoch,
        });
        if !a.raw_json.is_null() {
            body["custom_info"] = a.raw_json.clone();
        }
        body
    }

    /// A request's bytes as the webhook sent them.
    pub fn request(format: OutputFormat, group: &[&Alert], now: i64, token: Option<&str>) -> Vec<u8> {
        let mut body = match format {
            OutputFormat::MoogRestLam => {
                let events: Vec<Value> =
                    group.iter().map(|a| lam_event(a, &super::DEFAULT_SEVERITY_MAP, 2, now)).collect();
                json!({ "events": events })
            }
            OutputFormat::Legacy => legacy(group[0], now),
            OutputFormat::Generic => serde_json::to_value(group[0]).unwrap(),
        };
        // Only a REST LAM body carries the token (Auth::BodyToken).
        if let (OutputFormat::MoogRestLam, Some(t), Some(obj)) = (format, token, body.as_object_mut()) {
            obj.insert("auth_token".into(), Value::String(t.to_owned()));
        }
        serde_json::to_vec(&body).unwrap()
    }
}

fn alert() -> Alert {
    Alert {
        hostname: "router1".into(),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: "LINK-DOWN on Gi0/1".into(),
        raw_json: json!({"message": "LINK-DOWN on Gi0/1"}),
        correlation_id: "c1".into(),
        event_id: "e1".into(),
        rule_id: Some(3),
        handling: Some("Page_and_ticket".into()),
    }
}

fn encoder(format: OutputFormat) -> Encoder {
    Encoder { format, lam_batch_size: 100, severity_map: DEFAULT_SEVERITY_MAP, default_severity: 2 }
}

/// The queued messages of the comparison: muttd's own alerts in several shapes, and messages
/// whose `raw_json` or fields take the slow reading.
fn messages() -> Vec<Vec<u8>> {
    let mut alerts = vec![alert()];
    let mut a = alert();
    a.hostname = "sw\"1\"\\é\u{1}\t".into();
    a.message_body = "line1\nline2 \u{7f} ünïcode \u{2028}".into();
    a.raw_json = json!({"syslog_severity": 3, "z": [1, -2, 1.5, 1e300, null, true, {"b": {}, "a": []}], "ä": "x\u{0}"});
    a.event_id = uuid::Uuid::now_v7().to_string();
    alerts.push(a);
    let mut a = alert();
    a.raw_json = Value::Null;
    a.rule_id = None;
    a.handling = None;
    a.team_assignment = String::new();
    a.hostname = String::new();
    a.correlation_id = String::new();
    alerts.push(a);
    let mut a = alert();
    a.rule_id = None;
    a.raw_json = json!({"syslog_severity": 9});
    a.severity = "Critical".into();
    alerts.push(a);
    let mut a = alert();
    a.raw_json = json!("just text");
    a.rule_id = Some(-7);
    alerts.push(a);
    let mut out: Vec<Vec<u8>> = alerts.iter().map(|a| a.to_json().into_bytes()).collect();
    // The original MUTT's layout (spaces, unsorted keys, escapes), its api_key, a retry count,
    // and no event id: the slow reading, and raw_json served from its parsed value.
    out.push(
        br#"{"hostname": "h1", "team_assignment": "T", "severity": "Major", "message_body": "m \u00e9",
            "raw_json": {"syslog_severity": 1, "message": "m", "a": 1.0}, "_correlation_id": "c9",
            "api_key": "secret", "_moog_retry_count": 1}"#
            .to_vec(),
    );
    out.push(br#"{"hostname":"h2","raw_json":{"b":1,"a":2},"_event_id":"x2"}"#.to_vec());
    out.push(br#"{"_event_id":"x3","raw_json":{"syslog_severity":-1,"n":18446744073709551615}}"#.to_vec());
    out
}

/// Whether the view's `raw_json` is serde_json's own layout of its value (then the body is the
/// reference's byte for byte; a client's key order or spacing passed through says the same).
fn laid_out_by_serde(v: &view::AlertView<'_>) -> bool {
    match &v.raw_json {
        view::RawJson::Verbatim { raw, .. } => {
            serde_json::to_string(&serde_json::from_str::<Value>(raw.get()).unwrap()).unwrap() == raw.get()
        }
        view::RawJson::Parsed(_) => true,
    }
}

/// The same JSON: equal values, and the same bytes where `raw_json` was laid out by serde_json.
fn assert_same_body(got: &[u8], want: &[u8], bytes: bool, what: &str) {
    let value = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
    assert_eq!(value(got), value(want), "{what}");
    if bytes {
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(want), "{what}");
    }
}

#[test]
fn bodies_are_the_bytes_of_the_earlier_json_objects() {
    let now = 1_700_000_000;
    let messages = messages();
    let olds: Vec<Alert> = messages.iter().map(|m| Alert::from_queue(m).unwrap().alert).collect();
    let news: Vec<view::AlertView<'_>> = messages.iter().map(|m| view::read(m).unwrap().0).collect();
    assert!(matches!(news[1].raw_json, view::RawJson::Verbatim { .. }), "muttd's alerts pass raw_json through");
    assert!(matches!(news[5].raw_json, view::RawJson::Parsed(_)));
    assert!(matches!(news[6].raw_json, view::RawJson::Verbatim { .. }) && !laid_out_by_serde(&news[6]));
    let lam = encoder(OutputFormat::MoogRestLam).group_body(&[&news[6]], now, None);
    assert!(String::from_utf8_lossy(&lam).contains(r#""custom_info":{"b":1,"a":2}"#), "the client's key order is kept");
    for format in [OutputFormat::MoogRestLam, OutputFormat::Legacy, OutputFormat::Generic] {
        let enc = encoder(format);
        for token in [None, Some("t\"ok")] {
            let token = token.filter(|_| format == OutputFormat::MoogRestLam);
            for (old, new) in olds.iter().zip(&news) {
                let want = reference::request(format, &[old], now, token);
                let got = enc.group_body(&[new], now, token);
                assert_same_body(&got, &want, laid_out_by_serde(new), &format!("{format:?}"));
            }
        }
        // A REST LAM batch of all of them.
        let old_refs: Vec<&Alert> = olds.iter().collect();
        let new_refs: Vec<&view::AlertView<'_>> = news.iter().collect();
        if format == OutputFormat::MoogRestLam {
            let want = reference::request(format, &old_refs, now, Some("tok"));
            let got = enc.group_body(&new_refs, now, Some("tok"));
            assert_same_body(&got, &want, news.iter().all(laid_out_by_serde), "a batch");
        }
    }
}

fn body_of(enc: &Encoder, a: &Alert, now: i64) -> Value {
    let raw = a.to_json();
    let (v, _) = view::read(raw.as_bytes()).unwrap();
    serde_json::from_slice(&enc.group_body(&[&v], now, None)).unwrap()
}

#[test]
fn rest_lam_event_has_moog_fields_and_numeric_severity() {
    let mut a = alert();
    a.raw_json = json!({"syslog_severity": 3, "message": "x"});
    let body = body_of(&encoder(OutputFormat::MoogRestLam), &a, 1700000000);
    let e = &body["events"][0];
    for f in [
        "signature",
        "source_id",
        "external_id",
        "manager",
        "source",
        "class",
        "agent_location",
        "type",
        "severity",
        "description",
        "agent_time",
        "custom_info",
    ] {
        assert!(e.get(f).is_some(), "{f}");
    }
    assert_eq!(e["severity"], 4);
    assert_eq!(e["external_id"], "e1");
    assert_eq!(e["class"], "NetOps");
    assert_eq!(e["signature"], "router1::rule-3");
    assert!(body.get("auth_token").is_none());
    a.raw_json = json!({});
    assert_eq!(body_of(&encoder(OutputFormat::MoogRestLam), &a, 0)["events"][0]["severity"], 2);
}

#[test]
fn encoder_groups_rest_lam_batches_without_the_token() {
    let raw = alert().to_json();
    let (v, _) = view::read(raw.as_bytes()).unwrap();
    let refs = vec![&v; 5];
    let enc = Encoder { lam_batch_size: 2, ..encoder(OutputFormat::MoogRestLam) };
    let reqs = enc.requests(&refs, 0);
    let sizes: Vec<usize> = reqs.iter().map(|(g, _)| g.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    for (g, b) in &reqs {
        let b: Value = serde_json::from_slice(b).unwrap();
        assert_eq!(b["events"].as_array().map(Vec::len), Some(g.len()));
        assert!(b.get("auth_token").is_none());
    }
    let legacy = Encoder { format: OutputFormat::Legacy, ..enc };
    assert_eq!(legacy.request_size(), 1);
    assert_eq!(legacy.requests(&refs, 0).len(), 5);
}

#[test]
fn legacy_payload_is_the_originals_field_for_field() {
    let mut a = alert();
    a.severity = "Major".into();
    let b = body_of(&encoder(OutputFormat::Legacy), &a, 1700000000);
    let want = json!({
        "signature": "router1", "source_id": "router1", "external_id": "c1", "manager": "MUTT",
        "source": "MUTT Alerter", "class": "NetOps", "agent": "MUTT v2.3",
        "agent_location": "Alerter Service", "type": "Alert", "severity": 4,
        "description": "LINK-DOWN on Gi0/1", "agent_time": 1700000000,
        "custom_info": {"message": "LINK-DOWN on Gi0/1"},
    });
    assert_eq!(b, want);
    // The original's defaults, and no custom_info without raw_json.
    let (empty, _) = view::read(b"{}").unwrap();
    let b: Value = serde_json::from_slice(&encoder(OutputFormat::Legacy).group_body(&[&empty], 0, None)).unwrap();
    assert_eq!(
        (&b["signature"], &b["source_id"], &b["external_id"]),
        (&json!("unknown"), &json!("unknown"), &json!("unknown"))
    );
    assert_eq!((&b["class"], &b["severity"], &b["description"]), (&json!("Unknown"), &json!(3), &json!("")));
    assert!(b.get("custom_info").is_none(), "{b}");
    for (name, n) in [
        ("Critical", 5),
        ("Major", 4),
        ("Warning", 3),
        ("Minor", 2),
        ("Info", 1),
        ("Clear", 0),
        ("critical", 3),
        ("", 3),
    ] {
        assert_eq!(moog_severity(name), n, "{name}");
    }
}

#[test]
fn rest_lam_and_generic_keep_the_event_id() {
    let a = alert();
    assert_eq!(body_of(&encoder(OutputFormat::MoogRestLam), &a, 0)["events"][0]["external_id"], "e1");
    assert_eq!(body_of(&encoder(OutputFormat::Generic), &a, 0)["_event_id"], "e1");
}

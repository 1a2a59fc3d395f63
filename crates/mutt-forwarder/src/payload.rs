//! Request bodies for the output formats.

use mutt_core::Alert;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// Moogsoft REST LAM: `{"events": [...]}`, many alerts per request, numeric severities.
    MoogRestLam,
    /// The original's payload (spec §5.3), one alert per request.
    Legacy,
    /// The alert message itself as JSON, one per request, for any webhook.
    Generic,
}

/// The original's severity names → Moog's numbers (unknown → 3, Warning).
pub fn moog_severity(name: &str) -> u8 {
    match name {
        "Critical" => 5,
        "Major" => 4,
        "Warning" => 3,
        "Minor" => 2,
        "Info" => 1,
        "Clear" => 0,
        _ => 3,
    }
}

/// Syslog severity (index 0 emerg … 7 debug) → Moog severity (0 clear, 1 indeterminate,
/// 2 warning, 3 minor, 4 major, 5 critical). Nothing maps to clear: an event never clears an
/// alert by accident.
pub const DEFAULT_SEVERITY_MAP: [u8; 8] = [5, 5, 5, 4, 2, 1, 1, 1];

/// The body of a one-alert request (`legacy`, `generic`).
pub fn body(format: OutputFormat, alert: &Alert, now_epoch: i64) -> Value {
    match format {
        OutputFormat::Legacy => legacy(alert, now_epoch),
        OutputFormat::Generic | OutputFormat::MoogRestLam => serde_json::to_value(alert).unwrap_or(Value::Null),
    }
}

/// One REST LAM event for an alert.
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

/// The REST LAM request body for several alerts.
pub fn lam_body(events: Vec<Value>, auth_token: Option<&str>) -> Value {
    let mut body = json!({"events": events});
    if let Some(t) = auth_token {
        body["auth_token"] = json!(t);
    }
    body
}

/// Builds the request bodies of one output format (every sink sends or writes the same ones).
#[derive(Clone, Debug)]
pub struct Encoder {
    pub format: OutputFormat,
    /// Alerts per `moog-rest-lam` request.
    pub lam_batch_size: usize,
    pub severity_map: [u8; 8],
    pub default_severity: u8,
}

impl Encoder {
    pub fn new(config: &crate::ForwarderConfig) -> Self {
        Self {
            format: config.format,
            lam_batch_size: config.lam_batch_size,
            severity_map: config.severity_map,
            default_severity: config.default_severity,
        }
    }

    /// Alerts per request: a REST LAM batch, or one.
    pub fn request_size(&self) -> usize {
        match self.format {
            OutputFormat::MoogRestLam => self.lam_batch_size.max(1),
            _ => 1,
        }
    }

    /// The requests for these alerts: the alerts each carries and its body. REST LAM bodies
    /// carry no `auth_token`: only the webhook adds it, so it never reaches a file or a log.
    pub fn requests<'a>(&self, alerts: &'a [&'a Alert], now_epoch: i64) -> Vec<(&'a [&'a Alert], Value)> {
        alerts.chunks(self.request_size()).map(|group| (group, self.group_body(group, now_epoch))).collect()
    }

    /// The body of one request carrying `group` (one alert unless the format is REST LAM;
    /// a smaller group when a rejected batch is split to find the rejected alerts).
    pub fn group_body(&self, group: &[&Alert], now_epoch: i64) -> Value {
        match (self.format, group) {
            (OutputFormat::MoogRestLam, _) => {
                let events =
                    group.iter().map(|a| lam_event(a, &self.severity_map, self.default_severity, now_epoch)).collect();
                lam_body(events, None)
            }
            (f, [first, ..]) => body(f, first, now_epoch),
            (_, []) => Value::Null,
        }
    }
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// The original's `agent` value, kept literally: Moogsoft filters and runbooks may match on it.
pub const LEGACY_AGENT: &str = "MUTT v2.3";

/// The original's payload field for field (spec §5.3). `external_id` is the correlation id,
/// as the original sent it (Moog correlation and runbooks find the MUTT log line by it); the
/// other formats send the event id there, the right dedup key when a batch shares one
/// correlation id. An empty field takes the original's default (it never sent empty ones).
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
    // The original adds `custom_info` only when the alert has `raw_json`.
    if !a.raw_json.is_null() {
        body["custom_info"] = a.raw_json.clone();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_lam_event_has_moog_fields_and_numeric_severity() {
        let mut a = alert();
        a.raw_json = json!({"syslog_severity": 3, "message": "x"});
        let e = lam_event(&a, &DEFAULT_SEVERITY_MAP, 2, 1700000000);
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
        a.raw_json = json!({});
        assert_eq!(lam_event(&a, &DEFAULT_SEVERITY_MAP, 2, 0)["severity"], 2);
        let body = lam_body(vec![e], Some("tok"));
        assert_eq!(body["auth_token"], "tok");
        assert_eq!(body["events"].as_array().unwrap().len(), 1);
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

    #[test]
    fn encoder_groups_rest_lam_batches_without_the_token() {
        let alerts = vec![alert(); 5];
        let refs: Vec<&Alert> = alerts.iter().collect();
        let enc = Encoder {
            format: OutputFormat::MoogRestLam,
            lam_batch_size: 2,
            severity_map: DEFAULT_SEVERITY_MAP,
            default_severity: 2,
        };
        let reqs = enc.requests(&refs, 0);
        let sizes: Vec<usize> = reqs.iter().map(|(g, _)| g.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(reqs.iter().all(|(g, b)| b["events"].as_array().map(Vec::len) == Some(g.len())));
        assert!(reqs.iter().all(|(_, b)| b.get("auth_token").is_none()));
        let legacy = Encoder { format: OutputFormat::Legacy, ..enc };
        assert_eq!(legacy.request_size(), 1);
        assert_eq!(legacy.requests(&refs, 0).len(), 5);
    }

    #[test]
    fn legacy_payload_is_the_originals_field_for_field() {
        let mut a = alert();
        a.severity = "Major".into();
        let b = body(OutputFormat::Legacy, &a, 1700000000);
        let want = json!({
            "signature": "router1", "source_id": "router1", "external_id": "c1", "manager": "MUTT",
            "source": "MUTT Alerter", "class": "NetOps", "agent": "MUTT v2.3",
            "agent_location": "Alerter Service", "type": "Alert", "severity": 4,
            "description": "LINK-DOWN on Gi0/1", "agent_time": 1700000000,
            "custom_info": {"message": "LINK-DOWN on Gi0/1"},
        });
        assert_eq!(b, want);
        // The original's defaults, and no custom_info without raw_json.
        let empty = Alert::from_queue(b"{}").unwrap().alert;
        let b = body(OutputFormat::Legacy, &empty, 0);
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
        assert_eq!(lam_event(&a, &DEFAULT_SEVERITY_MAP, 2, 0)["external_id"], "e1");
        assert_eq!(body(OutputFormat::Generic, &a, 0)["_event_id"], "e1");
    }
}

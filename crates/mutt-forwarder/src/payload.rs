//! Request bodies for the output formats.

use mutt_core::Alert;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
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

pub fn body(format: OutputFormat, alert: &Alert, now_epoch: i64) -> Value {
    match format {
        OutputFormat::Legacy => legacy(alert, now_epoch),
        OutputFormat::Generic => serde_json::to_value(alert).unwrap_or(Value::Null),
    }
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn legacy(a: &Alert, now_epoch: i64) -> Value {
    json!({
        "signature": or(&a.hostname, "unknown"),
        "source_id": or(&a.hostname, "unknown"),
        "external_id": or(&a.event_id, or(&a.correlation_id, "unknown")),
        "manager": "MUTT",
        "source": "MUTT Alerter",
        "class": or(&a.team_assignment, "Unknown"),
        "agent": concat!("MUTT v", env!("CARGO_PKG_VERSION")),
        "agent_location": "Alerter Service",
        "type": "Alert",
        "severity": moog_severity(&a.severity),
        "description": a.message_body,
        "agent_time": now_epoch,
        "custom_info": a.raw_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_payload_maps_fields() {
        let a = Alert {
            hostname: "router1".into(),
            team_assignment: "NetOps".into(),
            severity: "Warning".into(),
            message_body: "LINK-DOWN on Gi0/1".into(),
            raw_json: json!({"message": "LINK-DOWN on Gi0/1"}),
            correlation_id: "c1".into(),
            event_id: "e1".into(),
            rule_id: Some(3),
            handling: Some("Page_and_ticket".into()),
        };
        let b = body(OutputFormat::Legacy, &a, 1700000000);
        assert_eq!(b["class"], "NetOps");
        assert_eq!(b["severity"], 3);
        assert_eq!(b["external_id"], "e1");
        assert_eq!(b["description"], "LINK-DOWN on Gi0/1");
        assert_eq!(b["agent_time"], 1700000000);
        assert_eq!(b["custom_info"]["message"], "LINK-DOWN on Gi0/1");
        assert_eq!(moog_severity("Critical"), 5);
        assert_eq!(moog_severity("critical"), 3);
    }
}

//! Request bodies for the output formats.

use crate::view::{AlertView, RawJson};
use serde::Serialize;

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

/// Builds the request bodies of one output format (every sink sends or writes the same ones),
/// written straight into the body's bytes: no JSON tree in between. Keys come in sorted order,
/// byte for byte what the JSON objects of earlier versions serialised to.
#[derive(Clone, Debug)]
pub struct Encoder {
    pub format: OutputFormat,
    /// Alerts per `moog-rest-lam` request.
    pub lam_batch_size: usize,
    pub severity_map: [u8; 8],
    pub default_severity: u8,
}

/// Alerts grouped into one request.
pub type Group<'g, 'v> = &'g [&'g AlertView<'v>];

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
    pub fn requests<'g, 'v>(&self, alerts: Group<'g, 'v>, now_epoch: i64) -> Vec<(Group<'g, 'v>, Vec<u8>)> {
        alerts.chunks(self.request_size()).map(|group| (group, self.group_body(group, now_epoch, None))).collect()
    }

    /// The body of one request carrying `group` (one alert unless the format is REST LAM;
    /// a smaller group when a rejected batch is split to find the rejected alerts), with the
    /// REST LAM `auth_token` when given.
    pub fn group_body(&self, group: &[&AlertView<'_>], now_epoch: i64, auth_token: Option<&str>) -> Vec<u8> {
        let size: usize = group.iter().map(|a| size_hint(a)).sum();
        let mut out = Vec::with_capacity(size + 64);
        // Writing into a Vec fails only for a map key that is not a string: none here.
        let _ = match (self.format, group) {
            (OutputFormat::MoogRestLam, _) => serde_json::to_writer(
                &mut out,
                &LamBody { auth_token, events: LamEvents { enc: self, group, now_epoch } },
            ),
            (OutputFormat::Legacy, [one, ..]) => serde_json::to_writer(&mut out, &legacy(one, now_epoch)),
            (OutputFormat::Generic, [one, ..]) => serde_json::to_writer(&mut out, &generic(one)),
            (_, []) => serde_json::to_writer(&mut out, &()),
        };
        out
    }

    /// One REST LAM event for an alert.
    fn lam_event<'v>(&self, a: &'v AlertView<'v>, now_epoch: i64) -> LamEvent<'v> {
        let severity = a
            .raw_json
            .syslog_severity()
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| self.severity_map.get(s).copied())
            .unwrap_or(self.default_severity);
        let host = or(&a.hostname, "unknown");
        LamEvent {
            agent_location: "MUTT Alerter",
            agent_time: now_epoch,
            class: or(&a.team_assignment, "Unknown"),
            custom_info: &a.raw_json,
            description: &a.message_body,
            external_id: &a.event_id,
            manager: "MUTT",
            severity,
            signature: Signature { host, rule: a.rule_id, handling: a.handling.as_deref() },
            source: host,
            source_id: host,
            kind: a.handling.as_deref().unwrap_or("Alert"),
        }
    }
}

/// About the size of an alert's JSON in a body: room reserved up front.
fn size_hint(a: &AlertView<'_>) -> usize {
    let raw = match &a.raw_json {
        RawJson::Verbatim { raw, .. } => raw.get().len(),
        RawJson::Parsed(_) => 512,
    };
    raw + a.message_body.len() + 2 * a.hostname.len() + a.team_assignment.len() + 320
}

/// A REST LAM request body; fields in sorted order (as a JSON object of them serialised).
#[derive(Serialize)]
struct LamBody<'e, 'g, 'v> {
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_token: Option<&'e str>,
    events: LamEvents<'e, 'g, 'v>,
}

struct LamEvents<'e, 'g, 'v> {
    enc: &'e Encoder,
    group: Group<'g, 'v>,
    now_epoch: i64,
}

impl Serialize for LamEvents<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.group.iter().map(|a| self.enc.lam_event(a, self.now_epoch)))
    }
}

/// One REST LAM event; fields in sorted order.
#[derive(Serialize)]
struct LamEvent<'v> {
    agent_location: &'static str,
    agent_time: i64,
    class: &'v str,
    custom_info: &'v RawJson<'v>,
    description: &'v str,
    external_id: &'v str,
    manager: &'static str,
    severity: u8,
    signature: Signature<'v>,
    source: &'v str,
    source_id: &'v str,
    #[serde(rename = "type")]
    kind: &'v str,
}

/// `host::rule-<id>`, or `host::<handling>` (`mutt` without one), written without a String.
struct Signature<'v> {
    host: &'v str,
    rule: Option<i32>,
    handling: Option<&'v str>,
}

impl std::fmt::Display for Signature<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            Some(rule) => write!(f, "{}::rule-{rule}", self.host),
            None => write!(f, "{}::{}", self.host, self.handling.unwrap_or("mutt")),
        }
    }
}

impl Serialize for Signature<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// The original's `agent` value, kept literally: Moogsoft filters and runbooks may match on it.
pub const LEGACY_AGENT: &str = "MUTT v2.3";

/// The original's payload field for field (spec §5.3); fields in sorted order.
#[derive(Serialize)]
struct Legacy<'v> {
    agent: &'static str,
    agent_location: &'static str,
    agent_time: i64,
    class: &'v str,
    /// The original adds `custom_info` only when the alert has `raw_json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_info: Option<&'v RawJson<'v>>,
    description: &'v str,
    external_id: &'v str,
    manager: &'static str,
    severity: u8,
    signature: &'v str,
    source: &'static str,
    source_id: &'v str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The original's payload. `external_id` is the correlation id, as the original sent it (Moog
/// correlation and runbooks find the MUTT log line by it); the other formats send the event id
/// there, the right dedup key when a batch shares one correlation id. An empty field takes the
/// original's default (it never sent empty ones).
fn legacy<'v>(a: &'v AlertView<'v>, now_epoch: i64) -> Legacy<'v> {
    Legacy {
        agent: LEGACY_AGENT,
        agent_location: "Alerter Service",
        agent_time: now_epoch,
        class: or(&a.team_assignment, "Unknown"),
        custom_info: (!a.raw_json.is_null()).then_some(&a.raw_json),
        description: &a.message_body,
        external_id: or(&a.correlation_id, "unknown"),
        manager: "MUTT",
        severity: moog_severity(&a.severity),
        signature: or(&a.hostname, "unknown"),
        source: "MUTT Alerter",
        source_id: or(&a.hostname, "unknown"),
        kind: "Alert",
    }
}

/// The alert message itself (the `generic` format); fields in sorted order.
#[derive(Serialize)]
struct Generic<'v> {
    #[serde(rename = "_correlation_id")]
    correlation_id: &'v str,
    #[serde(rename = "_event_id")]
    event_id: &'v str,
    #[serde(skip_serializing_if = "Option::is_none")]
    handling: Option<&'v str>,
    hostname: &'v str,
    message_body: &'v str,
    raw_json: &'v RawJson<'v>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<i32>,
    severity: &'v str,
    team_assignment: &'v str,
}

fn generic<'v>(a: &'v AlertView<'v>) -> Generic<'v> {
    Generic {
        correlation_id: &a.correlation_id,
        event_id: &a.event_id,
        handling: a.handling.as_deref(),
        hostname: &a.hostname,
        message_body: &a.message_body,
        raw_json: &a.raw_json,
        rule_id: a.rule_id,
        severity: &a.severity,
        team_assignment: &a.team_assignment,
    }
}

#[cfg(test)]
mod tests;

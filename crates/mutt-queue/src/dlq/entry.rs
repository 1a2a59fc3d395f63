//! One dead letter: what it says about itself, and its replayed or parked form.
//!
//! Dead letters written by muttd carry `_dlq_reason`, `_dlq_error` and `failed_at`; a message
//! that was not a JSON object is wrapped as `{"raw": "<text>", …}`. Entries left by the
//! original MUTT are the bare message, perhaps with `_retry_count`, `_moog_retry_count` or
//! `shedding_reason` (spec §3.2); both kinds are read.

use super::Dlq;
use crate::QueueId;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields a dead-lettering, shedding or parking step added; a replay removes them all.
pub const ANNOTATIONS: &[&str] =
    &["_dlq_reason", "_dlq_error", "failed_at", "shedding_reason", "_parked_from", "_parked_reason", "_parked_at"];

/// Per-life attempt counters: a replay starts a new life, so it resets them
/// (spec §8.3: only together with `_replay_count`).
pub const RETRY_COUNTERS: &[&str] = &["_retry_count", "_moog_retry_count"];

pub const REPLAY_COUNT: &str = "_replay_count";

/// What the toolbox reads from one dead letter (serialisable for the CLI's JSON and the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// A short, stable name of the entry's exact bytes (the same bytes give the same id).
    pub id: String,
    pub dlq: Dlq,
    /// `_dlq_reason`; `shed` for the original's `shedding_reason`; `retries_exhausted` for
    /// the original's bare entries with a retry counter.
    pub reason: Option<String>,
    /// `_dlq_error` (or the original's shedding reason text).
    pub error: Option<String>,
    /// When it was dead-lettered (`failed_at`, RFC 3339), as written.
    pub failed_at: Option<String>,
    /// Seconds since `failed_at` (or, lacking it, the event's `timestamp`, as the original's
    /// retention job read it).
    pub age_secs: Option<u64>,
    pub hostname: Option<String>,
    pub event_id: Option<String>,
    pub correlation_id: Option<String>,
    pub retry_count: Option<u64>,
    pub moog_retry_count: Option<u64>,
    /// Times an operator or the remediation role replayed it.
    pub replay_count: u64,
    /// For a parked entry: the DLQ it came from.
    pub parked_from: Option<Dlq>,
    /// The queue a replay sends it to: `ingest` or `alert`.
    pub returns_to: String,
    /// False when the message inside is not a JSON object (a replay could only fail again).
    pub replayable: bool,
    pub bytes: usize,
}

/// A dead letter with its whole content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DlqEntry {
    #[serde(flatten)]
    pub info: EntryInfo,
    /// The entry as stored (a JSON value; text when it is not JSON).
    pub message: Value,
}

/// The short id of an entry's bytes: 16 hex digits of a name-based (SHA-1) UUID.
pub fn entry_id(body: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, body).simple().to_string()[..16].to_owned()
}

fn queue_label(q: QueueId) -> &'static str {
    match q {
        QueueId::Ingest => "ingest",
        QueueId::Alert => "alert",
    }
}

fn parse_object(raw: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn count(m: &Map<String, Value>, key: &str) -> Option<u64> {
    let v = m.get(key)?;
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// The message a dead letter holds, without its annotations: the entry itself, or for a
/// wrapped entry (`raw` and annotations only) the wrapped text if it is a JSON object.
/// `None` when there is no JSON object to send again.
pub fn inner_message(entry: &Map<String, Value>) -> Option<Map<String, Value>> {
    let wrapped = entry.contains_key("raw") && entry.keys().all(|k| k == "raw" || ANNOTATIONS.contains(&k.as_str()));
    if wrapped {
        let raw = entry.get("raw")?.as_str()?;
        return parse_object(raw.as_bytes());
    }
    let mut m = entry.clone();
    for k in ANNOTATIONS {
        m.remove(*k);
    }
    Some(m)
}

/// Whether a message looks like an alert (the alert queue's shape) rather than an event.
fn is_alert(m: &Map<String, Value>) -> bool {
    m.contains_key("message_body") && m.contains_key("raw_json")
}

impl DlqEntry {
    /// Reads a stored entry of `dlq`; `now` dates its age.
    pub fn read(dlq: Dlq, body: &[u8], now: DateTime<Utc>) -> Self {
        let id = entry_id(body);
        let Some(object) = parse_object(body) else {
            let message = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => Value::from(String::from_utf8_lossy(body).into_owned()),
            };
            let info = EntryInfo {
                id,
                dlq,
                reason: Some("invalid_json".into()),
                error: None,
                failed_at: None,
                age_secs: None,
                hostname: None,
                event_id: None,
                correlation_id: None,
                retry_count: None,
                moog_retry_count: None,
                replay_count: 0,
                parked_from: None,
                returns_to: queue_label(dlq.home()).into(),
                replayable: false,
                bytes: body.len(),
            };
            return Self { info, message };
        };
        let inner = inner_message(&object);
        let about = inner.as_ref().unwrap_or(&object);
        let parked_from = text(&object, "_parked_from").and_then(|s| s.parse().ok());
        let info = EntryInfo {
            id,
            dlq,
            reason: reason_of(&object),
            error: text(&object, "_dlq_error").or_else(|| text(&object, "shedding_reason")),
            failed_at: text(&object, "failed_at"),
            age_secs: dated(&object, about).map(|t| (now - t).num_seconds().max(0) as u64),
            hostname: text(about, "hostname"),
            event_id: text(about, "_event_id"),
            correlation_id: text(about, "_correlation_id"),
            retry_count: count(about, "_retry_count"),
            moog_retry_count: count(about, "_moog_retry_count"),
            replay_count: count(about, REPLAY_COUNT).unwrap_or(0),
            parked_from,
            returns_to: queue_label(home_of(dlq, parked_from, about)).into(),
            replayable: inner.is_some(),
            bytes: body.len(),
        };
        Self { info, message: Value::Object(object) }
    }

    /// The queue a replay sends this entry to.
    pub fn home(&self) -> QueueId {
        if self.info.returns_to == "alert" { QueueId::Alert } else { QueueId::Ingest }
    }

    /// The replayed message: annotations and attempt counters removed, `_replay_count` one
    /// higher. `None` when the entry holds no JSON object.
    pub fn replayed(&self) -> Option<Vec<u8>> {
        let mut m = inner_message(self.message.as_object()?)?;
        for k in RETRY_COUNTERS {
            m.remove(*k);
        }
        m.insert(REPLAY_COUNT.into(), Value::from(self.info.replay_count + 1));
        serde_json::to_vec(&m).ok()
    }

    /// The parked form for `mutt:dlq:dead`: the entry as it is, plus where it came from, why
    /// and when it was parked.
    pub fn parked(&self, reason: &str, now: DateTime<Utc>) -> Vec<u8> {
        let mut m = match &self.message {
            Value::Object(m) => m.clone(),
            other => {
                let text = match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                Map::from_iter([("raw".to_owned(), Value::from(text))])
            }
        };
        if !m.contains_key("_parked_from") {
            m.insert("_parked_from".into(), Value::from(self.info.dlq.as_str()));
        }
        m.insert("_parked_reason".into(), Value::from(reason));
        m.insert("_parked_at".into(), Value::from(now.to_rfc3339_opts(SecondsFormat::Millis, true)));
        serde_json::to_vec(&m).unwrap_or_default()
    }
}

/// `_dlq_reason`, or what the original's bare entries imply.
fn reason_of(object: &Map<String, Value>) -> Option<String> {
    text(object, "_dlq_reason").or_else(|| object.contains_key("shedding_reason").then(|| "shed".to_owned())).or_else(
        || {
            (object.contains_key("_retry_count") || object.contains_key("_moog_retry_count"))
                .then(|| "retries_exhausted".to_owned())
        },
    )
}

/// When the entry failed: `failed_at`, else the message's `timestamp` (the original's
/// retention job did the same, its entries having no `failed_at`).
fn dated(object: &Map<String, Value>, inner: &Map<String, Value>) -> Option<DateTime<Utc>> {
    text(object, "failed_at")
        .and_then(|s| parse_time(&s))
        .or_else(|| text(inner, "timestamp").and_then(|s| parse_time(&s)))
}

fn home_of(dlq: Dlq, parked_from: Option<Dlq>, inner: &Map<String, Value>) -> QueueId {
    match (dlq, parked_from) {
        (Dlq::Dead, Some(from)) if from != Dlq::Dead => from.home(),
        (Dlq::Dead, _) if is_alert(inner) => QueueId::Alert,
        (d, _) => d.home(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-10T00:00:00Z").unwrap()
    }

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_muttd_dead_letter_is_read_and_replayed_without_its_annotations() {
        let body =
            bytes(json!({"hostname": "r1", "message": "m", "_retry_count": 3, "_dlq_reason": "retries_exhausted",
            "_dlq_error": "audit write failed", "failed_at": "2026-01-09T00:00:00.000Z", "_event_id": "e1"}));
        let e = DlqEntry::read(Dlq::Alerter, &body, now());
        assert_eq!(e.info.reason.as_deref(), Some("retries_exhausted"));
        assert_eq!(e.info.age_secs, Some(86_400));
        assert_eq!(e.info.hostname.as_deref(), Some("r1"));
        assert_eq!((e.info.retry_count, e.info.replay_count), (Some(3), 0));
        assert_eq!(e.home(), QueueId::Ingest);
        let r: Value = serde_json::from_slice(&e.replayed().unwrap()).unwrap();
        assert_eq!(r, json!({"hostname": "r1", "message": "m", "_event_id": "e1", "_replay_count": 1}));
        assert_eq!(e.info.id, entry_id(&body));
        assert_eq!(e.info.id.len(), 16);
    }

    #[test]
    fn the_originals_bare_entries_are_understood() {
        let shed = bytes(
            json!({"hostname": "h", "timestamp": "2026-01-09T12:00:00Z", "shedding_reason": "queue_depth_exceeded:5>2"}),
        );
        let e = DlqEntry::read(Dlq::Alerter, &shed, now());
        assert_eq!(e.info.reason.as_deref(), Some("shed"));
        assert_eq!(e.info.age_secs, Some(43_200), "dated by the event's timestamp");
        let r: Value = serde_json::from_slice(&e.replayed().unwrap()).unwrap();
        assert!(r.get("shedding_reason").is_none() && r["_replay_count"] == 1);
        let poison = bytes(json!({"hostname": "h", "_retry_count": 4, "_replay_count": 2}));
        let e = DlqEntry::read(Dlq::Alerter, &poison, now());
        assert_eq!((e.info.reason.as_deref(), e.info.replay_count), (Some("retries_exhausted"), 2));
        let r: Value = serde_json::from_slice(&e.replayed().unwrap()).unwrap();
        assert_eq!(r, json!({"hostname": "h", "_replay_count": 3}));
    }

    #[test]
    fn wrapped_entries_replay_their_inner_message_or_not_at_all() {
        let crashed = bytes(
            json!({"raw": "{\"hostname\":\"x\",\"n\":1}", "_dlq_reason": "worker_crashed", "failed_at": "2026-01-09T23:00:00Z"}),
        );
        let e = DlqEntry::read(Dlq::Alerter, &crashed, now());
        assert!(e.info.replayable);
        assert_eq!(e.info.hostname.as_deref(), Some("x"));
        let r: Value = serde_json::from_slice(&e.replayed().unwrap()).unwrap();
        assert_eq!(r, json!({"hostname": "x", "n": 1, "_replay_count": 1}));
        let junk = bytes(json!({"raw": "not json", "_dlq_reason": "invalid_json"}));
        let e = DlqEntry::read(Dlq::Alerter, &junk, now());
        assert!(!e.info.replayable && e.replayed().is_none());
        let e = DlqEntry::read(Dlq::Alerter, b"\xff\xfe", now());
        assert_eq!(e.info.reason.as_deref(), Some("invalid_json"));
        assert!(!e.info.replayable);
        let parked: Value = serde_json::from_slice(&e.parked("manual", now())).unwrap();
        assert_eq!(parked["_parked_from"], "alerter");
        assert!(parked["raw"].is_string());
    }

    #[test]
    fn parked_entries_return_where_they_came_from() {
        let alert = bytes(json!({"hostname": "h", "message_body": "m", "raw_json": {}, "_moog_retry_count": 6,
            "_dlq_reason": "retries_exhausted"}));
        let moog = DlqEntry::read(Dlq::Moog, &alert, now());
        assert_eq!(moog.home(), QueueId::Alert);
        let parked = moog.parked("poison", now());
        let dead = DlqEntry::read(Dlq::Dead, &parked, now());
        assert_eq!((dead.info.parked_from, dead.home()), (Some(Dlq::Moog), QueueId::Alert));
        let r: Value = serde_json::from_slice(&dead.replayed().unwrap()).unwrap();
        assert!(r.get("_parked_from").is_none() && r.get("_moog_retry_count").is_none() && r["_replay_count"] == 1);
        // The original's dead entries carry no origin: an alert's shape says where it goes.
        let bare = DlqEntry::read(Dlq::Dead, &alert, now());
        assert_eq!(bare.home(), QueueId::Alert);
        let event = DlqEntry::read(Dlq::Dead, br#"{"hostname":"h","message":"m"}"#, now());
        assert_eq!(event.home(), QueueId::Ingest);
    }
}

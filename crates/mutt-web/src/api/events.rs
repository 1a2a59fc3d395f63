//! `GET /api/v2/events/{event_id}`: one event's audit row and what became of its alert, from
//! what the backends record:
//! - the audit row (`event_audit_log`): how the alerter handled it, whether it queued an alert;
//! - the forwarders' delivered ids (`Coordination::delivered_until`, kept `[forwarder]
//!   dedup_ttl_secs`, 1 h): delivered, and when (the record's expiry minus that time);
//! - the three DLQs: dead-lettered (alerter or forwarder) or parked, with the reason and error.
//!
//! Nothing records an alert while it waits in the alert queue or for a retry: an alert that is
//! neither delivered (within the dedup window) nor dead-lettered is reported `pending`, or
//! `unknown` once the event is older than the window.

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::ApiPath;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use mutt_queue::dlq::{DeadLetterStore, Dlq, DlqEntry, End};
use mutt_store::manage::{EventAuditFilter, EventAuditRow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Entries read per DLQ page, and at most per DLQ (newest first): a DLQ deeper than this is
/// searched in part, which the answer says.
const PAGE: u64 = 500;
const MAX_SEARCHED: u64 = 20_000;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/events/{event_id}", axum::routing::get(event))
}

#[derive(Deserialize)]
pub(crate) struct EventPath {
    pub(crate) event_id: String,
}

#[utoipa::path(get, path = "/api/v2/events/{event_id}", tag = "audit",
    params(("event_id" = String, Path, description = "The event's _event_id (UUID)")),
    responses((status = 200, description = "audit (the event's audit row, or null when the alerter dead-lettered it) and delivery: state (delivered, dead_lettered, parked, pending, not_forwarded, unknown), delivered_at, dead_letters, dlq_search, detail", body = AnyObject),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn event(
    State(state): State<Arc<WebState>>,
    ApiPath(EventPath { event_id }): ApiPath<EventPath>,
) -> Result<Json<Value>, ApiError> {
    let id = mutt_core::EventId::parse(&event_id)
        .ok_or_else(|| ApiError::invalid_field("event_id", "event_id is not a UUID"))?
        .to_string();
    let filter = EventAuditFilter { event_id: Some(id.clone()), limit: 1, ..EventAuditFilter::default() };
    let audit = state.store.search_event_audit(&filter).await?.rows.into_iter().next();
    let until = state.coordination.delivered_until(std::slice::from_ref(&id)).await?.into_iter().next().flatten();
    let delivered_at = until.and_then(|ms| delivered_at(ms, state.config.dedup_ttl));
    let (dead_letters, search) = find_dead_letters(state.queue.dead_letters().as_ref(), &id).await?;
    if audit.is_none() && until.is_none() && dead_letters.is_empty() {
        return Err(ApiError::not_found("no audit row, delivery record or dead letter for this event"));
    }
    let (outcome, detail) = outcome(audit.as_ref(), until.is_some(), &dead_letters, state.config.dedup_ttl);
    Ok(Json(json!({
        "event_id": id,
        "audit": audit,
        "delivery": {
            "state": outcome,
            "delivered_at": delivered_at,
            "dead_letters": dead_letters,
            "dlq_search": search,
            "detail": detail,
        },
    })))
}

/// The delivery time of a record expiring at `until_ms` that was kept for `ttl`.
fn delivered_at(until_ms: i64, ttl: std::time::Duration) -> Option<String> {
    let ttl_ms = i64::try_from(ttl.as_millis()).ok()?;
    let t = DateTime::<Utc>::from_timestamp_millis(until_ms.checked_sub(ttl_ms)?)?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The event's entries in the three DLQs (newest first, at most [`MAX_SEARCHED`] each), and
/// per DLQ how many entries were read and whether that was all of it.
async fn find_dead_letters(store: &dyn DeadLetterStore, id: &str) -> Result<(Vec<Value>, Value), ApiError> {
    let mut found = Vec::new();
    let mut search = serde_json::Map::new();
    for dlq in Dlq::ALL {
        let (mut offset, now) = (0, Utc::now());
        let complete = loop {
            let page = store.dlq_range(dlq, End::Newest, offset, PAGE).await?;
            offset += page.len() as u64;
            for raw in &page {
                let entry = DlqEntry::read(dlq, &raw.body, now);
                if entry.info.event_id.as_deref() == Some(id) {
                    found.push(json!({
                        "dlq": dlq.as_str(),
                        "id": entry.info.id,
                        "reason": entry.info.reason,
                        "error": entry.info.error,
                        "failed_at": entry.info.failed_at,
                        "retry_count": entry.info.retry_count.or(entry.info.moog_retry_count),
                        "parked_from": entry.info.parked_from.map(Dlq::as_str),
                    }));
                }
            }
            if (page.len() as u64) < PAGE {
                break true;
            }
            if offset >= MAX_SEARCHED {
                break false;
            }
        };
        search.insert(dlq.as_str().to_owned(), json!({"searched": offset, "complete": complete}));
    }
    Ok((found, Value::Object(search)))
}

/// The delivery state and a sentence saying what it rests on.
fn outcome(
    audit: Option<&EventAuditRow>,
    delivered: bool,
    dead_letters: &[Value],
    dedup_ttl: std::time::Duration,
) -> (&'static str, String) {
    if delivered {
        return ("delivered", "a forwarder recorded the alert as delivered to the receiver".into());
    }
    let in_dlq = |name: &str| dead_letters.iter().any(|d| d["dlq"] == name);
    if in_dlq("moog") {
        return ("dead_lettered", "the forwarder gave up on the alert: it is in the moog DLQ".into());
    }
    if in_dlq("alerter") {
        return ("dead_lettered", "the alerter could not process the event: it is in the alerter DLQ".into());
    }
    if in_dlq("dead") {
        return ("parked", "the message was parked in the dead DLQ (not retried)".into());
    }
    let Some(row) = audit else {
        return ("unknown", "no record of this event besides what is shown".into());
    };
    if let Some(id) = row.silenced_by {
        return ("not_forwarded", format!("held back by silence {id}: audited, no alert was sent"));
    }
    if row.flap_suppressed {
        return ("not_forwarded", "held back by its rule's flap limit: counted in the window's summary alert".into());
    }
    if !row.forwarded_to_moog {
        return ("not_forwarded", format!("handled as {:?}: no alert was sent", row.handling_decision));
    }
    let age = DateTime::parse_from_rfc3339(&row.event_timestamp).map(|t| Utc::now() - t.with_timezone(&Utc)).ok();
    let window = chrono::Duration::from_std(dedup_ttl).unwrap_or(chrono::Duration::MAX);
    if age.is_some_and(|a| a > window) {
        let detail = format!(
            "an alert was queued; delivered ids are kept {} s, and this event is older: delivered, or \
             still waiting, this record cannot tell",
            dedup_ttl.as_secs()
        );
        return ("unknown", detail);
    }
    ("pending", "an alert was queued and is not delivered yet: in the alert queue or waiting for a retry".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(forwarded: bool, minutes_ago: i64) -> EventAuditRow {
        EventAuditRow {
            id: 1,
            event_id: "e".into(),
            event_timestamp: (Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
            hostname: "h".into(),
            matched_rule_id: 1,
            handling_decision: "Page_and_ticket".into(),
            forwarded_to_moog: forwarded,
            raw_message: None,
            flap_suppressed: false,
            silenced_by: None,
        }
    }

    #[test]
    fn states_from_the_records() {
        let hour = Duration::from_secs(3600);
        assert_eq!(outcome(Some(&row(true, 1)), true, &[], hour).0, "delivered");
        assert_eq!(outcome(Some(&row(true, 1)), false, &[json!({"dlq": "moog"})], hour).0, "dead_lettered");
        assert_eq!(outcome(None, false, &[json!({"dlq": "dead"})], hour).0, "parked");
        assert_eq!(outcome(Some(&row(false, 1)), false, &[], hour).0, "not_forwarded");
        let held = EventAuditRow { flap_suppressed: true, ..row(false, 1) };
        assert!(outcome(Some(&held), false, &[], hour).1.contains("flap limit"));
        assert_eq!(outcome(Some(&row(true, 1)), false, &[], hour).0, "pending");
        assert_eq!(outcome(Some(&row(true, 90)), false, &[], hour).0, "unknown");
    }

    #[test]
    fn delivery_time_is_the_expiry_less_the_ttl() {
        let t = delivered_at(1_700_003_600_000, Duration::from_secs(3600));
        assert_eq!(t.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    }
}

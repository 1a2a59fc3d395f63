//! `/config`: every key of the dynamic-configuration catalogue with its value in force, default,
//! range and what it does; a form per key (set, or reset to the default) validated by the
//! catalogue as `PUT /api/v2/config/{key}` is, the error shown next to the field; and
//! `/config/history`: the config-audit rows of `dynamic_config` with old and new value side by
//! side. Every change writes the same config-audit row as the API, with the session's key.

use super::audit::UiError;
use super::session::Session;
use super::{Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use crate::api::paging::PageParams;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mutt_core::config_catalogue::{self as catalogue, ConfigValueError, Entry};
use mutt_store::ConfigChange;
use mutt_store::manage::ConfigAuditFilter;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/config", get(list))
        .route("/config/history", get(history))
        .route("/config/{key}", post(set))
        .route("/config/{key}/reset", post(reset))
}

/// One row of the page.
pub(super) struct KeyRow {
    pub entry: Entry,
    pub description: String,
    /// The value in the form: what was typed when it was refused, else the value in force.
    pub input: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "config.html")]
pub(super) struct ConfigPage {
    pub page: Page,
    pub rows: Vec<KeyRow>,
}

/// What a key does, in a sentence (the catalogue has the mechanics, this the meaning).
fn meaning(key: &str) -> &'static str {
    match key {
        "max_ingest_queue_size" => "Ingest queue depth above which the ingestor refuses events (0: refuse all).",
        "ingest_max_rate" => "Events the ingestors accept per rate window, all together.",
        "ingest_rate_window" => "The window of ingest_max_rate.",
        "cache_reload_interval" => "How often an alerter reloads rules, hosts and teams at the latest.",
        "unhandled_threshold" => "Unhandled events of one host and message before a meta-alert is sent.",
        "unhandled_expiry_seconds" => "The counting window of unhandled events, and the pause after a meta-alert.",
        "alerter_queue_warn_threshold" => "Ingest queue depth at which the alerter warns (below the shed threshold).",
        "alerter_queue_shed_threshold" => "Ingest queue depth at which the alerter sheds load.",
        "alerter_shed_mode" => "What shedding does: dead-letter events (dlq) or wait (defer).",
        "alerter_defer_sleep_ms" => "How long the alerter waits per batch when deferring.",
        "moog_rate_limit" => "Alerts sent to Moogsoft per rate period, all forwarders together.",
        "moog_rate_period" => "The period of moog_rate_limit.",
        "circuit_breaker_threshold" => "Consecutive delivery failures that open the circuit breaker.",
        "circuit_breaker_timeout" => "How long the breaker stays open before one probe.",
        "remediation_interval" => "How often the remediation role looks at the DLQs.",
        "remediation_batch_size" => "Dead letters the remediation role replays per cycle.",
        "max_poison_retries" => "Replays after which a dead letter is parked as poison.",
        "event_retention_days" => "Days event-audit rows are kept before archiving.",
        "event_archive_retention_years" => "Years archived event-audit rows are kept.",
        "config_audit_retention_days" => "Days config-audit rows are kept.",
        "retention_enforcement_enabled" => "Whether the retention job deletes anything.",
        k if k.starts_with("slo_") => "A threshold of the SLO report.",
        _ => "",
    }
}

/// What the key does, who reads it and when, and its unit.
fn describe(e: &Entry) -> String {
    let Some(setting) = catalogue::lookup(&e.key) else {
        return "Not a catalogue key: no role reads it.".into();
    };
    let unit = setting.unit.suffix();
    let unit = if unit.is_empty() { String::new() } else { format!(" (unit: {unit})") };
    let (reader, when) = (setting.reader.as_str(), setting.read_when);
    format!("{} Read by the {reader}: {when}{unit}.", meaning(&e.key)).trim().to_owned()
}

/// The stored values and the listing (value in force, default, source) of every key.
async fn rows(state: &WebState) -> Result<Vec<KeyRow>, UiError> {
    let stored: BTreeMap<String, String> = state.coordination.config_entries().await?.into_iter().collect();
    let entries = catalogue::listing(&stored, |_| None);
    Ok(entries
        .into_iter()
        .map(|entry| KeyRow { description: describe(&entry), input: entry.value.clone(), error: None, entry })
        .collect())
}

async fn list(State(state): State<Arc<WebState>>, session: Session) -> Result<Response, UiError> {
    Ok(render(&ConfigPage { page: session.page("Configuration", "/config"), rows: rows(&state).await? }))
}

#[derive(Deserialize)]
struct SetForm {
    value: String,
    #[serde(default)]
    reason: String,
}

/// Who made a console change: the session's key (as the API records it), the request's
/// correlation id.
pub(super) fn caller_of(session: &Session, caller: Caller) -> Caller {
    Caller { changed_by: session.changed_by(), ..caller }
}

fn reason_of(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|r| !r.is_empty())
}

async fn set(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(key): Path<String>,
    Form(form): Form<SetForm>,
) -> Result<Response, UiError> {
    let stored = crate::api::config::stored_catalogue_values(&state).await?;
    let value = match catalogue::validate(&key, &form.value, |k| stored.get(k).cloned()) {
        Ok(v) => v,
        Err(e) => return refused(&state, &session, &key, &form.value, &e).await,
    };
    let old = state.coordination.set_config_value(&key, &value).await?;
    let caller = caller_of(&session, caller);
    crate::api::config::record(&state, &caller, &key, old.as_deref(), Some(&value), reason_of(&form.reason)).await;
    let was = old.unwrap_or_else(|| "unset".into());
    session.flash_ok(format!("{key}: {was} → {value}"));
    Ok(Redirect::to(&format!("/config#key-{key}")).into_response())
}

/// The page again with the typed value and the error next to its field (422).
async fn refused(
    state: &WebState,
    session: &Session,
    key: &str,
    typed: &str,
    e: &ConfigValueError,
) -> Result<Response, UiError> {
    let mut rows = rows(state).await?;
    match rows.iter_mut().find(|r| r.entry.key == key) {
        Some(r) => {
            r.input = typed.to_owned();
            r.error = Some(e.to_string());
        }
        None => session.flash_error(e.to_string()),
    }
    let page = ConfigPage { page: session.page("Configuration", "/config"), rows };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    reason: String,
}

async fn reset(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(key): Path<String>,
    Form(form): Form<ResetForm>,
) -> Result<Response, UiError> {
    match state.coordination.delete_config_value(&key).await? {
        Some(old) => {
            let caller = caller_of(&session, caller);
            crate::api::config::record(&state, &caller, &key, Some(&old), None, reason_of(&form.reason)).await;
            session.flash_ok(format!("{key}: {old} → default"));
        }
        None => session.flash_error(format!("{key} is not set: it has its default already")),
    }
    Ok(Redirect::to(&format!("/config#key-{key}")).into_response())
}

/// One change, old and new value side by side.
pub(super) struct Change {
    pub id: i64,
    pub changed_at: String,
    pub changed_by: String,
    pub operation: String,
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "config_history.html")]
pub(super) struct HistoryPage {
    pub page: Page,
    pub key: String,
    pub changes: Vec<Change>,
    pub page_no: u64,
    pub pages: u64,
    pub total: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryQuery {
    key: String,
    page: Option<u64>,
}

fn value_of(v: Option<&serde_json::Value>) -> Option<String> {
    v.map(|v| match v.get("value") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => v.to_string(),
    })
}

async fn history(
    State(state): State<Arc<WebState>>,
    session: Session,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, UiError> {
    let paging = PageParams { page: q.page, limit: None }.paging()?;
    let key = q.key.trim().to_owned();
    let filter = ConfigAuditFilter {
        table_name: Some("dynamic_config".into()),
        record_id: (!key.is_empty()).then(|| ConfigChange::dynamic_config_record_id(&key)),
        offset: paging.offset(),
        limit: paging.limit,
        ..ConfigAuditFilter::default()
    };
    let found = state.store.search_config_audit(&filter).await?;
    let changes = found
        .rows
        .into_iter()
        .map(|r| {
            let c = r.change;
            let named = c.new_values.as_ref().or(c.old_values.as_ref());
            let key = named.and_then(|v| v.get("key")).and_then(|k| k.as_str()).unwrap_or("?").to_owned();
            Change {
                id: r.id,
                changed_at: r.changed_at,
                changed_by: c.changed_by,
                operation: c.operation,
                key,
                old: value_of(c.old_values.as_ref()),
                new: value_of(c.new_values.as_ref()),
                reason: c.reason.unwrap_or_default(),
            }
        })
        .collect();
    let pages = found.total.div_ceil(u64::from(paging.limit));
    Ok(render(&HistoryPage {
        page: session.page("Configuration history", "/config"),
        key,
        changes,
        page_no: paging.page,
        pages,
        total: found.total,
    }))
}

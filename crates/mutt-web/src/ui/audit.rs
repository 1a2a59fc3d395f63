//! `/audit`: the event-audit search (time range, host, rule, decision, forwarded), newest
//! event first, and `/audit/{event_id}`: one event's audit row, raw message and delivery
//! outcome. The same store search as `GET /api/v2/audit-logs` and the same function as
//! `GET /api/v2/events/{id}`.
//!
//! Pages are stable: ties are broken by id, and when no end is given the first page pins
//! `end_date` to the moment of the search, so events arriving meanwhile do not shift the
//! following pages.

use super::session::Session;
use super::{Page, render};
use crate::WebState;
use crate::api::paging::{PageParams, time_range};
use crate::error::ApiError;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mutt_store::manage::{EventAuditFilter, EventAuditRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Matches counted exactly; beyond, the page says "10000 or more" (an exact count of a big
/// audit log reads every match, hundreds of milliseconds on PostgreSQL for a million rows).
const COUNT_CAP: u64 = 10_000;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/audit", get(search)).route("/audit/{event_id}", get(event))
}

/// A failure of an operations page (audit, configuration, dead letters, unhandled): the
/// API's error with its status (a store or queue that cannot answer is a 503), shown as a
/// short page. The message never holds a secret (the API's errors do not).
#[derive(Debug)]
pub(super) struct UiError(pub ApiError);

impl UiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self(ApiError::not_found(message))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(ApiError::bad_request(message))
    }

    pub fn message(&self) -> &str {
        self.0.message()
    }
}

impl<E: Into<ApiError>> From<E> for UiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::warn!(error = %self.0.message(), "console page failed");
        }
        let text = html_escape(self.0.message());
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{status}</title>\
             <link rel=\"stylesheet\" href=\"/ui/assets/mutt.css\"><main id=\"main\"><h1>{status}</h1>\
             <p class=\"flash error\" role=\"alert\">{text}</p><p><a href=\"/\">Overview</a></p></main>"
        );
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The search form as typed; every field is text so that an empty box is "any" and a bad
/// value is an error next to its field, not a rejected request.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct SearchForm {
    pub start_date: String,
    pub end_date: String,
    pub hostname: String,
    pub rule_id: String,
    pub decision: String,
    /// `""` (any), `true` or `false`.
    pub forwarded: String,
    pub page: String,
    pub limit: String,
}

/// A problem with one field of a form.
#[derive(Clone, Debug)]
pub(super) struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(super) struct AuditPage {
    pub page: Page,
    pub form: SearchForm,
    pub error: Option<FieldError>,
    pub rows: Vec<EventAuditRow>,
    pub total: u64,
    /// The count stopped at its cap: `total` or more match.
    pub capped: bool,
    pub page_no: u64,
    pub pages: u64,
    /// Query strings of the neighbouring pages (the pinned end included).
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl AuditPage {
    /// The error message of `field`, for the template.
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|e| e.field == field).map(|e| e.message.as_str())
    }
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The store's filter from the form, or the field at fault.
fn filter_of(form: &SearchForm) -> Result<(EventAuditFilter, crate::api::paging::Paging), FieldError> {
    let bad = |field: &str, message: String| FieldError { field: field.into(), message };
    let number = |field: &str, text: &str| -> Result<Option<u64>, FieldError> {
        non_empty(text)
            .map(|t| t.parse::<u64>().map_err(|_| bad(field, format!("{t:?} is not a whole number"))))
            .transpose()
    };
    let (page, limit) = (number("page", &form.page)?, number("limit", &form.limit)?);
    let paging =
        PageParams { page, limit }.paging().map_err(|e| bad(e.field().unwrap_or("page"), e.message().to_owned()))?;
    let (start, end) = time_range(Some(&form.start_date), Some(&form.end_date))
        .map_err(|e| bad(e.field().unwrap_or("start_date"), e.message().to_owned()))?;
    let rule_id = non_empty(&form.rule_id)
        .map(|t| t.parse::<i32>().map_err(|_| bad("rule_id", format!("{t:?} is not a rule id"))))
        .transpose()?;
    let forwarded = match form.forwarded.trim() {
        "" => None,
        "true" => Some(true),
        "false" => Some(false),
        other => return Err(bad("forwarded", format!("{other:?} is not true or false"))),
    };
    let filter = EventAuditFilter {
        event_id: None,
        hostname: non_empty(&form.hostname),
        rule_id,
        decision: non_empty(&form.decision),
        forwarded,
        start,
        end,
        // Enough to tell whether a next page exists; exact up to COUNT_CAP.
        count_limit: Some(COUNT_CAP.max(paging.offset() + u64::from(paging.limit) + 1)),
        offset: paging.offset(),
        limit: paging.limit,
    };
    Ok((filter, paging))
}

/// The query string of `form` at page `page`.
fn query_of(form: &SearchForm, page: u64) -> String {
    let mut f = form.clone();
    f.page = page.to_string();
    serde_urlencoded::to_string(&f).unwrap_or_default()
}

async fn search(
    State(state): State<Arc<WebState>>,
    session: Session,
    Query(mut form): Query<SearchForm>,
) -> Result<Response, UiError> {
    let mut view = AuditPage {
        page: session.page("Event audit", "/audit"),
        form: form.clone(),
        error: None,
        rows: Vec::new(),
        total: 0,
        capped: false,
        page_no: 1,
        pages: 0,
        prev: None,
        next: None,
    };
    let (filter, paging) = match filter_of(&form) {
        Ok(f) => f,
        Err(e) => {
            view.error = Some(e);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&view)).into_response());
        }
    };
    // Pin the end so that the next pages show what this one continued from.
    if form.end_date.trim().is_empty() {
        form.end_date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    let found = state.store.search_event_audit(&filter).await?;
    let pages = found.total.div_ceil(u64::from(paging.limit));
    view.prev = (paging.page > 1).then(|| query_of(&form, paging.page - 1));
    view.next = (paging.page < pages).then(|| query_of(&form, paging.page + 1));
    view.capped = filter.count_limit.is_some_and(|cap| found.total >= cap);
    view.rows = found.rows;
    view.total = found.total;
    view.page_no = paging.page;
    view.pages = pages;
    Ok(render(&view))
}

/// One event's audit row as the page shows it (the API's JSON read back).
#[derive(Default)]
pub(super) struct EventView {
    pub id: String,
    pub event_id: String,
    pub event_timestamp: String,
    pub hostname: String,
    pub matched_rule_id: String,
    pub handling_decision: String,
    pub forwarded_to_moog: bool,
}

#[derive(Template)]
#[template(path = "event.html")]
pub(super) struct EventPage {
    pub page: Page,
    pub event_id: String,
    /// `None` when the alerter dead-lettered the event (no audit row).
    pub row: Option<EventView>,
    /// The raw message, pretty-printed when it is JSON.
    pub raw: String,
    /// The delivery state (`delivered`, `dead_lettered`, ...), its detail, and the whole
    /// `delivery` member as `GET /api/v2/events/{id}` reports it (pretty JSON).
    pub state: String,
    pub detail: String,
    pub delivery: String,
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn view_of(audit: &serde_json::Value) -> Option<EventView> {
    audit.is_object().then(|| EventView {
        id: text(audit, "id"),
        event_id: text(audit, "event_id"),
        event_timestamp: text(audit, "event_timestamp"),
        hostname: text(audit, "hostname"),
        matched_rule_id: text(audit, "matched_rule_id"),
        handling_decision: text(audit, "handling_decision"),
        forwarded_to_moog: audit.get("forwarded_to_moog").and_then(|v| v.as_bool()).unwrap_or(false),
    })
}

/// The answer of `GET /api/v2/events/{id}` (the same function), as a page.
async fn event(
    State(state): State<Arc<WebState>>,
    session: Session,
    Path(event_id): Path<String>,
) -> Result<Response, UiError> {
    use crate::api::events::{EventPath, event as api_event};
    let path = crate::extract::ApiPath(EventPath { event_id: event_id.clone() });
    let axum::Json(answer) = api_event(State(state), path).await?;
    let audit = answer.get("audit").cloned().unwrap_or_default();
    let delivery = answer.get("delivery").cloned().unwrap_or_default();
    let raw = audit.get("raw_message").and_then(|v| v.as_str()).map(pretty).unwrap_or_default();
    let view = EventPage {
        page: session.page(format!("Event {event_id}"), "/audit"),
        event_id,
        row: view_of(&audit),
        raw,
        state: text(&delivery, "state"),
        detail: text(&delivery, "detail"),
        delivery: serde_json::to_string_pretty(&delivery).unwrap_or_default(),
    };
    Ok(render(&view))
}

/// JSON text indented; other text as it is.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

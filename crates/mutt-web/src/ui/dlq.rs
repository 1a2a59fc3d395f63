//! `/dlq`: the dead-letter queues through [`mutt_queue::dlq`] (what `muttd dlq` and
//! `/api/v2/dlq` use): the three DLQs at a glance (depth, oldest age, counts by reason); a
//! DLQ's entries with filters (reason, host, age); replay, park or purge of one entry or of
//! every entry matching the filters, after a confirmation page that shows what a dry run
//! counted (a purge asks for the DLQ's name to be typed). A confirmed operation runs in the
//! background and its page shows the progress (htmx polls a fragment; without JavaScript the
//! page has a refresh link). A move writes the same config-audit row as the API, with the
//! session's key.

use super::audit::UiError;
use super::session::Session;
use super::{Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mutt_queue::dlq::{self, Dlq, DlqEntry, DlqSummary, End, MoveReport, Selection};
use mutt_store::manage::ConfigAuditFilter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/dlq", get(overview))
        .route("/dlq/ops/{op}", get(op_page))
        .route("/dlq/ops/{op}/progress", get(op_fragment))
        .route("/dlq/{name}", get(entries))
        .route("/dlq/{name}/confirm", get(confirm))
        .route("/dlq/{name}/run", post(run))
}

/// Entries per page.
const PAGE: u64 = 50;

/// Human age: `42s`, `5m 3s`, `3h 12m`, `2d 4h`.
pub(super) fn age(secs: impl std::borrow::Borrow<Option<u64>>) -> String {
    let Some(s) = *secs.borrow() else { return "unknown".into() };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// An entry's attempts: the alerter's or the forwarder's retry counter.
pub(super) fn retries(info: &dlq::EntryInfo) -> u64 {
    info.retry_count.or(info.moog_retry_count).unwrap_or(0)
}

#[derive(Template)]
#[template(path = "dlq.html")]
pub(super) struct OverviewPage {
    pub page: Page,
    pub dlqs: Vec<DlqSummary>,
    pub recent: Vec<RecentOp>,
}

/// A replay, park or purge as the config audit recorded it.
pub(super) struct RecentOp {
    pub changed_at: String,
    pub changed_by: String,
    pub dlq: String,
    pub action: String,
    pub moved: u64,
    pub reason: String,
}

/// Recent operations shown on the overview.
const RECENT_OPS: u32 = 10;

async fn recent_ops(state: &WebState) -> Result<Vec<RecentOp>, UiError> {
    let filter = ConfigAuditFilter { table_name: Some("dlq".into()), limit: RECENT_OPS, ..Default::default() };
    let rows = state.store.search_config_audit(&filter).await?.rows;
    let text = |v: Option<&serde_json::Value>, k: &str| {
        v.and_then(|v| v.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let c = r.change;
            let moved = c.new_values.as_ref().and_then(|v| v.get("moved")).and_then(|m| m.as_object());
            RecentOp {
                changed_at: r.changed_at,
                changed_by: c.changed_by,
                dlq: text(c.old_values.as_ref(), "dlq"),
                action: text(c.new_values.as_ref(), "action"),
                moved: moved.map(|m| m.values().filter_map(|n| n.as_u64()).sum()).unwrap_or(0),
                reason: c.reason.unwrap_or_default(),
            }
        })
        .collect())
}

async fn overview(State(state): State<Arc<WebState>>, session: Session) -> Result<Response, UiError> {
    let dlqs = dlq::list(state.queue.dead_letters().as_ref()).await?;
    let recent = recent_ops(&state).await?;
    Ok(render(&OverviewPage { page: session.page("Dead letters", "/dlq"), dlqs, recent }))
}

fn dlq_of(name: &str) -> Result<Dlq, UiError> {
    name.parse::<Dlq>().map_err(|_| UiError::not_found(format!("no DLQ named {name:?} (alerter, moog, dead)")))
}

/// The filters as typed (query of the listing, hidden fields of the confirmation).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct Filters {
    /// One entry's id.
    pub id: String,
    pub reason: String,
    pub host: String,
    /// Only entries that failed more than this many minutes ago.
    pub older_than_mins: String,
    /// Only entries that failed at most this many minutes ago.
    pub newer_than_mins: String,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Filters {
    /// The toolbox's selection, or (field, message) of a bad number.
    fn selection(&self) -> Result<Selection, (String, String)> {
        let mins = |field: &str, text: &str| -> Result<Option<u64>, (String, String)> {
            non_empty(text)
                .map(|t| {
                    t.parse::<u64>()
                        .map(|m| m.saturating_mul(60))
                        .map_err(|_| (field.to_owned(), format!("{t:?} is not a whole number of minutes")))
                })
                .transpose()
        };
        Ok(Selection {
            ids: non_empty(&self.id).into_iter().collect(),
            reason: non_empty(&self.reason),
            host: non_empty(&self.host),
            older_than_secs: mins("older_than_mins", &self.older_than_mins)?,
            newer_than_secs: mins("newer_than_mins", &self.newer_than_mins)?,
            limit: None,
        })
    }

    fn query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// Whether anything narrows the selection (an unfiltered action is the whole DLQ).
    pub fn any(&self) -> bool {
        [&self.id, &self.reason, &self.host, &self.older_than_mins, &self.newer_than_mins]
            .iter()
            .any(|f| !f.trim().is_empty())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    #[serde(flatten)]
    filters: Filters,
    offset: Option<String>,
    /// `oldest` (default) or `newest`.
    end: String,
}

#[derive(Template)]
#[template(path = "dlq_entries.html")]
pub(super) struct EntriesPage {
    pub page: Page,
    pub dlq: String,
    pub name: String,
    pub depth: u64,
    pub filters: Filters,
    pub newest_first: bool,
    pub error: Option<(String, String)>,
    pub entries: Vec<(DlqEntry, String)>,
    pub offset: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The filters as a query string, for the "act on all matching" links.
    pub filter_query: String,
}

impl EntriesPage {
    pub fn error_of(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

async fn entries(
    State(state): State<Arc<WebState>>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let dlq = dlq_of(&name)?;
    let store = state.queue.dead_letters();
    let newest_first = q.end == "newest";
    let mut view = EntriesPage {
        page: session.page(format!("Dead letters: {dlq}"), "/dlq"),
        dlq: dlq.as_str().to_owned(),
        name: store.dlq_name(dlq),
        depth: 0,
        filters: q.filters.clone(),
        newest_first,
        error: None,
        entries: Vec::new(),
        offset: 0,
        prev: None,
        next: None,
        filter_query: q.filters.query(),
    };
    let offset = match q.offset.as_deref().map(str::trim).filter(|o| !o.is_empty()).map(str::parse::<u64>) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return Err(UiError::bad_request("offset is not a whole number")),
    };
    let selection = match q.filters.selection() {
        Ok(s) => s,
        Err(e) => {
            view.error = Some(e);
            view.depth = store.dlq_depth(dlq).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&view)).into_response());
        }
    };
    let end = if newest_first { End::Newest } else { End::Oldest };
    let found = dlq::show(store.as_ref(), dlq, &selection, end, offset, PAGE).await?;
    let at =
        |o: u64| format!("{}&end={}&offset={o}", view.filter_query, if newest_first { "newest" } else { "oldest" });
    view.prev = (offset > 0).then(|| at(offset.saturating_sub(PAGE)));
    view.next = found.more.then(|| at(offset + PAGE));
    view.depth = found.depth;
    view.offset = offset;
    view.entries = found
        .entries
        .into_iter()
        .map(|e| {
            let text = serde_json::to_string_pretty(&e.message).unwrap_or_default();
            (e, text)
        })
        .collect();
    Ok(render(&view))
}

/// Replay, park or purge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Action {
    Replay,
    Park,
    Purge,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Replay => "replay",
            Action::Park => "park",
            Action::Purge => "purge",
        }
    }

    /// The config-audit operation of the API's same move.
    fn operation(self) -> &'static str {
        match self {
            Action::Purge => "DELETE",
            Action::Replay | Action::Park => "UPDATE",
        }
    }

    /// Runs the move (or its dry run) with `progress`.
    async fn apply(
        self,
        state: &WebState,
        dlq: Dlq,
        selection: &Selection,
        why: &str,
        dry_run: bool,
        progress: dlq::Progress<'_>,
    ) -> Result<MoveReport, UiError> {
        let store = state.queue.dead_letters();
        let store = store.as_ref();
        Ok(match self {
            Action::Replay => dlq::replay(store, dlq, selection, dry_run, progress).await?,
            Action::Park => dlq::park(store, dlq, selection, why, dry_run, progress).await?,
            Action::Purge => dlq::purge(store, dlq, selection, dry_run, progress).await?,
        })
    }
}

#[derive(Deserialize)]
struct ConfirmQuery {
    action: Action,
    #[serde(flatten)]
    filters: Filters,
}

#[derive(Template)]
#[template(path = "dlq_confirm.html")]
pub(super) struct ConfirmPage {
    pub page: Page,
    pub dlq: String,
    pub action: Action,
    pub filters: Filters,
    /// What the dry run counted.
    pub would_move: u64,
    pub not_replayable: u64,
    pub examined: u64,
    /// The typed confirmation and comment, when the form comes back refused.
    pub typed_confirm: String,
    pub comment: String,
    pub confirm_error: Option<String>,
}

fn no_progress(_: u64, _: u64) {}

/// The confirmation page: what a dry run of the action counts.
async fn confirmation(
    state: &WebState,
    session: &Session,
    dlq: Dlq,
    action: Action,
    filters: Filters,
) -> Result<ConfirmPage, UiError> {
    if action == Action::Park && dlq == Dlq::Dead {
        return Err(UiError::bad_request("entries of the dead DLQ are parked already"));
    }
    let selection = filters.selection().map_err(|(_, m)| UiError::bad_request(m))?;
    let dry = action.apply(state, dlq, &selection, "", true, &no_progress).await?;
    Ok(ConfirmPage {
        page: session.page(format!("Confirm {} ({dlq})", action.as_str()), "/dlq"),
        dlq: dlq.as_str().to_owned(),
        action,
        filters,
        would_move: dry.total(),
        not_replayable: dry.not_replayable,
        examined: dry.examined,
        typed_confirm: String::new(),
        comment: String::new(),
        confirm_error: None,
    })
}

async fn confirm(
    State(state): State<Arc<WebState>>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, UiError> {
    Ok(render(&confirmation(&state, &session, dlq_of(&name)?, q.action, q.filters).await?))
}

#[derive(Deserialize)]
struct RunForm {
    action: Action,
    #[serde(flatten)]
    filters: Filters,
    /// Purge: the DLQ's name, typed.
    #[serde(default)]
    confirm: String,
    /// Why (the audit's reason; a park's reason in the entry too).
    #[serde(default)]
    comment: String,
}

async fn run(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(name): Path<String>,
    Form(form): Form<RunForm>,
) -> Result<Response, UiError> {
    let dlq = dlq_of(&name)?;
    if form.action == Action::Purge && form.confirm.trim() != dlq.as_str() {
        let mut page = confirmation(&state, &session, dlq, form.action, form.filters).await?;
        page.typed_confirm = form.confirm;
        page.comment = form.comment;
        page.confirm_error = Some(format!("type {} to purge: a purge deletes entries for good", dlq.as_str()));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    }
    let selection = form.filters.selection().map_err(|(_, m)| UiError::bad_request(m))?;
    let caller = super::config::caller_of(&session, caller);
    let id = start(state, caller, dlq, form.action, selection, non_empty(&form.comment));
    Ok(Redirect::to(&format!("/dlq/ops/{id}")).into_response())
}

/// A move running (or run) in the background.
pub(super) struct Op {
    pub dlq: Dlq,
    pub action: Action,
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// The report, or the error text, once finished.
    pub outcome: Mutex<Option<Result<MoveReport, String>>>,
}

/// Operations are kept in memory for their page; the oldest finished ones go beyond this.
const KEPT_OPS: usize = 200;

fn ops() -> &'static Mutex<HashMap<String, Arc<Op>>> {
    static OPS: OnceLock<Mutex<HashMap<String, Arc<Op>>>> = OnceLock::new();
    OPS.get_or_init(Default::default)
}

fn lock_ops() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Op>>> {
    ops().lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the move in the background; its id.
fn start(
    state: Arc<WebState>,
    caller: Caller,
    dlq: Dlq,
    action: Action,
    selection: Selection,
    why: Option<String>,
) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let op = Arc::new(Op { dlq, action, done: AtomicU64::new(0), total: AtomicU64::new(0), outcome: Mutex::new(None) });
    {
        let mut map = lock_ops();
        if map.len() >= KEPT_OPS {
            map.retain(|_, o| o.outcome.lock().map(|g| g.is_none()).unwrap_or(false));
        }
        map.insert(id.clone(), op.clone());
    }
    tokio::spawn(async move {
        let park_why = why.clone().unwrap_or_else(|| "parked by an operator".into());
        let progress = |done: u64, total: u64| {
            op.done.store(done, Ordering::Relaxed);
            op.total.store(total, Ordering::Relaxed);
        };
        let result = action.apply(&state, dlq, &selection, &park_why, false, &progress).await;
        if let Ok(report) = &result {
            let reason = if action == Action::Park { Some(park_why) } else { why };
            crate::api::dlq::record(&state, &caller, dlq, report, action.operation(), reason).await;
        }
        let outcome = result.map_err(|e| e.message().to_owned());
        *op.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    });
    id
}

#[derive(Template)]
#[template(path = "dlq_op.html")]
pub(super) struct OpPage {
    pub page: Page,
    pub progress: OpState,
}

/// The progress fragment htmx polls.
#[derive(Template)]
#[template(path = "dlq_op_progress.html")]
pub(super) struct OpFragment {
    pub progress: OpState,
}

/// Where an operation is.
pub(super) struct OpState {
    pub id: String,
    pub dlq: String,
    pub action: &'static str,
    pub done: u64,
    pub total: u64,
    pub finished: bool,
    pub report: Option<MoveReport>,
    pub error: Option<String>,
}

impl OpState {
    /// Percent done (0..=100).
    pub fn percent(&self) -> u64 {
        if self.finished || self.total == 0 { 100 } else { (self.done * 100 / self.total).min(100) }
    }
}

fn op_state(id: &str) -> Result<OpState, UiError> {
    let op = lock_ops()
        .get(id)
        .cloned()
        .ok_or_else(|| UiError::not_found("no such operation (they are kept until muttd restarts)"))?;
    let outcome = op.outcome.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let finished = outcome.is_some();
    let (report, error) = match outcome {
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    Ok(OpState {
        id: id.to_owned(),
        dlq: op.dlq.as_str().to_owned(),
        action: op.action.as_str(),
        done: op.done.load(Ordering::Relaxed),
        total: op.total.load(Ordering::Relaxed),
        finished,
        report,
        error,
    })
}

async fn op_page(session: Session, Path(op): Path<String>) -> Result<Response, UiError> {
    let progress = op_state(&op)?;
    let title = format!("{} of {}", progress.action, progress.dlq);
    Ok(render(&OpPage { page: session.page(title, "/dlq"), progress }))
}

async fn op_fragment(_session: Session, Path(op): Path<String>) -> Result<Response, UiError> {
    Ok(render(&OpFragment { progress: op_state(&op)? }))
}

//! `/api/v2/dlq`: the dead-letter toolbox of [`mutt_queue::dlq`] over HTTP (what `muttd dlq`
//! does): the three DLQs at a glance, a page of entries with filters, replay, park, and purge
//! (which asks for the DLQ's name in `confirm`). A move that is not a dry run writes a
//! config-audit row (`table_name` `dlq`).

use super::ApiRouter;
use super::caller::{Caller, Change};
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use mutt_queue::dlq::{self, Dlq, End, MoveReport, Selection};
use mutt_store::ConfigChange;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/dlq", get(list))
        .route("/dlq/{name}", get(entries))
        .route("/dlq/{name}/replay", post(replay))
        .route("/dlq/{name}/park", post(park))
        .route("/dlq/{name}/purge", post(purge))
}

#[derive(Deserialize)]
pub(super) struct DlqName {
    name: String,
}

fn dlq_of(name: &str) -> Result<Dlq, ApiError> {
    name.parse::<Dlq>().map_err(|_| ApiError::not_found(format!("no DLQ named {name:?} (alerter, moog, dead)")))
}

#[utoipa::path(get, path = "/api/v2/dlq", tag = "dlq", responses((status = 200, description = "The three DLQs: depth, oldest age, reasons", body = AnyObject), (status = 401, body = ErrorBody)))]
pub(super) async fn list(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let summaries = dlq::list(state.queue.dead_letters().as_ref()).await?;
    Ok(Json(json!({"dlqs": summaries})))
}

/// The filters of a listing (query) and of an action (body).
#[derive(Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    ids: Vec<String>,
    id: Option<String>,
    reason: Option<String>,
    host: Option<String>,
    older_than_secs: Option<u64>,
    newer_than_secs: Option<u64>,
    limit: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    /// Purge: the DLQ's name, to confirm.
    confirm: Option<String>,
    /// Park: why (recorded in the entry and the audit).
    park_reason: Option<String>,
    /// Replay, purge: why (recorded in the audit).
    comment: Option<String>,
}

impl Filters {
    fn selection(&self) -> Selection {
        let mut ids = self.ids.clone();
        ids.extend(self.id.clone());
        Selection {
            ids,
            reason: self.reason.clone(),
            host: self.host.clone(),
            older_than_secs: self.older_than_secs,
            newer_than_secs: self.newer_than_secs,
            limit: self.limit,
        }
    }
}

/// The filters of a listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// An entry id (or a prefix of at least 6 characters).
    id: Option<String>,
    /// `_dlq_reason` (`retries_exhausted`, `shed`, …).
    reason: Option<String>,
    /// The event's hostname (case-insensitive).
    host: Option<String>,
    older_than_secs: Option<u64>,
    newer_than_secs: Option<u64>,
    /// Entries per page, 1..=200 (default 50).
    limit: Option<u64>,
    /// `oldest` (default) or `newest`.
    #[param(value_type = Option<String>)]
    end: Option<End>,
    /// Matching entries to skip.
    offset: Option<u64>,
}

#[utoipa::path(get, path = "/api/v2/dlq/{name}", tag = "dlq", params(("name" = DlqNameSchema, Path, description = "alerter, moog or dead"), ListParams), responses((status = 200, description = "A page of entries", body = AnyObject), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn entries(
    State(state): State<Arc<WebState>>,
    ApiPath(DlqName { name }): ApiPath<DlqName>,
    ApiQuery(f): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let dlq = dlq_of(&name)?;
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let selection = Selection {
        ids: f.id.into_iter().collect(),
        reason: f.reason,
        host: f.host,
        older_than_secs: f.older_than_secs,
        newer_than_secs: f.newer_than_secs,
        limit: None,
    };
    let page = dlq::show(
        state.queue.dead_letters().as_ref(),
        dlq,
        &selection,
        f.end.unwrap_or_default(),
        f.offset.unwrap_or(0),
        limit,
    )
    .await?;
    Ok(Json(json!(page)))
}

/// Records a move that was made; dry runs change nothing and are not recorded.
pub(crate) async fn record(
    state: &WebState,
    caller: &Caller,
    dlq: Dlq,
    report: &MoveReport,
    operation: &str,
    reason: Option<String>,
) {
    if report.dry_run || report.total() == 0 {
        return;
    }
    let change = Change {
        operation,
        table_name: "dlq",
        record_id: ConfigChange::dynamic_config_record_id(state.queue.dead_letters().dlq_name(dlq).as_str()),
        old_values: Some(json!({"dlq": dlq.as_str()})),
        new_values: Some(json!({"action": report.action, "moved": report.moved, "ids": report.ids})),
        reason,
    };
    caller.record(state, change).await;
}

fn no_progress(_: u64, _: u64) {}

#[utoipa::path(post, path = "/api/v2/dlq/{name}/replay", tag = "dlq", params(("name" = DlqNameSchema, Path, description = "alerter, moog or dead")), request_body = DlqAction, responses((status = 200, body = DlqReport), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn replay(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(DlqName { name }): ApiPath<DlqName>,
    ApiJson(f): ApiJson<Filters>,
) -> Result<Json<Value>, ApiError> {
    let dlq = dlq_of(&name)?;
    let report = dlq::replay(state.queue.dead_letters().as_ref(), dlq, &f.selection(), f.dry_run, &no_progress).await?;
    record(&state, &caller, dlq, &report, "UPDATE", f.comment.clone()).await;
    Ok(Json(json!(report)))
}

#[utoipa::path(post, path = "/api/v2/dlq/{name}/park", tag = "dlq", params(("name" = DlqNameSchema, Path, description = "alerter or moog (dead: 409)")), request_body = DlqAction, responses((status = 200, body = DlqReport), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn park(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(DlqName { name }): ApiPath<DlqName>,
    ApiJson(f): ApiJson<Filters>,
) -> Result<Json<Value>, ApiError> {
    let dlq = dlq_of(&name)?;
    if dlq == Dlq::Dead {
        return Err(ApiError::conflict("entries of the dead DLQ are parked already"));
    }
    let why = f.park_reason.clone().unwrap_or_else(|| "parked by an operator".into());
    let report =
        dlq::park(state.queue.dead_letters().as_ref(), dlq, &f.selection(), &why, f.dry_run, &no_progress).await?;
    record(&state, &caller, dlq, &report, "UPDATE", Some(why)).await;
    Ok(Json(json!(report)))
}

#[utoipa::path(post, path = "/api/v2/dlq/{name}/purge", tag = "dlq", params(("name" = DlqNameSchema, Path, description = "alerter, moog or dead")), request_body = DlqAction, responses((status = 200, body = DlqReport), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn purge(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(DlqName { name }): ApiPath<DlqName>,
    ApiJson(f): ApiJson<Filters>,
) -> Result<Json<Value>, ApiError> {
    let dlq = dlq_of(&name)?;
    if !f.dry_run && f.confirm.as_deref() != Some(dlq.as_str()) {
        let msg =
            format!("a purge deletes entries for good: send \"confirm\": \"{}\" (or \"dry_run\": true)", dlq.as_str());
        return Err(ApiError::invalid_field("confirm", msg));
    }
    let report = dlq::purge(state.queue.dead_letters().as_ref(), dlq, &f.selection(), f.dry_run, &no_progress).await?;
    record(&state, &caller, dlq, &report, "DELETE", f.comment.clone()).await;
    Ok(Json(json!(report)))
}

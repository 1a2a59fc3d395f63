//! The audit searches: `/audit` and `/config-audit` over `config_audit_log` (spec §6.9; rows
//! under `logs` and `changes` respectively), `/audit-logs` over `event_audit_log` (spec §6.10,
//! plus the `decision` and `forwarded` filters). Newest first, ties by id, so pages are stable;
//! every answer carries the total. Counted as `mutt_webui_api_requests_total{endpoint="audit"}`.

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use super::paging::{PageParams, time_range};
use crate::WebState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use mutt_store::manage::{ConfigAuditFilter, EventAuditFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/audit", get(config_audit_logs))
        .route("/config-audit", get(config_audit_changes))
        .route("/audit-logs", get(event_audit))
}

/// The config-audit filters. (No `#[serde(flatten)]` of the paging: the query deserializer
/// then sees every value as text and would refuse the numbers.)
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConfigAuditParams {
    changed_by: Option<String>,
    operation: Option<String>,
    table_name: Option<String>,
    record_id: Option<i32>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

async fn config_audit(state: &WebState, p: ConfigAuditParams, member: &str) -> Result<Json<Value>, ApiError> {
    let paging = PageParams { page: p.page, limit: p.limit }.paging()?;
    let operation = match non_empty(p.operation).map(|o| o.to_ascii_uppercase()) {
        Some(o) if !["CREATE", "UPDATE", "DELETE"].contains(&o.as_str()) => {
            return Err(ApiError::invalid_field("operation", "operation must be one of: CREATE, UPDATE, DELETE"));
        }
        o => o,
    };
    let (start, end) = time_range(p.start_date.as_deref(), p.end_date.as_deref())?;
    let filter = ConfigAuditFilter {
        changed_by: non_empty(p.changed_by),
        operation,
        table_name: non_empty(p.table_name),
        record_id: p.record_id,
        start,
        end,
        offset: paging.offset(),
        limit: paging.limit,
    };
    let page = state.store.search_config_audit(&filter).await?;
    Ok(Json(json!({member: page.rows, "pagination": paging.json(page.total)})))
}

#[utoipa::path(get, path = "/api/v2/audit", tag = "audit", params(ConfigAuditParams), responses((status = 200, body = ConfigAuditLogs), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody)))]
pub(super) async fn config_audit_logs(
    State(state): State<Arc<WebState>>,
    params: Result<ApiQuery<ConfigAuditParams>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = async { config_audit(&state, params?.0, "logs").await }.await;
    state.metrics.api("audit", started, &result);
    result
}

#[utoipa::path(get, path = "/api/v2/config-audit", tag = "audit", params(ConfigAuditParams), responses((status = 200, body = ConfigAuditChanges), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody)))]
pub(super) async fn config_audit_changes(
    State(state): State<Arc<WebState>>,
    params: Result<ApiQuery<ConfigAuditParams>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = async { config_audit(&state, params?.0, "changes").await }.await;
    state.metrics.api("audit", started, &result);
    result
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventAuditParams {
    /// One event's `_event_id`.
    event_id: Option<String>,
    hostname: Option<String>,
    rule_id: Option<i32>,
    decision: Option<String>,
    forwarded: Option<bool>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v2/audit-logs", tag = "audit", params(EventAuditParams), responses((status = 200, body = EventAuditLogs), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody)))]
pub(super) async fn event_audit(
    State(state): State<Arc<WebState>>,
    params: Result<ApiQuery<EventAuditParams>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = async { search_events(&state, params?.0).await }.await;
    state.metrics.api("audit", started, &result);
    result
}

async fn search_events(state: &WebState, p: EventAuditParams) -> Result<Json<Value>, ApiError> {
    let paging = PageParams { page: p.page, limit: p.limit }.paging()?;
    let (start, end) = time_range(p.start_date.as_deref(), p.end_date.as_deref())?;
    let filter = EventAuditFilter {
        event_id: non_empty(p.event_id),
        hostname: non_empty(p.hostname),
        rule_id: p.rule_id,
        decision: non_empty(p.decision),
        forwarded: p.forwarded,
        start,
        end,
        count_limit: None,
        offset: paging.offset(),
        limit: paging.limit,
    };
    let page = state.store.search_event_audit(&filter).await?;
    Ok(Json(json!({"logs": page.rows, "pagination": paging.json(page.total)})))
}

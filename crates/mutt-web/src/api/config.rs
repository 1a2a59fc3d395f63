//! `/config`: dynamic configuration (spec §6.5): every stored value, set one (validated against
//! the catalogue, [`mutt_core::config_catalogue`]), delete one (its readers fall back to their
//! default), and the history of changes. Setting and deleting tell every process at once
//! (`PUBLISH mutt:config:updates` on Redis) and write a config-audit row.

use super::ApiRouter;
use super::caller::Caller;
#[allow(unused_imports)]
use super::openapi::*;
use super::paging::PageParams;
use super::rules::optional_reason;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::routing::{get, put};
use mutt_core::config_catalogue::{self as catalogue, ConfigValueError};
use mutt_store::ConfigChange;
use mutt_store::manage::ConfigAuditFilter;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/config", get(list))
        .route("/config/history", get(history))
        .route("/config/{key}", put(set).delete(remove).get(get_one))
}

#[utoipa::path(get, path = "/api/v2/config", tag = "config", responses((status = 200, body = ConfigValues), (status = 401, body = ErrorBody)))]
pub(super) async fn list(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let entries = state.coordination.config_entries().await?;
    let config: Map<String, Value> = entries.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Ok(Json(json!({"config": config})))
}

/// `GET /config/{key}`: the stored value, the catalogue's default and range.
#[utoipa::path(get, path = "/api/v2/config/{key}", tag = "config", params(("key" = String, Path)), responses((status = 200, body = ConfigKey), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<Arc<WebState>>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = state.coordination.config_values(&[key.as_str()]).await?.into_iter().next().flatten();
    let setting = catalogue::lookup(&key);
    if stored.is_none() && setting.is_none() {
        return Err(ApiError::not_found(format!("{key} is neither set nor a known configuration key")));
    }
    Ok(Json(json!({
        "key": key,
        "value": stored,
        "default": setting.map(|s| s.default.clone()),
        "range": setting.map(|s| s.range_text()),
        "reader": setting.map(|s| s.reader),
    })))
}

/// The stored values of every catalogue key (for the partner checks, warn < shed).
pub(crate) async fn stored_catalogue_values(state: &WebState) -> Result<BTreeMap<String, String>, ApiError> {
    let keys: Vec<&str> = catalogue::catalogue().iter().map(|s| s.key.as_ref()).collect();
    let values = state.coordination.config_values(&keys).await?;
    Ok(keys.into_iter().zip(values).filter_map(|(k, v)| Some((k.to_owned(), v?))).collect())
}

#[derive(Deserialize)]
pub(super) struct SetBody {
    value: Option<Value>,
    reason: Option<String>,
}

/// A JSON scalar as the stored text: strings as they are, numbers and booleans as their JSON
/// text (spec §6.5 [OPEN]: not Python's `True`).
fn value_text(v: Option<Value>) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Err(ApiError::invalid_field("value", "Missing 'value' in request body")),
        Some(Value::String(s)) => Ok(s),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => Err(ApiError::invalid_field("value", "value must be a string, number or boolean")),
    }
}

#[utoipa::path(put, path = "/api/v2/config/{key}", tag = "config", params(("key" = String, Path)), request_body = ConfigSet, responses((status = 200, body = ConfigSetResult), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn set(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<Json<Value>, ApiError> {
    let text = value_text(body.value)?;
    let stored = stored_catalogue_values(&state).await?;
    let value = catalogue::validate(&key, &text, |k| stored.get(k).cloned()).map_err(|e| match e {
        ConfigValueError::Unknown { .. } => ApiError::invalid_field("key", e.to_string()),
        ConfigValueError::Invalid { .. } => ApiError::invalid_field("value", e.to_string()),
    })?;
    let old = state.coordination.set_config_value(&key, &value).await?;
    record(&state, &caller, &key, old.as_deref(), Some(&value), body.reason).await;
    Ok(Json(json!({"key": key, "old_value": old, "new_value": value})))
}

#[utoipa::path(delete, path = "/api/v2/config/{key}", tag = "config", params(("key" = String, Path)), request_body(content = ReasonBody, description = "Optional"), responses((status = 200, body = ConfigDeleted), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let reason = optional_reason(&headers, body)?;
    let Some(old) = state.coordination.delete_config_value(&key).await? else {
        return Err(ApiError::not_found(format!("{key} is not set")));
    };
    record(&state, &caller, &key, Some(&old), None, reason).await;
    let default = catalogue::lookup(&key).map(|s| s.default.clone());
    Ok(Json(json!({"key": key, "old_value": old, "default": default, "message": "Configuration value deleted"})))
}

pub(crate) async fn record(
    state: &WebState,
    caller: &Caller,
    key: &str,
    old: Option<&str>,
    new: Option<&str>,
    reason: Option<String>,
) {
    let mut row = ConfigChange::dynamic_config(key, old, new, &caller.changed_by, reason.as_deref());
    row.correlation_id = caller.correlation_id.clone();
    if let Err(e) = state.store.record_config_change(&row).await {
        tracing::warn!(error = %e, key, "dynamic configuration changed but its config-audit row was not written");
    }
}

/// `GET /config/history`: config-audit rows of `dynamic_config`, newest first.
#[utoipa::path(get, path = "/api/v2/config/history", tag = "config", params(PageParams), responses((status = 200, body = ConfigHistory), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<Arc<WebState>>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let paging = params.paging()?;
    let filter = ConfigAuditFilter {
        table_name: Some("dynamic_config".into()),
        offset: paging.offset(),
        limit: paging.limit,
        ..ConfigAuditFilter::default()
    };
    let page = state.store.search_config_audit(&filter).await?;
    Ok(Json(json!({"history": page.rows, "pagination": paging.json(page.total)})))
}

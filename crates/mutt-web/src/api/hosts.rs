//! `/dev-hosts` and `/teams` (spec §6.11): development hosts and host → team mappings. Every
//! change is config-audited (`development_hosts`, `device_teams`; record id: the stable hash of
//! the hostname, spec §6.11 [ADD]) and announced to the alerters.

use super::ApiRouter;
use super::caller::{Caller, Change, host_record_id};
#[allow(unused_imports)]
use super::openapi::*;
use super::rules::optional_reason;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, put};
use mutt_core::normalize::MAX_HOSTNAME_LEN;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Longest team name the table takes.
pub(crate) const MAX_TEAM_LEN: usize = 100;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/dev-hosts", get(list_hosts).post(add_host))
        .route("/dev-hosts/{hostname}", delete(delete_host))
        .route("/teams", get(list_teams).post(add_team))
        .route("/teams/{hostname}", put(update_team).delete(delete_team))
}

/// The config-audit row of a change to `hostname`'s row of `table_name`: its old and new
/// values, as (old, new).
fn host_change<'a>(
    operation: &'a str,
    table_name: &'a str,
    hostname: &str,
    (old_values, new_values): (Option<Value>, Option<Value>),
    reason: Option<String>,
) -> Change<'a> {
    Change { operation, table_name, record_id: host_record_id(hostname), old_values, new_values, reason }
}

fn host_not_found() -> ApiError {
    ApiError::not_found("Hostname not found")
}

/// A required non-empty text field within the column's length.
pub(crate) fn required(field: &str, value: Option<String>, max: usize, missing: &str) -> Result<String, ApiError> {
    let v = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let v = v.ok_or_else(|| ApiError::invalid_field(field, missing))?;
    if v.chars().count() > max {
        return Err(ApiError::invalid_field(field, format!("{field} is longer than {max} characters")));
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v2/dev-hosts", tag = "hosts", responses((status = 200, body = HostList), (status = 401, body = ErrorBody)))]
pub(super) async fn list_hosts(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let hosts = state.store.development_hosts().await?;
    Ok(Json(json!({"hosts": hosts.into_iter().map(|h| json!({"hostname": h})).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
pub(super) struct HostBody {
    hostname: Option<String>,
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v2/dev-hosts", tag = "hosts", request_body = HostCreate, responses((status = 201, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn add_host(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiJson(body): ApiJson<HostBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let hostname = required("hostname", body.hostname, MAX_HOSTNAME_LEN, "hostname is required")?;
    insert_host(&state, &caller, &hostname, body.reason).await?;
    caller.announce(&state).await;
    Ok((StatusCode::CREATED, Json(json!({"message": "Dev host added successfully"}))))
}

#[utoipa::path(delete, path = "/api/v2/dev-hosts/{hostname}", tag = "hosts", params(("hostname" = String, Path)), request_body(content = ReasonBody, description = "Optional"), responses((status = 200, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn delete_host(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let reason = optional_reason(&headers, body)?;
    remove_host(&state, &caller, &hostname, reason).await?;
    Ok(Json(json!({"message": "Dev host deleted successfully"})))
}

/// Adds a checked hostname (see [`required`]) as a development host and writes its
/// config-audit row; 409 when it is one already. Does not tell the alerters (an import adds
/// many first): the caller then calls [`Caller::announce`].
pub(crate) async fn insert_host(
    state: &WebState,
    caller: &Caller,
    hostname: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    if !state.store.insert_development_host(hostname).await? {
        return Err(ApiError::conflict("Hostname already exists"));
    }
    let values = (None, Some(json!({"hostname": hostname})));
    let change = host_change("CREATE", "development_hosts", hostname, values, reason);
    caller.record(state, change).await;
    Ok(())
}

/// Removes a development host, audited and announced; 404 when there is none.
pub(crate) async fn remove_host(
    state: &WebState,
    caller: &Caller,
    hostname: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    if !state.store.delete_development_host(hostname).await? {
        return Err(host_not_found());
    }
    let values = (Some(json!({"hostname": hostname})), None);
    let change = host_change("DELETE", "development_hosts", hostname, values, reason);
    caller.record_rules_change(state, change).await;
    Ok(())
}

#[utoipa::path(get, path = "/api/v2/teams", tag = "hosts", responses((status = 200, body = TeamList), (status = 401, body = ErrorBody)))]
pub(super) async fn list_teams(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let teams = state.store.device_teams().await?;
    let teams: Vec<Value> = teams.into_iter().map(|(h, t)| json!({"hostname": h, "team_assignment": t})).collect();
    Ok(Json(json!({"teams": teams})))
}

#[derive(Deserialize)]
pub(super) struct TeamBody {
    hostname: Option<String>,
    team_assignment: Option<String>,
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v2/teams", tag = "hosts", request_body = TeamCreate, responses((status = 201, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn add_team(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiJson(body): ApiJson<TeamBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let missing = "hostname and team_assignment are required";
    let hostname = required("hostname", body.hostname, MAX_HOSTNAME_LEN, missing)?;
    let team = required("team_assignment", body.team_assignment, MAX_TEAM_LEN, missing)?;
    insert_team(&state, &caller, &hostname, &team, body.reason).await?;
    caller.announce(&state).await;
    Ok((StatusCode::CREATED, Json(json!({"message": "Team mapping added successfully"}))))
}

/// Maps a checked hostname to a checked team and writes the config-audit row; 409 when the
/// host has a team. Does not tell the alerters (see [`insert_host`]).
pub(crate) async fn insert_team(
    state: &WebState,
    caller: &Caller,
    hostname: &str,
    team: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    if !state.store.insert_device_team(hostname, team).await? {
        return Err(ApiError::conflict("Hostname already has a team assignment"));
    }
    let values = (None, Some(json!({"hostname": hostname, "team_assignment": team})));
    let change = host_change("CREATE", "device_teams", hostname, values, reason);
    caller.record(state, change).await;
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct TeamUpdate {
    team_assignment: Option<String>,
    reason: Option<String>,
}

#[utoipa::path(put, path = "/api/v2/teams/{hostname}", tag = "hosts", params(("hostname" = String, Path)), request_body = TeamUpdateBody, responses((status = 200, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn update_team(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
    ApiJson(body): ApiJson<TeamUpdate>,
) -> Result<Json<Value>, ApiError> {
    let team = required("team_assignment", body.team_assignment, MAX_TEAM_LEN, "team_assignment is required")?;
    change_team(&state, &caller, &hostname, &team, body.reason).await?;
    Ok(Json(json!({"message": "Team mapping updated successfully"})))
}

/// Gives a mapped host a checked team, audited and announced; 404 when it has none.
pub(crate) async fn change_team(
    state: &WebState,
    caller: &Caller,
    hostname: &str,
    team: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    let old = state.store.update_device_team(hostname, team).await?.ok_or_else(host_not_found)?;
    let values = (
        Some(json!({"hostname": hostname, "team_assignment": old})),
        Some(json!({"hostname": hostname, "team_assignment": team})),
    );
    let change = host_change("UPDATE", "device_teams", hostname, values, reason);
    caller.record_rules_change(state, change).await;
    Ok(())
}

#[utoipa::path(delete, path = "/api/v2/teams/{hostname}", tag = "hosts", params(("hostname" = String, Path)), request_body(content = ReasonBody, description = "Optional"), responses((status = 200, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn delete_team(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let reason = optional_reason(&headers, body)?;
    remove_team(&state, &caller, &hostname, reason).await?;
    Ok(Json(json!({"message": "Team mapping deleted successfully"})))
}

/// Removes a host's team mapping, audited and announced; 404 when it has none.
pub(crate) async fn remove_team(
    state: &WebState,
    caller: &Caller,
    hostname: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    let old = state.store.delete_device_team(hostname).await?.ok_or_else(host_not_found)?;
    let values = (Some(json!({"hostname": hostname, "team_assignment": old})), None);
    let change = host_change("DELETE", "device_teams", hostname, values, reason);
    caller.record_rules_change(state, change).await;
    Ok(())
}

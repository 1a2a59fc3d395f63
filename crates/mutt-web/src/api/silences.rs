//! `/silences` (v2 only): silences and maintenance windows ([`mutt_core::silence`]): list by
//! state, create, read one, expire early (`POST /silences/{id}/expire` or `DELETE`). Nothing
//! is deleted: an expired silence stays for the audit. Every change writes a config-audit row
//! (`silences`) and is announced to the alerters, which also reload every few seconds.

use super::ApiRouter;
use super::caller::{Caller, Change};
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use mutt_core::silence::{Matcher, NewSilence, SilenceError, SilenceView, WeeklyWindow};
use mutt_store::silences::{Expiry, SilenceFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use utoipa::ToSchema;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/silences", get(list).post(create))
        .route("/silences/{id}", get(get_one).delete(expire))
        .route("/silences/{id}/expire", post(expire))
}

impl From<SilenceError> for ApiError {
    fn from(e: SilenceError) -> Self {
        ApiError::invalid_field(e.field(), e.to_string())
    }
}

/// What a matcher matches (every field given must match; at least one).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MatcherSchema {
    /// Hostname, exact or a glob with `*` and `?` (case-insensitive).
    pub host: Option<String>,
    pub rule_id: Option<i32>,
    /// The handling rule's team_assignment.
    pub team: Option<String>,
    /// Case-insensitive substring of the message.
    pub message_contains: Option<String>,
    /// Case-insensitive regex searched in the message.
    pub message_regex: Option<String>,
    /// Trap OID prefix, on arc boundaries.
    pub trap_oid_prefix: Option<String>,
}

/// A weekly maintenance window: local wall-clock time in an IANA zone.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WindowSchema {
    #[schema(value_type = Vec<String>, example = json!(["Sun"]))]
    pub days: Vec<String>,
    /// `HH:MM`, local.
    #[schema(example = "02:00")]
    pub start: String,
    #[schema(minimum = 1, maximum = 10080)]
    pub duration_minutes: u32,
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
}

/// A silence to create. `starts_at` defaults to now; `ends_at` is required unless `window` is
/// given; `created_by` defaults to the API key's name; `reason` goes to the config audit.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SilenceCreate {
    pub matcher: MatcherSchema,
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    pub window: Option<WindowSchema>,
    pub created_by: Option<String>,
    #[schema(min_length = 1)]
    pub comment: String,
    pub reason: Option<String>,
}

/// A stored silence and where it stands now.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SilenceSchema {
    pub id: i64,
    pub matcher: MatcherSchema,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    pub window: Option<WindowSchema>,
    pub created_by: String,
    pub comment: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expired_at: Option<String>,
    pub expired_by: Option<String>,
    /// `pending`, `active` or `expired`.
    pub state: String,
    /// Silencing now (a window: inside an occurrence).
    pub in_effect: bool,
    #[schema(format = DateTime)]
    pub next_start: Option<String>,
    #[schema(format = DateTime)]
    pub next_end: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SilenceList {
    pub silences: Vec<SilenceSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    matcher: Matcher,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    window: Option<WeeklyWindow>,
    created_by: Option<String>,
    comment: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ListParams {
    state: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SilenceId {
    id: i64,
}

/// The silence's id as a config-audit record id (an `INTEGER` column).
fn record_id(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

#[utoipa::path(get, path = "/api/v2/silences", tag = "silences",
    params(("state" = Option<String>, Query, description = "active (default: not ended, pending included), expired or all", pattern = "^(active|expired|all)$")),
    responses((status = 200, body = SilenceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<Arc<WebState>>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = async {
        let filter = match p.state.as_deref() {
            None => SilenceFilter::Active,
            Some(s) => s.parse().map_err(|e: String| ApiError::invalid_field("state", e))?,
        };
        let now = Utc::now();
        let silences = state.store.list_silences(filter, now).await?;
        let views: Vec<SilenceView> = silences.into_iter().map(|s| SilenceView::at(s, now)).collect();
        Ok(Json(json!({"silences": views})))
    }
    .await;
    state.metrics.api("silences", started, &result);
    result
}

#[utoipa::path(get, path = "/api/v2/silences/{id}", tag = "silences", params(("id" = i64, Path, description = "Silence id")),
    responses((status = 200, body = SilenceSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<Arc<WebState>>,
    ApiPath(SilenceId { id }): ApiPath<SilenceId>,
) -> Result<Json<Value>, ApiError> {
    let silence = state.store.get_silence(id).await?.ok_or_else(|| ApiError::not_found("Silence not found"))?;
    Ok(Json(json!(SilenceView::at(silence, Utc::now()))))
}

#[utoipa::path(post, path = "/api/v2/silences", tag = "silences", request_body = SilenceCreate,
    responses((status = 201, body = SilenceSchema), (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = async {
        let silence = NewSilence {
            matcher: body.matcher,
            starts_at: body.starts_at.unwrap_or_else(Utc::now),
            ends_at: body.ends_at,
            window: body.window,
            created_by: body.created_by.unwrap_or_else(|| caller.changed_by.clone()),
            comment: body.comment,
        };
        let view = add(&state, &caller, silence, body.reason).await?;
        Ok((StatusCode::CREATED, Json(json!(view))))
    }
    .await;
    state.metrics.api("silences", started, &result);
    result
}

/// Checks and stores a silence, writes its config-audit row and tells the alerters (the API
/// and a console page).
pub(crate) async fn add(
    state: &WebState,
    caller: &Caller,
    silence: NewSilence,
    reason: Option<String>,
) -> Result<SilenceView, ApiError> {
    silence.validate()?;
    let id = state.store.create_silence(&silence).await?;
    let stored = state.store.get_silence(id).await?.ok_or_else(|| ApiError::not_found("Silence not found"))?;
    let change = Change {
        operation: "CREATE",
        table_name: "silences",
        record_id: record_id(id),
        old_values: None,
        new_values: Some(json!(stored)),
        reason,
    };
    caller.record_rules_change(state, change).await;
    Ok(SilenceView::at(stored, Utc::now()))
}

#[utoipa::path(post, path = "/api/v2/silences/{id}/expire", tag = "silences", params(("id" = i64, Path, description = "Silence id")),
    responses((status = 200, description = "Expired now", body = SilenceSchema), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "It had ended already", body = ErrorBody)))]
pub(super) async fn expire(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(SilenceId { id }): ApiPath<SilenceId>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = end_early(&state, &caller, id).await.map(|v| Json(json!(v)));
    state.metrics.api("silences", started, &result);
    result
}

/// Expires silence `id` now, with its config-audit row and an announcement (the API and a
/// console page): 404 when there is none, 409 when it had ended.
pub(crate) async fn end_early(state: &WebState, caller: &Caller, id: i64) -> Result<SilenceView, ApiError> {
    let now = Utc::now();
    match state.store.expire_silence(id, &caller.changed_by, now).await? {
        Expiry::Expired(s) => {
            let change = Change {
                operation: "UPDATE",
                table_name: "silences",
                record_id: record_id(id),
                old_values: Some(json!({"expired_at": null})),
                new_values: Some(json!({"expired_at": s.expired_at, "expired_by": s.expired_by})),
                reason: Some("expired early".into()),
            };
            caller.record_rules_change(state, change).await;
            Ok(SilenceView::at(s, now))
        }
        Expiry::AlreadyExpired(_) => Err(ApiError::conflict("Silence has already ended")),
        Expiry::NotFound => Err(ApiError::not_found("Silence not found")),
    }
}

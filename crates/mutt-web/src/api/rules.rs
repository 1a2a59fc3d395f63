//! `/rules`: the alert rules (spec §6.8): list, get, create, partial update, delete (409 when
//! audit rows reference the rule, unless `?deactivate=true`). Every change is config-audited
//! (`alert_rules`) and announced to the alerters.

use super::ApiRouter;
use super::caller::{Caller, Change};
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, parse_json};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use mutt_core::Rule;
use mutt_core::rule::{RuleDraft, ValidRule};
use mutt_store::manage::RuleDeletion;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The fields of a rule a client may set.
pub const RULE_FIELDS: [&str; 11] = [
    "match_string",
    "trap_oid",
    "syslog_severity",
    "match_type",
    "priority",
    "prod_handling",
    "dev_handling",
    "team_assignment",
    "is_active",
    "flap_threshold",
    "flap_window_secs",
];

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/rules", get(list_rules).post(create_rule))
        .route("/rules/{id}", get(get_rule).put(update_rule).delete(delete_rule))
}

/// A stored rule as the draft that would create it.
pub(crate) fn draft_of(r: &Rule) -> RuleDraft {
    RuleDraft {
        match_string: r.match_string.clone(),
        trap_oid: r.trap_oid.clone(),
        syslog_severity: r.syslog_severity,
        match_type: r.match_type,
        priority: r.priority,
        prod_handling: r.prod_handling.clone(),
        dev_handling: r.dev_handling.clone(),
        team_assignment: r.team_assignment.clone(),
        is_active: r.is_active,
        flap_threshold: r.flap_threshold,
        flap_window_secs: r.flap_window_secs,
    }
}

/// The path's rule id (a struct, so that a non-integer id is a 400 naming `id`).
#[derive(Deserialize)]
pub(super) struct RuleId {
    id: i32,
}

fn rule_not_found() -> ApiError {
    ApiError::not_found("Rule not found")
}

#[utoipa::path(get, path = "/api/v2/rules", tag = "rules", responses((status = 200, body = RuleList), (status = 401, body = ErrorBody)))]
pub(super) async fn list_rules(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let rules = state.store.list_rules().await;
    state.metrics.db_query("get_rules", started);
    let result = rules.map(|rules| Json(json!({"rules": rules}))).map_err(ApiError::from);
    state.metrics.api("rules", started, &result);
    result
}

#[utoipa::path(get, path = "/api/v2/rules/{id}", tag = "rules", params(("id" = i32, Path, description = "Rule id")), responses((status = 200, body = RuleSchema), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_rule(
    State(state): State<Arc<WebState>>,
    ApiPath(RuleId { id }): ApiPath<RuleId>,
) -> Result<Json<Value>, ApiError> {
    let rule = state.store.get_rule(id).await?.ok_or_else(rule_not_found)?;
    Ok(Json(json!(rule)))
}

#[utoipa::path(post, path = "/api/v2/rules", tag = "rules", request_body = RuleCreate, responses((status = 201, body = Created), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn create_rule(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = async {
        // The draft read from the object itself (not a flattened struct), so that a missing or
        // wrongly typed field is named; `reason` is for the audit only.
        let draft: RuleDraft = parse_json(Value::Object(body.clone()).to_string().as_bytes())?;
        let reason = body.get("reason").and_then(Value::as_str).map(str::to_owned);
        // Parsed here, not only in the store, so that the answer names the field at fault.
        let id = create(&state, &caller, &draft.parse()?, reason).await?;
        Ok((StatusCode::CREATED, Json(json!({"id": id, "message": "Rule created successfully"}))))
    }
    .await;
    state.metrics.api("rules", started, &result);
    result
}

/// Stores a new rule, writes its config-audit row and tells the alerters (the API's POST and
/// the console's form).
pub(crate) async fn create(
    state: &WebState,
    caller: &Caller,
    rule: &ValidRule,
    reason: Option<String>,
) -> Result<i32, ApiError> {
    let id = state.store.create_rule(rule).await?;
    let change = Change {
        operation: "CREATE",
        table_name: "alert_rules",
        record_id: id,
        old_values: None,
        new_values: Some(json!(rule)),
        reason,
    };
    caller.record_rules_change(state, change).await;
    Ok(id)
}

/// Replaces rule `id` with `rule`; the config-audit row holds the old and new values of
/// `fields` (those the caller supplied). The rule as it was; 404 when there is none.
pub(crate) async fn replace(
    state: &WebState,
    caller: &Caller,
    id: i32,
    rule: &ValidRule,
    fields: &[String],
    reason: Option<String>,
) -> Result<Rule, ApiError> {
    let old = state.store.replace_rule(id, rule).await?.ok_or_else(rule_not_found)?;
    let (old_json, new_json) = (json!(old), json!(rule));
    let pick = |v: &Value| -> Value { fields.iter().map(|k| (k.clone(), v[k].clone())).collect::<Map<_, _>>().into() };
    let change = Change {
        operation: "UPDATE",
        table_name: "alert_rules",
        record_id: id,
        old_values: Some(pick(&old_json)),
        new_values: Some(pick(&new_json)),
        reason,
    };
    caller.record_rules_change(state, change).await;
    Ok(old)
}

/// The supplied rule fields of an update body, checked for type by merging them into the
/// rule's current draft; `reason` is kept apart.
fn merge_patch(current: &RuleDraft, patch: &Map<String, Value>) -> Result<(RuleDraft, Map<String, Value>), ApiError> {
    let supplied: Map<String, Value> =
        patch.iter().filter(|(k, _)| RULE_FIELDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    if supplied.is_empty() {
        return Err(ApiError::bad_request("No fields to update"));
    }
    let mut merged = match json!(current) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    merged.extend(supplied.clone());
    let draft: RuleDraft = parse_json(Value::Object(merged).to_string().as_bytes())?;
    Ok((draft, supplied))
}

#[utoipa::path(put, path = "/api/v2/rules/{id}", tag = "rules", params(("id" = i32, Path, description = "Rule id")), request_body = RuleUpdate, responses((status = 200, description = "Updated: message and the rule", body = AnyObject), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn update_rule(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(RuleId { id }): ApiPath<RuleId>,
    ApiJson(patch): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let current = state.store.get_rule(id).await?.ok_or_else(rule_not_found)?;
    let (draft, supplied) = merge_patch(&draft_of(&current), &patch)?;
    let rule = draft.parse()?;
    let reason = patch.get("reason").and_then(Value::as_str).map(str::to_owned);
    let fields: Vec<String> = supplied.keys().cloned().collect();
    replace(&state, &caller, id, &rule, &fields, reason).await?;
    Ok(Json(json!({"message": "Rule updated successfully", "rule": rule.to_rule(id)})))
}

#[derive(Deserialize)]
pub(super) struct DeleteParams {
    #[serde(default)]
    deactivate: bool,
}

/// `DELETE /rules/{id}`: the optional body `{"reason": …}` goes to the audit.
#[utoipa::path(delete, path = "/api/v2/rules/{id}", tag = "rules", params(("id" = i32, Path, description = "Rule id"), ("deactivate" = Option<bool>, Query, description = "Deactivate instead of deleting")), request_body(content = ReasonBody, description = "Optional"), responses((status = 200, body = MessageBody), (status = 400, description = "Bad input, naming the field", body = ErrorBody), (status = 401, description = "No valid key", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Audit rows reference the rule", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn delete_rule(
    State(state): State<Arc<WebState>>,
    caller: Caller,
    ApiPath(RuleId { id }): ApiPath<RuleId>,
    ApiQuery(params): ApiQuery<DeleteParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let reason = optional_reason(&headers, body)?;
    if params.deactivate {
        deactivate(&state, &caller, id, reason).await?;
        return Ok(Json(json!({"message": "Rule deactivated successfully"})));
    }
    match state.store.delete_rule(id).await? {
        RuleDeletion::NotFound => Err(rule_not_found()),
        RuleDeletion::Referenced(n) => {
            Err(ApiError::conflict("Rule is referenced by audit history; deactivate it instead (?deactivate=true)")
                .with("audit_events", n))
        }
        RuleDeletion::Deleted(old) => {
            let old_values = Some(json!(draft_of(&old)));
            let change = Change {
                operation: "DELETE",
                table_name: "alert_rules",
                record_id: id,
                old_values,
                new_values: None,
                reason,
            };
            caller.record_rules_change(&state, change).await;
            Ok(Json(json!({"message": "Rule deleted successfully"})))
        }
    }
}

/// Sets rule `id` inactive (kept for the audit rows that name it), audited and announced.
pub(crate) async fn deactivate(
    state: &WebState,
    caller: &Caller,
    id: i32,
    reason: Option<String>,
) -> Result<(), ApiError> {
    let current = state.store.get_rule(id).await?.ok_or_else(rule_not_found)?;
    let mut draft = draft_of(&current);
    draft.is_active = false;
    state.store.replace_rule(id, &draft).await?.ok_or_else(rule_not_found)?;
    let change = Change {
        operation: "UPDATE",
        table_name: "alert_rules",
        record_id: id,
        old_values: Some(json!({"is_active": current.is_active})),
        new_values: Some(json!({"is_active": false})),
        reason,
    };
    caller.record_rules_change(state, change).await;
    Ok(())
}

/// The `reason` of an optional JSON body (`DELETE` may carry one); no body is no reason.
pub(super) fn optional_reason(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !crate::extract::is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a JSON body with Content-Type: application/json",
        ));
    }
    #[derive(Deserialize)]
    struct Body {
        reason: Option<String>,
    }
    let b: Body = parse_json(&body)?;
    Ok(b.reason)
}

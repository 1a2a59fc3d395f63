//! v2-only helpers for rule authors and operators:
//! - `POST /rules/test`: which rule would handle an example event, on a production and a
//!   development host, and why each earlier rule did not match ([`mutt_core::rule::tester`],
//!   against the stored rules and hosts, after the ingestor's normalisation);
//! - `POST /rules/validate`: whether a rule draft would be accepted, without storing it.
//!
//! (`GET /events/{event_id}` is in `events.rs`.)

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::{ApiJson, parse_json};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use mutt_core::rule::RuleDraft;
use mutt_core::{Event, RuleSet};
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/rules/test", post(test_rule)).route("/rules/validate", post(validate_rule))
}

/// `{"event": {...}}` or the event itself.
#[utoipa::path(post, path = "/api/v2/rules/test", tag = "rules", request_body = AnyObject,
    responses((status = 200, description = "The matched rule, handling and the rules skipped, with why", body = AnyObject),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn test_rule(
    State(state): State<Arc<WebState>>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let event = example_event(body)?;
    let rules = RuleSet::compile(state.store.load_rules().await?);
    Ok(Json(json!(mutt_core::rule::tester::test_event(&rules, &event))))
}

/// An example event (`{"event": {...}}` or the event itself) as the alerter would see it:
/// normalised as the ingestor does; refused (naming `event`) where the ingestor would refuse
/// it. The API's tester and the console's.
pub(crate) fn example_event(body: Map<String, Value>) -> Result<Event, ApiError> {
    let mut fields = match body.get("event") {
        Some(Value::Object(e)) => e.clone(),
        Some(_) => return Err(ApiError::invalid_field("event", "event must be a JSON object")),
        None => body,
    };
    mutt_core::normalize::normalize(&mut fields, chrono::Utc::now())
        .map_err(|e| ApiError::invalid_field("event", format!("the ingestor would refuse this event: {e}")))?;
    Event::from_value(Value::Object(fields)).map_err(|e| ApiError::invalid_field("event", e.to_string()))
}

#[utoipa::path(post, path = "/api/v2/rules/validate", tag = "rules", request_body = RuleCreate,
    responses((status = 200, description = "valid: true, or valid: false with the error and field", body = AnyObject),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(super) async fn validate_rule(ApiJson(body): ApiJson<Map<String, Value>>) -> Result<Json<Value>, ApiError> {
    // A body that is not a draft at all (a missing or wrongly typed field) is a 400, as on
    // create; a draft the parser refuses is an answer, not an error.
    let draft: RuleDraft = parse_json(Value::Object(body).to_string().as_bytes())?;
    Ok(Json(match draft.parse() {
        Ok(rule) => json!({"valid": true, "rule": rule}),
        Err(e) => json!({"valid": false, "error": e.to_string(), "field": e.field()}),
    }))
}

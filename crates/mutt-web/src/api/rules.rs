//! `/rules`: the alert rules, listed and created.

use super::ApiRouter;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use mutt_core::rule::RuleDraft;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/rules", get(list_rules).post(create_rule))
}

async fn list_rules(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let rules = state.store.list_rules().await;
    state.metrics.db_query("get_rules", started);
    let result = rules.map(|rules| Json(json!({"rules": rules}))).map_err(ApiError::from);
    state.metrics.api("rules", started, &result);
    result
}

async fn create_rule(
    State(state): State<Arc<WebState>>,
    ApiJson(draft): ApiJson<RuleDraft>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = async {
        // Parsed here, not only in the store, so that the answer names the field at fault.
        let rule = draft.parse()?;
        let id = state.store.create_rule(&rule).await?;
        Ok((StatusCode::CREATED, Json(json!({"id": id}))))
    }
    .await;
    state.metrics.api("rules", started, &result);
    result
}

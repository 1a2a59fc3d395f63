//! `/rules`: the alert rules, listed and created.

use super::ApiRouter;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use mutt_store::NewRule;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/rules", get(list_rules).post(create_rule))
}

async fn list_rules(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let rules = state.store.list_rules().await?;
    Ok(Json(json!({"rules": rules})))
}

async fn create_rule(
    State(state): State<Arc<WebState>>,
    ApiJson(rule): ApiJson<NewRule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = state.store.create_rule(&rule).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

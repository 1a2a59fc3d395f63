//! `GET /api/v2/status`: the pipeline at a glance: queue, DLQ and delayed-retry depths, the
//! workers' processing lists with whether their heartbeat is alive, and the forwarder's
//! circuit breaker.

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// The forwarder's shared breaker (`mutt_forwarder::admission::BREAKER`; this crate does not
/// depend on the forwarder).
pub(crate) const BREAKER: &str = "moogsoft";

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/status", get(status))
}

#[utoipa::path(get, path = "/api/v2/status", tag = "operations", responses((status = 200, description = "Queue, DLQ and delayed depths, workers, breaker", body = AnyObject), (status = 401, body = ErrorBody)))]
pub(super) async fn status(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let s = state.queue.status().await?;
    let (breaker, failures) = state.coordination.breaker_state(BREAKER).await?;
    Ok(Json(json!({
        "queues": s.queues,
        "dead_letter_queues": s.dead_letter_queues,
        "delayed_retries": s.delayed_retries,
        "workers": s.processing_lists,
        "circuit_breaker": {"name": BREAKER, "state": breaker.as_str(), "consecutive_failures": failures},
    })))
}

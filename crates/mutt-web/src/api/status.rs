//! `GET /api/v2/status`: the pipeline at a glance: queue, DLQ and delayed-retry depths, the
//! workers (alerters and forwarders) with what they hold and how old their heartbeat is, and
//! the forwarder's circuit breaker.

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use mutt_queue::ProcessingList;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The forwarder's shared breaker (`mutt_forwarder::admission::BREAKER`; this crate does not
/// depend on the forwarder).
pub(crate) const BREAKER: &str = "moogsoft";

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/status", get(status))
}

#[utoipa::path(get, path = "/api/v2/status", tag = "operations", responses((status = 200, description = "queues, dead_letter_queues, delayed_retries (name, depth); workers (name, role, pod, depth held, alive, heartbeat_age_secs, heartbeat_expires_in_secs); circuit_breaker (name, state, consecutive_failures)", body = AnyObject), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn status(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let s = state.queue.status().await?;
    let (breaker, failures) = state.coordination.breaker_state(BREAKER).await?;
    let ttl = state.config.heartbeat_ttl;
    let workers: Vec<Value> = s.processing_lists.iter().map(|p| worker(p, ttl)).collect();
    Ok(Json(json!({
        "queues": s.queues,
        "dead_letter_queues": s.dead_letter_queues,
        "delayed_retries": s.delayed_retries,
        "workers": workers,
        "circuit_breaker": {"name": BREAKER, "state": breaker.as_str(), "consecutive_failures": failures},
    })))
}

/// One worker: its in-flight messages and its heartbeat's age, dated from what is left of the
/// heartbeat (`[worker] heartbeat_ttl_secs` minus the time left); null without a heartbeat.
fn worker(p: &ProcessingList, ttl: Duration) -> Value {
    let left = p.heartbeat_expires_in_ms.map(Duration::from_millis);
    let secs = |d: Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
    json!({
        "name": p.name,
        "role": p.role,
        "pod": p.pod,
        // Messages it holds (its processing list).
        "depth": p.depth,
        "alive": p.alive,
        "heartbeat_age_secs": left.map(|l| secs(ttl.saturating_sub(l))),
        "heartbeat_expires_in_secs": left.map(secs),
    })
}

//! `GET /slo` (spec §6.7): the SLO report of [`mutt_slo`], measured where the web role was
//! told to ([`crate::WebConfig::slo`]: a Prometheus, or the roles' `/metrics`), with the
//! windows and thresholds of the `slo_<name>_…` dynamic keys. Both shapes of the original
//! in one object (`slos`, and `window_hours` + `components`).

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use mutt_core::slo::DEFINITIONS;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/slo", get(slo))
}

#[utoipa::path(get, path = "/api/v2/slo", tag = "operations", responses((status = 200, description = "The SLO report", body = AnyObject), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn slo(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    let result = report(&state).await;
    state.metrics.api("slo", started, &result);
    result
}

async fn report(state: &WebState) -> Result<Json<Value>, ApiError> {
    let Some(source) = &state.config.slo else {
        return Err(ApiError::unavailable("no SLO source is configured ([slo] prometheus_url or metrics_urls)"));
    };
    let keys: Vec<String> = DEFINITIONS.iter().flat_map(|d| d.keys()).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Unreadable dynamic configuration: the definitions' windows and thresholds apply.
    let dynamic: BTreeMap<String, String> = match state.coordination.config_values(&refs).await {
        Ok(values) => keys.iter().zip(values).filter_map(|(k, v)| Some((k.clone(), v?))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "SLO report with the definitions' thresholds: dynamic configuration unreadable");
            BTreeMap::new()
        }
    };
    let report = mutt_slo::report(&state.http, source, &dynamic).await;
    Ok(Json(json!(report)))
}

//! `/health`, `/live` and `/metrics`, served by every role.

use crate::Metrics;
use async_trait::async_trait;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// The readiness of one role, with per-dependency detail.
#[derive(Clone, Debug)]
pub struct HealthReport {
    pub healthy: bool,
    pub body: Value,
}

#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    async fn check(&self) -> HealthReport;
}

/// Routes for `/health` (readiness: 200 or 503 with JSON), `/live` (the process answers) and
/// `/metrics` (Prometheus text).
pub fn routes(metrics: Metrics, health: Arc<dyn HealthCheck>) -> Router {
    Router::new()
        .route(
            "/health",
            get(move || {
                let health = health.clone();
                async move {
                    let report = health.check().await;
                    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, axum::Json(report.body)).into_response()
                }
            }),
        )
        .route("/live", get(|| async { axum::Json(json!({"status": "alive"})) }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics_response(&metrics) }
            }),
        )
}

fn metrics_response(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
        .into_response()
}

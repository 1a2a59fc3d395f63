//! `/health`, `/live` and `/metrics`, served by every role.

use crate::Metrics;
use crate::auth::KeyName;
use async_trait::async_trait;
use axum::Extension;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// The readiness of one role, with per-dependency detail.
#[derive(Clone, Debug)]
pub struct HealthReport {
    pub healthy: bool,
    /// With each failed check's error text: for callers with a key, and the log.
    pub body: Value,
    /// The same without error texts (a failed check says [`crate::health::REDACTED`]): what
    /// `/health` answers a caller without a key.
    pub public: Value,
}

#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    async fn check(&self) -> HealthReport;
}

/// Routes for `/health` (readiness: 200 or 503 with JSON), `/live` (the process answers) and
/// `/metrics` (Prometheus text).
pub fn routes(metrics: Metrics, health: Arc<dyn HealthCheck>) -> Router {
    probe_routes(health).route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let metrics = metrics.clone();
            async move { metrics_response(&metrics, &headers) }
        }),
    )
}

/// `/health` and `/live` alone: the original's separate probe ports (`HEALTH_PORT_ALERTER`,
/// `HEALTH_PORT_MOOG`), where existing Kubernetes probes point.
///
/// `/health` shows error texts only to a request that carries a valid API key (the role's gate
/// marks it with [`KeyName`]); others get [`HealthReport::public`]. A failing report is logged
/// with its error texts.
pub fn probe_routes(health: Arc<dyn HealthCheck>) -> Router {
    Router::new()
        .route(
            "/health",
            get(move |key: Option<Extension<KeyName>>| {
                let health = health.clone();
                async move {
                    let report = health.check().await;
                    let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    if !report.healthy {
                        tracing::warn!(health = %report.body, "health check failed");
                    }
                    let body = if key.is_some() { report.body } else { report.public };
                    (status, axum::Json(body)).into_response()
                }
            }),
        )
        .route("/live", get(|| async { axum::Json(json!({"status": "alive"})) }))
}

/// OpenMetrics for a client that asks for it (Prometheus does); otherwise text format 0.0.4,
/// as the original served (`curl`, `promtool check metrics`).
fn metrics_response(metrics: &Metrics, headers: &HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.encode_text()).into_response()
    }
}

//! The ingestor: `POST /ingest` (and the `/api/v2/ingest`, `/api/v1/ingest` aliases) in front
//! of the ingest queue.
//!
//! Layout, in the order a request meets it (spec §2.2):
//! - [`auth`]: correlation id, then the API-key gate (constant-time, several keys allowed);
//! - [`body`]: reading the body (size limit) and parsing it as one object, a JSON array or
//!   NDJSON, with a reason for every bad element;
//! - [`handler`]: required fields, reserved fields, backpressure, enqueue, the response;
//! - [`metrics`]: the original's `mutt_ingest_*` metrics.

pub mod auth;
pub mod body;
pub mod handler;
pub mod metrics;

use axum::Router;
use axum::routing::{get, post};
use mutt_core::Secret;
use mutt_queue::{Coordination, Queue};
use mutt_service::{HealthCheck, HealthReport};
use serde_json::json;
use std::sync::Arc;

pub use metrics::IngestMetrics;

/// Settings of the ingest API.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Accepted `X-API-KEY` values. Empty only when `auth_disabled` is set.
    pub api_keys: Vec<Secret>,
    /// Turns the key check off (an explicit choice; never the default).
    pub auth_disabled: bool,
    /// Fields every event must carry with a non-empty value.
    pub required_fields: Vec<String>,
    /// Backpressure: at this ingest-queue depth requests get 503.
    pub max_queue_size: u64,
    /// Largest accepted body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most events in one batch; more get 413.
    pub max_batch_events: usize,
    /// Requests admitted per window across all ingestors (the original: 1000 per 60 s);
    /// `None` turns the limit off.
    pub rate_limit: Option<RateLimit>,
    /// Map textual severities to `syslog_severity`, normalise timestamps, refuse wrong types.
    pub normalize: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub window: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            auth_disabled: false,
            required_fields: vec!["hostname".into(), "message".into(), "timestamp".into()],
            max_queue_size: 1_000_000,
            max_body_bytes: 5 * 1024 * 1024,
            max_batch_events: 10_000,
            rate_limit: Some(RateLimit { limit: 1000, window: std::time::Duration::from_secs(60) }),
            normalize: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestSetupError {
    #[error("no ingest API key is configured (set INGEST_API_KEY or INGEST_API_KEY_FILE, or disable auth explicitly)")]
    NoApiKey,
}

/// Everything a request handler needs.
pub struct IngestState {
    pub(crate) queue: Arc<dyn Queue>,
    /// The shared ingest rate limit.
    pub(crate) coordination: Arc<dyn Coordination>,
    pub(crate) config: IngestConfig,
    pub(crate) metrics: IngestMetrics,
}

/// Builds the ingest API's router (ops routes included).
pub fn router(
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    config: IngestConfig,
    metrics: mutt_service::Metrics,
) -> Result<Router, IngestSetupError> {
    if config.api_keys.iter().all(Secret::is_empty) && !config.auth_disabled {
        return Err(IngestSetupError::NoApiKey);
    }
    let ingest_metrics = IngestMetrics::register(&metrics);
    let state = Arc::new(IngestState { queue: queue.clone(), coordination, config, metrics: ingest_metrics });
    let api = Router::new()
        .route("/ingest", post(handler::ingest))
        .route("/api/v2/ingest", post(handler::ingest))
        .route("/api/v1/ingest", post(handler::ingest_v1))
        .route("/admin/config", get(handler::admin_config))
        .route("/", get(handler::info))
        .with_state(state.clone());
    let ops = mutt_service::ops::routes(metrics, Arc::new(IngestHealth { queue }));
    Ok(api.merge(ops).layer(axum::middleware::from_fn_with_state(state, auth::gate)))
}

struct IngestHealth {
    queue: Arc<dyn Queue>,
}

#[async_trait::async_trait]
impl HealthCheck for IngestHealth {
    async fn check(&self) -> HealthReport {
        let base = json!({"service": "mutt-ingestor", "version": env!("CARGO_PKG_VERSION")});
        match self.queue.ping().await {
            Ok(()) => {
                HealthReport { healthy: true, body: merge(base, json!({"status": "healthy", "redis": "connected"})) }
            }
            Err(e) => HealthReport {
                healthy: false,
                body: merge(base, json!({"status": "unhealthy", "redis": "disconnected", "error": e.to_string()})),
            },
        }
    }
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

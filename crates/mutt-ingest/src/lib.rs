//! The ingestor: events in, onto the ingest queue.
//!
//! Layout:
//! - [`accept`]: [`Ingest::accept`], the one ingest step every listener calls (rate limit,
//!   required fields, normalisation, stamping, backpressure, push, counters), with a reason
//!   for every refused element;
//! - [`http`]: the HTTP listener (`POST /ingest` and its aliases): key gate, body parsing,
//!   responses in the original's shapes. Native syslog and SNMP listeners go beside it
//!   (`syslog/`, `snmp/`) and call the same step;
//! - [`dynamic`]: the settings operators change at run time (queue limit, rate limit);
//! - [`metrics`]: the original's `mutt_ingest_*` metrics;
//! - [`raw_event`]: events queued as the client wrote them, when no check would change them;
//! - `pusher`: concurrent submissions' events pushed to the queue in one call; `admit`:
//!   concurrent requests' rate-limit checks made in one call.

pub mod accept;
mod admit;
pub mod dynamic;
pub mod http;
pub mod log_limit;
pub mod metrics;
mod pusher;
pub mod rate;
pub mod raw_event;
pub mod snmp;
pub mod syslog;

use axum::Router;
use mutt_queue::{Coordination, Queue};
pub use mutt_service::auth::ApiKey;
use std::sync::Arc;

pub use accept::{Accepted, ElementRejection, Ingest, Problem, Rejection, Submission};
pub use dynamic::IngestSettings;
pub use metrics::IngestMetrics;
pub use raw_event::IngestEvent;

/// Settings of the ingest API.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Accepted `X-API-KEY` values, with their names. Empty only when `auth_disabled` is set.
    pub api_keys: Vec<ApiKey>,
    /// Per-key request limits by key name (each name's own budget, across ingestors, on top
    /// of the shared `rate_limit`); names not listed have none.
    pub key_rate_limits: std::collections::BTreeMap<String, RateLimit>,
    /// Turns the key check off (an explicit choice; never the default).
    pub auth_disabled: bool,
    /// Fields every event must carry with a non-empty value.
    pub required_fields: Vec<String>,
    /// Backpressure: at this ingest-queue depth requests get 503 (`max_ingest_queue_size` in
    /// dynamic configuration overrides it).
    pub max_queue_size: u64,
    /// Largest accepted body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most events in one batch; more get 413.
    pub max_batch_events: usize,
    /// Largest event as queued (JSON with the fields MUTT adds); a larger single event gets
    /// 413, a larger element of a batch a 400 naming it.
    pub max_event_bytes: usize,
    /// Requests admitted per window across all ingestors (the original: 1000 per 60 s;
    /// `ingest_max_rate` / `ingest_rate_window` override the numbers); `None` turns it off.
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
            key_rate_limits: std::collections::BTreeMap::new(),
            auth_disabled: false,
            required_fields: vec!["hostname".into(), "message".into(), "timestamp".into()],
            max_queue_size: 1_000_000,
            max_body_bytes: 5 * 1024 * 1024,
            max_batch_events: 10_000,
            // Room for a 64 KiB syslog frame with its parsed fields; an alerter batch of 100
            // such events stays far below what one Redis command may carry.
            max_event_bytes: 256 * 1024,
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

/// Builds the ingest API's router (ops routes included).
pub fn router(
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    config: IngestConfig,
    metrics: mutt_service::Metrics,
) -> Result<Router, IngestSetupError> {
    service(queue, coordination, config, metrics).map(|(_, router)| router)
}

/// The router and the [`Ingest`] step behind it, for native listeners (SNMP, syslog) to share:
/// one set of `mutt_ingest_*` metrics, one rate limit and queue limit.
pub fn service(
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    config: IngestConfig,
    metrics: mutt_service::Metrics,
) -> Result<(Ingest, Router), IngestSetupError> {
    if config.api_keys.iter().all(ApiKey::is_empty) && !config.auth_disabled {
        return Err(IngestSetupError::NoApiKey);
    }
    let ingest = Ingest::new(queue.clone(), coordination, config, IngestMetrics::register(&metrics));
    let health = mutt_service::Health::new("mutt-ingestor").style(mutt_service::HealthStyle::FieldsAndError).check(
        "redis",
        queue,
        |q| async move { q.ping().await },
    );
    let ops = mutt_service::ops::routes(metrics, Arc::new(health));
    let router = http::routes(ingest.clone())
        .merge(ops)
        .layer(axum::middleware::from_fn_with_state(ingest.clone(), http::auth::gate));
    Ok((ingest, router))
}

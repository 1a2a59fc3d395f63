//! The web role: the management API (`/api/v1`, `/api/v2`), the operator's console (`ui/`)
//! and the ops endpoints.
//!
//! Where things go:
//! - [`router`] (this file): assembles everything; the state handlers share is [`WebState`].
//! - `api`: one module per resource (`api/rules.rs`: `/rules`), mounted under both
//!   `/api/v1` and `/api/v2` by `api::routes`; a new endpoint is a handler in its resource's
//!   module (or a new module listed in `api/mod.rs`).
//! - [`auth`]: the API-key gate on every API route (`X-API-KEY` or `?api_key=`, compared
//!   by the check the ingestor uses too, [`mutt_service::auth::key_matches`]).
//! - [`error`]: [`ApiError`], the only way a handler fails, and the only place an error (store,
//!   queue, axum's rejections, unknown route) becomes a JSON response with its status.
//! - [`extract`]: [`ApiJson`], [`ApiQuery`], [`ApiPath`]: axum's extractors with JSON errors
//!   naming the wrong input; handlers use these, never `axum::Json` as an input.
//! - `docs`: `/api/docs`, the OpenAPI viewer from vendored assets (no key).
//! - [`timestamps`]: RFC 3339 or the original's RFC 1123 in answers.
//! - `ui`: the console's pages, templates and vendored assets (its module doc says how to add
//!   a page).
//! - [`metrics`]: the original's `mutt_webui_*` metrics.
//! - `health`: what `/health` checks. `/health`, `/live`, `/metrics` are public (no key),
//!   served by [`mutt_service::ops`].

mod api;
pub mod auth;
mod docs;
pub mod error;
pub mod extract;
mod health;
pub mod metrics;
pub mod timestamps;
mod ui;

pub use api::{CURRENT_VERSION, CorrelationId, SUPPORTED_VERSIONS};
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use metrics::WebMetrics;
pub use timestamps::TimestampFormat;
pub use ui::{ServedOverTls, served_over_tls};

use axum::Router;
use mutt_queue::{Coordination, Queue};
pub use mutt_service::auth::{ApiKey, KeyName};
use mutt_store::Store;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Accepted keys with their names (`WEBUI_API_KEY=name:key,...`).
    pub api_keys: Vec<ApiKey>,
    /// Where `/slo` measures (`None`: the route answers 503).
    pub slo: Option<mutt_slo::SloSource>,
    /// How the API writes timestamps (`[web] timestamp_format`).
    pub timestamp_format: TimestampFormat,
    /// How long `/api/v*/metrics` answers from its cache (`METRICS_CACHE_TTL`, 5 s; zero: no
    /// cache).
    pub metrics_cache_ttl: std::time::Duration,
    /// The workers' heartbeat lifetime (`[worker] heartbeat_ttl_secs`): `/status` dates a
    /// heartbeat from what is left of it.
    pub heartbeat_ttl: std::time::Duration,
    /// How long forwarders remember a delivered id (`[forwarder] dedup_ttl_secs`): `/events`
    /// dates a delivery from when the record expires.
    pub dedup_ttl: std::time::Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            slo: None,
            timestamp_format: TimestampFormat::default(),
            metrics_cache_ttl: std::time::Duration::from_secs(5),
            heartbeat_ttl: std::time::Duration::from_secs(30),
            dedup_ttl: std::time::Duration::from_secs(3600),
        }
    }
}

/// What every handler may use.
pub struct WebState {
    pub store: Arc<dyn Store>,
    /// Queue depths and the dead letters.
    pub queue: Arc<dyn Queue>,
    /// Dynamic configuration, and telling the alerters to reload.
    pub coordination: Arc<dyn Coordination>,
    pub config: WebConfig,
    /// The keys accepted now (`config.api_keys` until the secret is rotated).
    pub api_keys: auth::ApiKeys,
    pub metrics: WebMetrics,
    /// The ingest-rate answer of `/api/v*/metrics` for `config.metrics_cache_ttl`.
    pub(crate) rates_cache: metrics::RatesCache,
    /// For the SLO report's requests.
    pub http: reqwest::Client,
    /// The console's sessions.
    pub(crate) ui: ui::UiState,
}

/// [`router`] was given no non-empty key.
#[derive(Debug, thiserror::Error)]
#[error("no WEBUI_API_KEY is configured; the management API has no default key")]
pub struct NoApiKey;

/// The web role's router. Refuses to build without a non-empty API key: the management API
/// has no default key.
pub fn router(
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    config: WebConfig,
    metrics: mutt_service::Metrics,
) -> Result<Router, NoApiKey> {
    service(queue, coordination, store, config, metrics).map(|(_, router)| router)
}

/// [`router`], with the holder of its accepted keys: [`auth::ApiKeys::set`] replaces them
/// while it serves (a rotated `WEBUI_API_KEY`).
pub fn service(
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    config: WebConfig,
    metrics: mutt_service::Metrics,
) -> Result<(auth::ApiKeys, Router), NoApiKey> {
    if config.api_keys.iter().all(ApiKey::is_empty) {
        return Err(NoApiKey);
    }
    let api_keys = auth::ApiKeys::new(config.api_keys.clone());
    let state = Arc::new(WebState {
        store: store.clone(),
        queue: queue.clone(),
        coordination,
        config,
        api_keys: api_keys.clone(),
        metrics: WebMetrics::register(&metrics),
        rates_cache: metrics::RatesCache::default(),
        // The SLO report's requests; the per-request timeout is the original's 5 s.
        http: reqwest::Client::builder().timeout(mutt_slo::REQUEST_TIMEOUT).build().unwrap_or_default(),
        ui: ui::UiState::default(),
    });
    // `route_layer`: the key is checked only on a route that exists, so an unknown path is a
    // 404 with or without a key.
    let api = api::routes()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), timestamps::layer));
    let ops = mutt_service::ops::routes(metrics, Arc::new(health::health(queue, store)))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::identify));
    let router = Router::new()
        .merge(api)
        .merge(api::public())
        .merge(docs::routes())
        .merge(ui::routes(state.clone()))
        .with_state(state)
        .merge(ops)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn(api::version_headers));
    Ok((api_keys, router))
}

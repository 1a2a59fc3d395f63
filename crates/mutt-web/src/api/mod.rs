//! The management API's routes. Every resource is a module with a `routes()` that uses paths
//! relative to the version prefix (`/rules`); [`routes`] mounts the same set under `/api/v1`
//! and `/api/v2`, so both versions answer identically. A route only in v2 goes in
//! [`v2_only`]; a route without the key (`/version`) in [`public`].
//!
//! - `version`: negotiation, the version and correlation headers, `/version`;
//! - `caller`: who made a request (the key's name) and the config-audit row of a change;
//! - `paging`: `page`/`limit`/`pagination` and time bounds of the searches;
//! - `rules`, `hosts` (`/dev-hosts`, `/teams`), `config`, `audit` (`/audit`, `/config-audit`,
//!   `/audit-logs`): the resources; `dlq` and `status`: v2 only.

mod audit;
pub(crate) mod caller;
pub(crate) mod config;
pub(crate) mod dlq;
pub(crate) mod events;
pub(crate) mod hosts;
mod openapi;
pub(crate) mod paging;
pub(crate) mod rates;
pub(crate) mod rules;
pub(crate) mod silences;
mod slo;
pub(crate) mod status;
pub(crate) mod tester;
mod version;

pub(crate) use version::headers as version_headers;
pub use version::{CURRENT_VERSION, CorrelationId, SUPPORTED_VERSIONS};

use crate::WebState;
use axum::Router;
use std::sync::Arc;

pub(crate) type ApiRouter = Router<Arc<WebState>>;

/// The routes both versions serve behind the key.
fn common() -> ApiRouter {
    Router::new()
        .merge(rules::routes())
        .merge(hosts::routes())
        .merge(config::routes())
        .merge(audit::routes())
        .merge(slo::routes())
        .merge(rates::routes())
}

/// Routes beyond the original's API.
fn v2_only() -> ApiRouter {
    Router::new()
        .merge(dlq::routes())
        .merge(status::routes())
        .merge(tester::routes())
        .merge(events::routes())
        .merge(silences::routes())
}

/// Routes behind the key.
pub(crate) fn routes() -> ApiRouter {
    Router::new().nest("/api/v1", common()).nest("/api/v2", common().merge(v2_only()))
}

/// Routes without the key (spec §6.1: `/version`).
pub(crate) fn public() -> ApiRouter {
    Router::new().nest("/api/v1", version::routes()).nest("/api/v2", version::routes().merge(openapi::routes()))
}

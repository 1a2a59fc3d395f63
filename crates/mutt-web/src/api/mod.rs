//! The management API's routes. Every resource is a module with a `routes()` that uses paths
//! relative to the version prefix (`/rules`); [`routes`] mounts the same set under `/api/v1`
//! and `/api/v2`, so both versions answer identically. A route only in v2 goes in
//! [`v2_only`].

mod rules;

use crate::WebState;
use axum::Router;
use std::sync::Arc;

pub(crate) type ApiRouter = Router<Arc<WebState>>;

/// The routes both versions serve.
fn common() -> ApiRouter {
    Router::new().merge(rules::routes())
}

/// Routes beyond the original's API (none yet).
fn v2_only() -> ApiRouter {
    Router::new()
}

pub(crate) fn routes() -> ApiRouter {
    Router::new().nest("/api/v1", common()).nest("/api/v2", common().merge(v2_only()))
}

//! The HTTP listener: `POST /ingest` (and the `/api/v2/ingest`, `/api/v1/ingest` aliases).
//!
//! In the order a request meets it (spec §2.2): [`auth`] (correlation id, then the API-key
//! gate), [`handler`] (reads the body within the size limit), [`body`] (one object, a JSON
//! array or NDJSON, with a reason for every bad element), then [`crate::Ingest`], and
//! [`response`] maps the outcome to the original's JSON bodies.

pub mod auth;
pub mod body;
pub mod handler;
pub mod key_rate;
pub mod response;

use crate::Ingest;
use axum::Router;
use axum::routing::{get, post};

/// The ingest routes, behind the key gate (ops routes are merged by the caller, inside it).
pub fn routes(ingest: Ingest) -> Router {
    Router::new()
        .route("/ingest", post(handler::ingest))
        .route("/api/v2/ingest", post(handler::ingest))
        .route("/api/v1/ingest", post(handler::ingest_v1))
        .route("/admin/config", get(handler::admin_config))
        .route("/", get(handler::info))
        .with_state(ingest)
}

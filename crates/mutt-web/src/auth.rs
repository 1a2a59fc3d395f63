//! The API-key gate of the management API: `X-API-KEY`, or `?api_key=` as the original Web UI
//! accepted, compared with [`mutt_service::auth::key_matches`] (the ingestor's check).

use crate::WebState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub const API_KEY_HEADER: &str = "x-api-key";
pub const API_KEY_PARAM: &str = "api_key";

/// The key the client sent: the header, else the query parameter (taken verbatim, as today).
fn given_key(req: &Request) -> Option<&[u8]> {
    if let Some(v) = req.headers().get(API_KEY_HEADER) {
        return Some(v.as_bytes());
    }
    req.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| kv.strip_prefix(API_KEY_PARAM).and_then(|r| r.strip_prefix('=')).map(str::as_bytes))
    })
}

/// Middleware on every API route: 401 unless the request carries a configured key.
pub(crate) async fn require_key(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let given = given_key(&req).unwrap_or_default();
    if given.is_empty() || !mutt_service::auth::key_matches(given, &state.config.api_keys) {
        tracing::warn!(path = %req.uri().path(), "rejected management API request without a valid API key");
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

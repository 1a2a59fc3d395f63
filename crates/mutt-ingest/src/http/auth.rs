//! The first two steps of every request: the correlation id, then the API-key gate.

use super::response::error_response;
use crate::Ingest;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const API_KEY_HEADER: &str = "x-api-key";

/// The request's correlation id (client's `X-Correlation-ID`, or a new UUIDv7).
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

/// Paths anyone may read (as the original: health, metrics, info; plus `/live`).
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/live" | "/metrics" | "/")
}

/// A client-supplied id is used verbatim when it is short printable text; anything else is
/// replaced, so that ids stay safe to log and to store.
fn correlation_id(req: &Request) -> String {
    req.headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Runs before routing, so unknown paths without a key also get 401 (as the original).
pub async fn gate(State(ingest): State<Ingest>, mut req: Request, next: Next) -> Response {
    let cid = correlation_id(&req);
    req.extensions_mut().insert(CorrelationId(cid.clone()));
    let public = is_public(req.uri().path());
    if !public && !ingest.config().auth_disabled {
        let given = req.headers().get(API_KEY_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if given.is_empty() || !mutt_service::auth::key_matches(given, &ingest.config().api_keys) {
            ingest.metrics().request("fail", "auth");
            tracing::warn!(correlation_id = %cid, path = %req.uri().path(), "rejected request without a valid API key");
            return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", &cid, None);
        }
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}

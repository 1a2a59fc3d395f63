//! The first two steps of every request: the correlation id, then the API-key gate.

use super::response::error_response;
use crate::Ingest;
use crate::metrics::KeyRequestLabels;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
pub use mutt_service::auth::KeyName;
use std::sync::Arc;
use tracing::Instrument;

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

/// Runs before routing, so unknown paths without a key also get 401 (as the original). An
/// admitted request carries its key's name ([`KeyName`]) and runs in a span naming it, so its
/// log lines say which key sent it; its outcome is counted by key name.
pub async fn gate(State(ingest): State<Ingest>, mut req: Request, next: Next) -> Response {
    let cid = correlation_id(&req);
    req.extensions_mut().insert(CorrelationId(cid.clone()));
    let public = is_public(req.uri().path());
    let mut resp = if public || ingest.config().auth_disabled {
        // A public path (e.g. /health) shows more to a caller with a valid key.
        let given = req.headers().get(API_KEY_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if let Some(k) = mutt_service::auth::find_key(given, &ingest.api_keys()).filter(|_| !given.is_empty()) {
            let name = k.name_arc();
            req.extensions_mut().insert(KeyName(name));
        }
        next.run(req).await
    } else {
        match check_key(&ingest, &req, &cid) {
            Ok(name) => admitted(&ingest, name, &cid, req, next).await,
            Err(resp) => *resp,
        }
    };
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}

/// The name of the configured key the request carries, or the 401 answer.
fn check_key(ingest: &Ingest, req: &Request, cid: &str) -> Result<Arc<str>, Box<Response>> {
    let given = req.headers().get(API_KEY_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    match mutt_service::auth::find_key(given, &ingest.api_keys()) {
        Some(k) if !given.is_empty() => Ok(k.name_arc()),
        _ => {
            ingest.metrics().request("fail", "auth");
            tracing::warn!(correlation_id = %cid, path = %req.uri().path(), "rejected request without a valid API key");
            Err(Box::new(error_response(StatusCode::UNAUTHORIZED, "Unauthorized", cid, None)))
        }
    }
}

/// A request with a valid key: its key's own rate limit, then the handler inside a span that
/// names the key.
async fn admitted(ingest: &Ingest, name: Arc<str>, cid: &str, mut req: Request, next: Next) -> Response {
    let span = tracing::info_span!("ingest_request", key = %name, correlation_id = %cid);
    let resp = async {
        if let Err(r) = super::key_rate::admit(ingest, &name, cid).await {
            return super::response::rejected(r, false, cid);
        }
        tracing::debug!(path = %req.uri().path(), "request admitted");
        req.extensions_mut().insert(KeyName(name.clone()));
        next.run(req).await
    }
    .instrument(span)
    .await;
    let status = if resp.status().is_success() { "success" } else { "fail" };
    ingest.metrics().key_requests.get_or_create(&KeyRequestLabels { key: name.to_string(), status }).inc();
    resp
}

//! The API-key gate of the management API: `X-API-KEY`, or `?api_key=` (percent-decoded) as
//! the original Web UI accepted, compared with [`mutt_service::auth::find_key`] (constant time,
//! the ingestor's check).

use crate::WebState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mutt_service::auth::ApiKey;
pub use mutt_service::auth::KeyName;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use tracing::Instrument;

pub const API_KEY_HEADER: &str = "x-api-key";
pub const API_KEY_PARAM: &str = "api_key";

/// The accepted keys: `WebConfig::api_keys` at start, replaced whole when the secret is
/// rotated (a request checks against one consistent list, never a half-swapped one).
#[derive(Clone, Debug, Default)]
pub struct ApiKeys(Arc<RwLock<Arc<Vec<ApiKey>>>>);

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(keys))))
    }

    /// The keys accepted now.
    pub fn get(&self) -> Arc<Vec<ApiKey>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Accepts `keys` from now on, and no other. A list without a non-empty key is ignored
    /// (the management API has no default key; the old keys stay).
    pub fn set(&self, keys: Vec<ApiKey>) -> bool {
        if keys.iter().all(ApiKey::is_empty) {
            return false;
        }
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        true
    }
}

/// The key the client sent: the header, else the `api_key` query parameter, percent-decoded
/// (`%2B`, `%25`, `%26` for a key with `+`, `%` or `&`; a `+` is a space, as in any query).
/// A raw value that differs from its decoding is tried too, so that a key with a literal `+`
/// pasted into a URL by hand, which the original took verbatim, still works.
fn given_keys(req: &Request) -> Vec<Cow<'_, [u8]>> {
    if let Some(v) = req.headers().get(API_KEY_HEADER) {
        return vec![Cow::Borrowed(v.as_bytes())];
    }
    let Some(query) = req.uri().query() else {
        return Vec::new();
    };
    let Some(raw) = query.split('&').find_map(|kv| kv.strip_prefix(API_KEY_PARAM)?.strip_prefix('=')) else {
        return Vec::new();
    };
    let decoded: Vec<u8> = form_urlencoded::parse(format!("k={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    if decoded == raw.as_bytes() {
        vec![Cow::Borrowed(raw.as_bytes())]
    } else {
        vec![Cow::Owned(decoded), Cow::Borrowed(raw.as_bytes())]
    }
}

/// The configured key the request carries, if any: every candidate compared in constant time
/// against every key ([`mutt_service::auth::find_key`]); an empty value never matches.
fn carried_key(req: &Request, keys: &[ApiKey]) -> Option<Arc<str>> {
    let mut found = None;
    for given in given_keys(req) {
        if let Some(k) = mutt_service::auth::find_key(&given, keys).filter(|_| !given.is_empty()) {
            found.get_or_insert_with(|| k.name_arc());
        }
    }
    found
}

/// Middleware on every API route: 401 unless the request carries a configured key. The key's
/// name goes with the request as a [`KeyName`] extension (handlers put it in the audit's
/// `changed_by`, [`changed_by`]) and names it in the span of the request's log lines.
pub(crate) async fn require_key(State(state): State<Arc<WebState>>, mut req: Request, next: Next) -> Response {
    let keys = state.api_keys.get();
    let name = match carried_key(&req, &keys) {
        Some(name) => name,
        None => {
            tracing::warn!(path = %req.uri().path(), "rejected management API request without a valid API key");
            let id = req.extensions().get::<crate::CorrelationId>().map(|c| c.0.clone()).unwrap_or_default();
            return ApiError::unauthorized().with("correlation_id", id).into_response();
        }
    };
    let span = tracing::info_span!("api_request", key = %name);
    req.extensions_mut().insert(KeyName(name.clone()));
    let resp = next.run(req).instrument(span).await;
    let status = if resp.status().is_client_error() || resp.status().is_server_error() { "error" } else { "success" };
    state.metrics.key_requests.get_or_create(&crate::metrics::KeyLabels { key: name.to_string(), status }).inc();
    resp
}

/// Middleware on the public routes (`/health`): marks a request that carries a valid key with
/// its [`KeyName`] (it then sees error details), lets every request through.
pub(crate) async fn identify(State(state): State<Arc<WebState>>, mut req: Request, next: Next) -> Response {
    let keys = state.api_keys.get();
    if let Some(name) = carried_key(&req, &keys) {
        req.extensions_mut().insert(KeyName(name));
    }
    next.run(req).await
}

/// The `changed_by` of a configuration change made over the API: `webui_api:<key name>` (the
/// original wrote the first 8 characters of the key itself there).
pub fn changed_by(key: &KeyName) -> String {
    format!("webui_api:{}", key.0)
}

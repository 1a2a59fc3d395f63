//! The management API (`/api/v1`, `/api/v2`): for now the alert rules, listed and created.
//! Every route but `/health`, `/live`, `/metrics` needs `X-API-KEY` (or `?api_key=`, as the
//! original Web UI accepted) matching `WEBUI_API_KEY`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mutt_core::Secret;
use mutt_queue::Queue;
use mutt_service::{HealthCheck, HealthReport};
use mutt_store::{NewRule, Store, StoreError};
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Clone, Debug)]
pub struct WebConfig {
    pub api_keys: Vec<Secret>,
}

struct WebState {
    store: Arc<dyn Store>,
    config: WebConfig,
}

#[derive(Debug)]
pub struct NoApiKey;

impl std::fmt::Display for NoApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no WEBUI_API_KEY is configured; the management API has no default key")
    }
}

impl std::error::Error for NoApiKey {}

pub fn router(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    config: WebConfig,
    metrics: mutt_service::Metrics,
) -> Result<Router, NoApiKey> {
    if config.api_keys.iter().all(Secret::is_empty) {
        return Err(NoApiKey);
    }
    let state = Arc::new(WebState { store: store.clone(), config });
    let api = Router::new()
        .route("/api/v1/rules", get(list_rules).post(create_rule))
        .route("/api/v2/rules", get(list_rules).post(create_rule))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_key))
        .with_state(state);
    let ops = mutt_service::ops::routes(metrics, Arc::new(WebHealth { queue, store }));
    Ok(api.merge(ops))
}

async fn require_key(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let from_header = req.headers().get("x-api-key").map(|v| v.as_bytes().to_vec());
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api_key=").map(|v| v.as_bytes().to_vec())));
    let given = from_header.or(from_query).unwrap_or_default();
    let mut ok = subtle::Choice::from(0u8);
    for k in &state.config.api_keys {
        if !k.is_empty() {
            ok |= given.as_slice().ct_eq(k.expose().as_bytes());
        }
    }
    if given.is_empty() || !bool::from(ok) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Unauthorized"}))).into_response();
    }
    next.run(req).await
}

fn store_error(e: StoreError) -> Response {
    let status = match e {
        StoreError::Rejected(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, axum::Json(json!({"error": e.to_string()}))).into_response()
}

async fn list_rules(State(state): State<Arc<WebState>>) -> Response {
    match state.store.list_rules().await {
        Ok(rules) => axum::Json(json!({"rules": rules})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn create_rule(State(state): State<Arc<WebState>>, body: axum::body::Bytes) -> Response {
    let rule: NewRule = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": format!("invalid rule: {e}")})))
                .into_response();
        }
    };
    match state.store.create_rule(&rule).await {
        Ok(id) => (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response(),
        Err(e) => store_error(e),
    }
}

struct WebHealth {
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl HealthCheck for WebHealth {
    async fn check(&self) -> HealthReport {
        let redis = self.queue.ping().await.err().map(|e| e.to_string());
        let db = self.store.ping().await.err().map(|e| e.to_string());
        let healthy = redis.is_none() && db.is_none();
        HealthReport {
            healthy,
            body: json!({
                "status": if healthy { "healthy" } else { "unhealthy" },
                "service": "mutt-web",
                "version": env!("CARGO_PKG_VERSION"),
                "redis": redis.unwrap_or_else(|| "connected".into()),
                "database": db.unwrap_or_else(|| "connected".into()),
            }),
        }
    }
}

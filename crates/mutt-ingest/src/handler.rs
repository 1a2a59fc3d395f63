//! The ingest handler: body → events → checks → backpressure → enqueue (spec §2.2–2.3).

use crate::IngestState;
use crate::auth::CorrelationId;
use crate::body::{self, BodyError};
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mutt_core::EventId;
use mutt_core::event::{CORRELATION_ID, EVENT_ID, is_truthy};
use mutt_queue::RateDecision;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// An error body of the original's shape: `{"status":"error","message":…,"correlation_id":…}`
/// plus optional extra fields.
pub fn error_response(status: StatusCode, message: &str, cid: &str, extra: Option<Value>) -> Response {
    let mut body = json!({"status": "error", "message": message, "correlation_id": cid});
    if let (Some(obj), Some(Value::Object(extra))) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    (status, axum::Json(body)).into_response()
}

pub async fn ingest(
    State(state): State<Arc<IngestState>>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = handle(&state, &cid.0, &headers, body).await;
    state.metrics.latency.observe(started.elapsed().as_secs_f64());
    response
}

/// `/api/v1/ingest`: the deprecated alias; same behaviour plus `X-API-Deprecated: true`.
pub async fn ingest_v1(
    state: State<Arc<IngestState>>,
    cid: Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut r = ingest(state, cid, headers, body).await;
    r.headers_mut().insert("x-api-deprecated", HeaderValue::from_static("true"));
    r
}

async fn handle(state: &IngestState, cid: &str, headers: &HeaderMap, body: Body) -> Response {
    // Rate limit before parsing (as the original: malformed requests use budget too). Fails
    // open: an unreachable Redis makes the enqueue fail with 503 anyway.
    if let Some(rl) = state.config.rate_limit {
        match state.coordination.rate_limit("ingestor", rl.limit, rl.window).await {
            Ok(RateDecision::Allowed) => {}
            Ok(RateDecision::Limited { retry_after }) => {
                state.metrics.request("fail", "rate_limit");
                state.metrics.rate_limit_hits.inc();
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let mut r = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests - rate limit exceeded",
                    cid,
                    Some(json!({"retry_after": secs})),
                );
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return r;
            }
            Err(e) => tracing::warn!(error = %e, "rate limiter unavailable; allowing the request"),
        }
    }
    let limit = state.config.max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(state, cid, limit);
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let over = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"));
            if over || e.to_string().contains("length limit") {
                return too_large(state, cid, limit);
            }
            state.metrics.request("fail", "json");
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON: could not read body: {e}"),
                cid,
                None,
            );
        }
    };

    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let parsed = body::format_from_content_type(content_type).and_then(|f| body::parse(&bytes, f));
    let parsed = match parsed {
        Ok(p) => p,
        Err(BodyError::Invalid(msg)) => {
            state.metrics.request("fail", "json");
            return error_response(StatusCode::BAD_REQUEST, &format!("Invalid JSON: {msg}"), cid, None);
        }
        Err(BodyError::BadElements(bad)) => {
            state.metrics.request("fail", "json");
            return batch_rejected(cid, bad, None);
        }
    };

    let mut parsed = parsed;
    if parsed.events.len() > state.config.max_batch_events {
        state.metrics.request("fail", "too_large");
        let msg = format!(
            "Payload Too Large: {} events in one batch, at most {}",
            parsed.events.len(),
            state.config.max_batch_events
        );
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, &msg, cid, None);
    }

    // Required fields, per event; a batch is accepted or rejected whole.
    let required = &state.config.required_fields;
    let mut missing_by_index = Vec::new();
    for (i, ev) in parsed.events.iter().enumerate() {
        let missing: Vec<&str> =
            required.iter().filter(|f| !ev.get(f.as_str()).is_some_and(is_truthy)).map(String::as_str).collect();
        if !missing.is_empty() {
            missing_by_index.push((i, python_list(&missing)));
        }
    }
    if !missing_by_index.is_empty() {
        state.metrics.request("fail", "validation");
        if !parsed.batch {
            let msg = format!("Missing required fields: {}", missing_by_index[0].1);
            return error_response(StatusCode::BAD_REQUEST, &msg, cid, None);
        }
        let bad = missing_by_index
            .into_iter()
            .map(|(i, list)| (i, format!("missing or empty required fields: {list}")))
            .collect();
        return batch_rejected(cid, bad, None);
    }

    if state.config.normalize {
        let now = chrono::Utc::now();
        let mut bad = Vec::new();
        for (i, ev) in parsed.events.iter_mut().enumerate() {
            if let Err(reason) = mutt_core::normalize::normalize(ev, now) {
                bad.push((i, reason));
            }
        }
        if !bad.is_empty() {
            state.metrics.request("fail", "validation");
            if !parsed.batch {
                return error_response(StatusCode::BAD_REQUEST, &format!("Invalid event: {}", bad[0].1), cid, None);
            }
            return batch_rejected(cid, bad, None);
        }
    }

    let count = parsed.events.len();
    let mut messages = Vec::with_capacity(count);
    for mut ev in parsed.events {
        stamp(&mut ev, cid);
        // Serialising a map of JSON values cannot fail.
        messages.push(serde_json::to_vec(&ev).unwrap_or_default());
    }

    // Backpressure (not atomic with the push; concurrent requests may overshoot slightly).
    let limit = state.config.max_queue_size;
    match state.queue.depth(mutt_queue::QueueId::Ingest).await {
        Ok(depth) => {
            state.metrics.queue_depth.set(depth as i64);
            if depth >= limit {
                state.metrics.request("fail", "queue_full");
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable - queue full",
                    cid,
                    Some(json!({"queue_depth": depth, "queue_limit": limit})),
                );
            }
        }
        Err(e) => return redis_unavailable(state, cid, &e),
    }

    match state.queue.push_ingest(&messages, chrono::Utc::now()).await {
        Ok(depth) => {
            state.metrics.request("success", "");
            state.metrics.events.inc_by(count as u64);
            state.metrics.queue_depth.set(depth as i64);
            let mut body = json!({"status": "queued", "correlation_id": cid, "queue_depth": depth});
            if parsed.batch {
                body["count"] = json!(count);
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => redis_unavailable(state, cid, &e),
    }
}

/// Adds the reserved fields; a client-supplied `_correlation_id` is overwritten (as the
/// original), a client's `_event_id` too, since ids must be unique.
fn stamp(ev: &mut Map<String, Value>, cid: &str) {
    ev.insert(CORRELATION_ID.into(), Value::from(cid));
    ev.insert(EVENT_ID.into(), Value::from(EventId::new().to_string()));
}

fn too_large(state: &IngestState, cid: &str, limit: usize) -> Response {
    state.metrics.request("fail", "too_large");
    error_response(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", cid, Some(json!({"limit_bytes": limit})))
}

fn redis_unavailable(state: &IngestState, cid: &str, e: &mutt_queue::QueueError) -> Response {
    // The original's wording for Redis (clients may match on it); other backends say which.
    let (reason, message) = match e.backend() {
        "redis" => ("redis", "Service Unavailable - Redis error".to_owned()),
        other => ("queue", format!("Service Unavailable - queue error ({other})")),
    };
    state.metrics.request("fail", reason);
    tracing::error!(correlation_id = %cid, error = %e, "could not queue events");
    error_response(StatusCode::SERVICE_UNAVAILABLE, &message, cid, None)
}

fn batch_rejected(cid: &str, bad: Vec<(usize, String)>, _total: Option<usize>) -> Response {
    let errors: Vec<Value> = bad.iter().map(|(i, r)| json!({"index": i, "reason": r})).collect();
    let msg = format!("Invalid batch: {} element(s) rejected; nothing was queued", errors.len());
    error_response(StatusCode::BAD_REQUEST, &msg, cid, Some(json!({"errors": errors})))
}

/// `['a', 'b']`, the original's (Python) rendering of the missing-field list.
fn python_list(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", inner.join(", "))
}

pub async fn info() -> Response {
    axum::Json(json!({
        "service": "MUTT Ingestor Service",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Accepts events (one JSON object, a JSON array, or NDJSON) and queues them for the alerter",
        "endpoints": {"ingest": "POST /ingest", "health": "GET /health", "metrics": "GET /metrics", "info": "GET /"}
    }))
    .into_response()
}

/// The ingest settings, with secrets left out (only how many keys are configured).
pub async fn admin_config(State(state): State<Arc<IngestState>>) -> Response {
    let c = &state.config;
    axum::Json(json!({
        "dynamic_config_enabled": false,
        "static": {
            "api_keys_configured": c.api_keys.iter().filter(|k| !k.is_empty()).count(),
            "auth_disabled": c.auth_disabled,
            "required_fields": c.required_fields,
            "max_ingest_queue_size": c.max_queue_size,
            "max_ingest_body_bytes": c.max_body_bytes,
        },
        "dynamic": {}
    }))
    .into_response()
}

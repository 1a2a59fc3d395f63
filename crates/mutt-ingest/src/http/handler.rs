//! `POST /ingest`: read the body, parse it, hand it to [`crate::Ingest`], answer.

use super::auth::CorrelationId;
use super::body::{self, BodyError, Parsed};
use super::response::{self, error_response};
use crate::accept::Submission;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

use crate::Ingest;

pub async fn ingest(
    State(ingest): State<Ingest>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = handle(&ingest, &cid.0, &headers, body).await;
    ingest.metrics().latency.observe(started.elapsed().as_secs_f64());
    response
}

/// `/api/v1/ingest`: the deprecated alias; same behaviour plus `X-API-Deprecated: true`.
pub async fn ingest_v1(
    state: State<Ingest>,
    cid: Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut r = ingest(state, cid, headers, body).await;
    r.headers_mut().insert("x-api-deprecated", HeaderValue::from_static("true"));
    r
}

async fn handle(ingest: &Ingest, cid: &str, headers: &HeaderMap, body: Body) -> Response {
    // Rate limit before reading the body, as the original: malformed requests use budget too.
    if let Err(r) = ingest.admit(cid).await {
        return response::rejected(r, false, cid);
    }
    let parsed = match read(ingest, cid, headers, body).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let batch = parsed.batch;
    let submission = Submission { events: parsed.events, batch, correlation_id: cid.to_owned() };
    match ingest.accept_admitted(submission).await {
        Ok(a) => response::accepted(a, batch, cid),
        Err(r) => response::rejected(r, batch, cid),
    }
}

/// The body within the size limit, parsed as one object, an array or NDJSON.
async fn read(ingest: &Ingest, cid: &str, headers: &HeaderMap, body: Body) -> Result<Parsed, Response> {
    let limit = ingest.config().max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(ingest, cid, limit));
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let over = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"));
            if over || e.to_string().contains("length limit") {
                return Err(too_large(ingest, cid, limit));
            }
            if mutt_service::http::is_body_timeout(&e) {
                return Err(body_timeout(ingest, cid, &e));
            }
            ingest.metrics().request("fail", "json");
            let msg = format!("Invalid JSON: could not read body: {e}");
            refused(cid, "json", &msg);
            return Err(error_response(StatusCode::BAD_REQUEST, &msg, cid, None));
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let max = ingest.config().max_batch_events;
    let parsed = body::format_from_content_type(content_type).and_then(|f| body::parse(&bytes, f, max));
    match parsed {
        Ok(p) if p.total > max => Err(too_many(ingest, cid, p.total, max)),
        Ok(p) => Ok(p),
        Err(e) => Err(unreadable(ingest, cid, e)),
    }
}

/// A body that is not JSON, or a batch with elements that are not objects.
fn unreadable(ingest: &Ingest, cid: &str, e: BodyError) -> Response {
    ingest.metrics().request("fail", "json");
    match e {
        BodyError::Invalid(msg) => {
            let msg = format!("Invalid JSON: {msg}");
            refused(cid, "json", &msg);
            error_response(StatusCode::BAD_REQUEST, &msg, cid, None)
        }
        BodyError::BadElements(bad) => {
            let first = bad.listed.first().map(|(i, r)| format!("element {i}: {r}")).unwrap_or_default();
            refused(cid, "json", &format!("{} element(s) unreadable; {first}", bad.total));
            response::batch_rejected(cid, bad)
        }
    }
}

/// The log line of a body refused before its events were read (the same message as
/// [`crate::Ingest`]'s refusals, which come later, with the events counted).
fn refused(cid: &str, reason: &str, detail: &str) {
    let detail = mutt_core::text::truncate_utf8(detail, 200);
    tracing::info!(correlation_id = cid, reason, detail, "events refused");
}

/// More events than `max_batch_events` (counted while parsing, so only that many were kept).
fn too_many(ingest: &Ingest, cid: &str, count: usize, max: usize) -> Response {
    ingest.metrics().request("fail", "too_large");
    let r = crate::Rejection::TooManyEvents { count, max };
    refused(cid, "too_large", &r.to_string());
    response::rejected(r, true, cid)
}

/// The client did not send its body within the body-read timeout.
fn body_timeout(ingest: &Ingest, cid: &str, e: &axum::Error) -> Response {
    ingest.metrics().request("fail", "timeout");
    let msg = format!("Request Timeout: {e}");
    refused(cid, "timeout", &msg);
    error_response(StatusCode::REQUEST_TIMEOUT, &msg, cid, None)
}

fn too_large(ingest: &Ingest, cid: &str, limit: usize) -> Response {
    ingest.metrics().request("fail", "too_large");
    refused(cid, "too_large", &format!("body larger than {limit} bytes"));
    error_response(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", cid, Some(json!({"limit_bytes": limit})))
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
pub async fn admin_config(State(ingest): State<Ingest>) -> Response {
    let c = ingest.config();
    let d = ingest.settings().await;
    axum::Json(json!({
        "dynamic_config_enabled": true,
        "static": {
            "api_keys_configured": c.api_keys.iter().filter(|k| !k.is_empty()).count(),
            "auth_disabled": c.auth_disabled,
            "required_fields": c.required_fields,
            "max_ingest_queue_size": c.max_queue_size,
            "max_ingest_body_bytes": c.max_body_bytes,
        },
        // The values in force (`mutt:config:*` over the static ones).
        "dynamic": {
            "max_ingest_queue_size": d.max_queue_size,
            "ingest_max_rate": d.rate_limit.map(|r| r.limit),
            "ingest_rate_window": d.rate_limit.map(|r| r.window.as_secs()),
        }
    }))
    .into_response()
}

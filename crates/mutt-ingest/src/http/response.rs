//! Ingest outcomes as HTTP responses, in the original's shapes (spec §2.3):
//! `{"status":"error","message":…,"correlation_id":…}` plus extra fields.

use super::body::ElementErrors;
use crate::accept::{Accepted, ElementRejection, Problem, Rejection, python_list};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error body of the original's shape plus optional extra fields.
pub fn error_response(status: StatusCode, message: &str, cid: &str, extra: Option<Value>) -> Response {
    let mut body = json!({"status": "error", "message": message, "correlation_id": cid});
    if let (Some(obj), Some(Value::Object(extra))) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    (status, axum::Json(body)).into_response()
}

/// `200 {"status":"queued",…}`; a batch also gets its `count`.
pub fn accepted(a: Accepted, batch: bool, cid: &str) -> Response {
    let body =
        Queued { correlation_id: cid, count: batch.then_some(a.count), queue_depth: a.queue_depth, status: "queued" };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The success body, written without building a JSON map first (it is every request's answer);
/// fields in the order a map of them had (alphabetical), so the bytes are the same.
#[derive(serde::Serialize)]
struct Queued<'a> {
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    queue_depth: u64,
    status: &'static str,
}

/// A refusal of [`crate::Ingest`] as the original answered it.
pub fn rejected(r: Rejection, batch: bool, cid: &str) -> Response {
    match r {
        Rejection::RateLimited { retry_after } => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests - rate limit exceeded",
                cid,
                Some(json!({"retry_after": secs})),
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Rejection::TooManyEvents { count, max } => {
            let msg = format!("Payload Too Large: {count} events in one batch, at most {max}");
            error_response(StatusCode::PAYLOAD_TOO_LARGE, &msg, cid, None)
        }
        Rejection::Invalid(elements) if !batch => single_invalid(elements, cid),
        Rejection::Invalid(elements) => {
            let mut errors = ElementErrors::default();
            for e in elements {
                errors.push(e.index, || e.problem.to_string());
            }
            batch_rejected(cid, errors)
        }
        Rejection::QueueFull { depth, limit } => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable - queue full",
            cid,
            Some(json!({"queue_depth": depth, "queue_limit": limit})),
        ),
        Rejection::Unavailable(e) => {
            // Logged with the correlation id by `Ingest` (every listener's refusals are).
            // The original's wording for Redis (clients may match on it); other backends say which.
            let message = match e.backend() {
                "redis" => "Service Unavailable - Redis error".to_owned(),
                other => format!("Service Unavailable - queue error ({other})"),
            };
            error_response(StatusCode::SERVICE_UNAVAILABLE, &message, cid, None)
        }
    }
}

/// One event: the original's messages (`Missing required fields: ['a']`).
fn single_invalid(elements: Vec<ElementRejection>, cid: &str) -> Response {
    let msg = match elements.into_iter().next().map(|e| e.problem) {
        Some(Problem::MissingFields(fields)) => format!("Missing required fields: {}", python_list(&fields)),
        Some(Problem::Invalid(reason)) => format!("Invalid event: {reason}"),
        Some(Problem::TooLarge { size, limit }) => {
            let msg = format!("Payload Too Large: the event is {size} bytes, at most {limit} bytes per event");
            let extra = json!({"limit_bytes": limit, "event_bytes": size});
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &msg, cid, Some(extra));
        }
        None => "Invalid event".to_owned(),
    };
    error_response(StatusCode::BAD_REQUEST, &msg, cid, None)
}

/// A batch with bad elements: nothing was queued; the index and reason of the first
/// [`MAX_LISTED_ERRORS`](super::body::MAX_LISTED_ERRORS) bad elements, and how many there were.
pub fn batch_rejected(cid: &str, bad: ElementErrors) -> Response {
    let errors: Vec<Value> = bad.listed.iter().map(|(i, r)| json!({"index": i, "reason": r})).collect();
    let msg = format!("Invalid batch: {} element(s) rejected; nothing was queued", bad.total);
    let extra = json!({"errors": errors, "error_count": bad.total, "errors_not_listed": bad.total - errors.len()});
    error_response(StatusCode::BAD_REQUEST, &msg, cid, Some(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The success body has the bytes the JSON map of it had.
    #[tokio::test]
    async fn queued_body_is_the_maps_bytes() {
        for batch in [false, true] {
            let r = accepted(Accepted { count: 3, queue_depth: 7 }, batch, "c\"1");
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            let mut map = json!({"status": "queued", "correlation_id": "c\"1", "queue_depth": 7});
            if batch {
                map["count"] = json!(3);
            }
            assert_eq!(bytes, serde_json::to_vec(&map).unwrap());
        }
    }
}

//! The one place an error becomes a response. Every handler and extractor of the crate fails
//! with an [`ApiError`], which answers `{"error": "<what went wrong>"}` plus `"field": "<which
//! input>"` when one input is at fault, with a status the client can act on: 400 bad input,
//! 401 no key, 404 unknown route or id, 405, 409 conflict, 413 too large, 415 not JSON, 503
//! the database or queue is unavailable. axum's own rejections (body, path, query) are mapped
//! here too, so no response of this crate is plain text.

use axum::Json;
use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mutt_core::RuleError;
use mutt_queue::{QueueError, QueueErrorKind};
use mutt_store::StoreError;

/// An error answer of the management API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    /// More members of the body (`audit_events` of a 409, `correlation_id` of a 401).
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, extra: serde_json::Map::new() }
    }

    /// 400 for a request that cannot be understood as a whole (malformed JSON).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 naming the input (body field, path or query parameter) that is wrong.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::bad_request(message) }
    }

    /// 401 with the original's body.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The body with one more member.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.status, self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %self.message, "management API request failed");
        }
        let mut body = self.extra;
        body.insert("error".into(), self.message.into());
        if let Some(field) = self.field {
            body.insert("field".into(), field.into());
        }
        (self.status, Json(serde_json::Value::Object(body))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::Rejected(_) => StatusCode::BAD_REQUEST,
            // Missing privileges, a missing table: the server's problem, not the request's.
            StoreError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // Unreachable database, failed migration, bad configuration: nothing the client
            // can change; the service is not able to answer now.
            StoreError::Unavailable(_) | StoreError::Migration(_) | StoreError::Config(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        Self::new(status, e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let status = match e.kind() {
            QueueErrorKind::Rejected => StatusCode::BAD_REQUEST,
            QueueErrorKind::Unavailable | QueueErrorKind::Full => StatusCode::SERVICE_UNAVAILABLE,
            QueueErrorKind::Config | QueueErrorKind::Protocol => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// A rule draft that does not parse: 400 naming the field (`match_string` for a bad regex).
impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        Self::invalid_field(e.field(), e.to_string())
    }
}

/// Reading the body failed: too large (413), not sent within the body-read timeout (408,
/// [`mutt_service::http::BodyTimeout`]) or the connection broke (400).
impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if mutt_service::http::is_body_timeout(&r) {
            return Self::new(StatusCode::REQUEST_TIMEOUT, "request body not received in time");
        }
        Self::new(r.status(), r.body_text())
    }
}

/// A path parameter of the wrong type (`/rules/abc` where an id is a number) names the
/// parameter; the rest are the route's own mistakes.
impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        let key = match &r {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                PathErrorKind::ParseErrorAtKey { key, .. }
                | PathErrorKind::DeserializeError { key, .. }
                | PathErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                _ => None,
            },
            _ => None,
        };
        match key {
            Some(key) => Self::invalid_field(key, r.body_text()),
            None => Self::new(r.status(), r.body_text()),
        }
    }
}

/// The fallback of the router: no route has this path.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The route exists but not with this method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn body(e: ApiError) -> (u16, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn field_appears_only_when_one_input_is_at_fault() {
        let (status, b) = body(ApiError::invalid_field("match_string", "bad regex")).await;
        assert_eq!(status, 400);
        assert_eq!(b, json!({"error": "bad regex", "field": "match_string"}));
        let (status, b) = body(ApiError::bad_request("malformed")).await;
        assert_eq!(status, 400);
        assert_eq!(b, json!({"error": "malformed"}));
    }

    #[test]
    fn store_errors_map_to_what_the_client_can_do() {
        assert_eq!(ApiError::from(StoreError::Rejected("x".into())).status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::from(StoreError::Failed("x".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ApiError::from(StoreError::Unavailable("x".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::from(StoreError::Migration("x".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn queue_errors_map_by_kind_not_by_backend() {
        assert_eq!(ApiError::from(QueueError::Config("x".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ApiError::from(QueueError::Protocol("x".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

//! Extractors for handlers: axum's `Json`, `Query` and `Path`, failing with an [`ApiError`]
//! that names the wrong input instead of axum's plain-text rejections (422 for a wrongly typed
//! JSON field, 400 text for a malformed body).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON request body. Needs `Content-Type: application/json` (415 otherwise); malformed JSON
/// is a 400 without a field, a value of the wrong type or a missing field a 400 naming it.
#[derive(Clone, Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let body = Bytes::from_request(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// The query string deserialized into `T`; a parameter of the wrong type or a missing one is a
/// 400 naming it.
#[derive(Clone, Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| data_error(&e.path().to_string(), &e.inner().to_string(), "query parameter"))
    }
}

/// The path parameters deserialized into `T` (`/rules/{id}`); a wrongly typed one is a 400
/// naming it.
#[derive(Clone, Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// `application/json`, with or without parameters, or any `application/*+json`.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserializes a JSON body, telling malformed JSON (400, no field) from a well-formed body
/// whose values do not fit (400 naming the field by its path, e.g. `priority` or `rules[2].id`).
/// The syntax is checked first, over the whole body, so that a broken body is reported as
/// such even when a value before the break has the wrong type.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| data_error(&e.path().to_string(), &e.inner().to_string(), "field"))
}

/// A value that does not fit: named by its path, or for a missing or unknown field (reported
/// at the enclosing object) by the name in serde's message.
fn data_error(path: &str, message: &str, what: &str) -> ApiError {
    let field = if path.is_empty() || path == "." { backquoted(message) } else { Some(path.to_owned()) };
    match field {
        Some(field) => ApiError::invalid_field(field.clone(), format!("invalid {what} `{field}`: {message}")),
        None => ApiError::bad_request(format!("invalid request: {message}")),
    }
}

/// The first `` `name` `` in a serde message ("missing field `prod_handling`").
fn backquoted(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (name, _) = rest.split_once('`')?;
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, post};
    use serde::Deserialize;
    use tower::ServiceExt;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        priority: i32,
        #[serde(default)]
        tags: Vec<Tag>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Tag {
        id: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Paging {
        limit: u32,
    }

    fn err<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ApiError {
        r.expect_err("refused")
    }

    #[test]
    fn wrong_types_name_the_field_by_its_path() {
        let e = err(parse_json::<Body>(br#"{"name": "a", "priority": "high"}"#));
        assert_eq!((e.status(), e.field()), (StatusCode::BAD_REQUEST, Some("priority")));
        let e = err(parse_json::<Body>(br#"{"name": "a", "priority": 1, "tags": [{"id": 1}, {"id": -1}]}"#));
        assert_eq!(e.field(), Some("tags[1].id"));
    }

    #[test]
    fn missing_fields_are_named() {
        let e = err(parse_json::<Body>(br#"{"name": "a"}"#));
        assert_eq!((e.status(), e.field()), (StatusCode::BAD_REQUEST, Some("priority")));
        assert!(e.message().contains("missing field"), "{e}");
    }

    #[test]
    fn malformed_json_names_no_field() {
        for body in [&b"{"[..], b"{\"name\": }", b"", b"{\"name\":\"a\",\"priority\":1} trailing", b"\xff"] {
            let e = err(parse_json::<Body>(body));
            assert_eq!((e.status(), e.field()), (StatusCode::BAD_REQUEST, None), "{body:?}");
            assert!(e.message().starts_with("malformed JSON"), "{e}");
        }
        let e = err(parse_json::<Body>(b"\"a string\""));
        assert_eq!((e.status(), e.field()), (StatusCode::BAD_REQUEST, None));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    async fn call(router: Router, req: axum::http::Request<axum::body::Body>) -> (u16, serde_json::Value) {
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    fn get_req(uri: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::get(uri).body(axum::body::Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn query_and_path_parameters_of_the_wrong_type_are_named() {
        let router = Router::new()
            .route("/q", get(|ApiQuery(p): ApiQuery<Paging>| async move { p.limit.to_string() }))
            .route("/items/{id}", get(|ApiPath(id): ApiPath<u32>| async move { id.to_string() }));
        let (status, body) = call(router.clone(), get_req("/q?limit=ten")).await;
        assert_eq!((status, body["field"].as_str()), (400, Some("limit")), "{body}");
        let (status, body) = call(router.clone(), get_req("/q")).await;
        assert_eq!((status, body["field"].as_str()), (400, Some("limit")), "{body}");
        let (status, body) = call(router.clone(), get_req("/items/abc")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("abc"), "{body}");
        let resp = router.oneshot(get_req("/items/7")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn body_without_json_content_type_is_415() {
        let router = Router::new().route("/b", post(|ApiJson(b): ApiJson<Body>| async move { b.name }));
        let req = axum::http::Request::post("/b")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(axum::body::Body::from(r#"{"name":"a","priority":1}"#))
            .unwrap();
        let (status, body) = call(router, req).await;
        assert_eq!(status, 415);
        assert!(body["error"].as_str().unwrap().contains("application/json"), "{body}");
    }
}

//! API versions (spec §6.1, §6.6): the headers every `/api/` response carries, the version a
//! client asks for, the correlation id of each request, and `GET /version` (no key).
//!
//! Negotiation: the first *supported* value among the headers `Accept-Version` and
//! `X-API-Version` and the query parameter `api_version`, else the current version. Payloads
//! never differ by version; the negotiated one is echoed in `X-API-Version` (spec §6.1 [OPEN]:
//! the original's tests expect the echo, its code always answered `2.5`).

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

pub const CURRENT_VERSION: &str = "2.5";
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2.5", "2.0", "1.0"];

/// The correlation id of a request: `X-Correlation-ID` when the client sent a usable one (1–36
/// characters of `A-Za-z0-9-_.`, what the audit column takes), else a new UUIDv4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub String);

pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

fn correlation_id(req: &Request) -> String {
    req.headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            (1..=36).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The version the client asked for (see the module doc).
pub fn negotiate(req: &Request) -> &'static str {
    let supported = |v: &str| SUPPORTED_VERSIONS.iter().copied().find(|s| *s == v.trim().trim_start_matches('v'));
    let from_header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).and_then(supported);
    let from_query = || {
        req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "api_version").and_then(|(_, v)| supported(&v))
        })
    };
    from_header("accept-version")
        .or_else(|| from_header("x-api-version"))
        .or_else(from_query)
        .unwrap_or(CURRENT_VERSION)
}

/// Outermost layer: on `/api/` paths, the correlation id (an extension, echoed in the
/// response) and the version headers, also on errors and unknown routes.
pub(crate) async fn headers(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    let version = negotiate(&req);
    let id = correlation_id(&req);
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-api-version", version);
    set("x-api-supported-versions", &SUPPORTED_VERSIONS.join(", "));
    // ADR-006 of the original: v1 is deprecated in favour of v2 (same bodies).
    if path.starts_with("/api/v1/") {
        set("x-api-deprecated", "true");
    } else if path.starts_with("/api/v2/") {
        set("x-api-deprecated", "false");
    }
    set(CORRELATION_HEADER, &id);
    resp
}

/// `GET /version`: no key (spec §6.6).
pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/version", get(version))
}

#[utoipa::path(get, path = "/api/v2/version", tag = "operations", security(()), responses((status = 200, description = "Versions", body = AnyObject)))]
pub(super) async fn version() -> Json<Value> {
    Json(json!({
        "current_version": CURRENT_VERSION,
        "default_version": CURRENT_VERSION,
        "supported_versions": SUPPORTED_VERSIONS,
        "server_version": env!("CARGO_PKG_VERSION"),
        "version_history": {
            "2.5": {"released": "2025-11-10", "status": "current", "changes": [
                "v2 aliases of every v1 route",
                "version and deprecation headers",
                "config audit API (/config-audit)",
                "forwarder circuit breaker",
                "consolidated alerts"
            ]},
            "2.0": {"released": "2025-11-10", "status": "supported", "changes": [
                "config audit logging and filters",
                "/api/v1/audit and the /audit viewer",
                "normalised metric labels",
                "SLO endpoint",
                "alerter backpressure"
            ]},
            "1.0": {"released": "2024-01-01", "status": "supported", "changes": [
                "initial API: rules CRUD, event audit logs, dashboard, dynamic config"
            ], "deprecated_in": "3.0", "removal_date": "2026-01-01"}
        }
    }))
}

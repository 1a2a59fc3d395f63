//! `/api/docs`: an interactive viewer (Swagger UI) of `/api/v2/openapi.json`, from vendored
//! assets embedded in the binary (`docs/assets/`, versions in its README): MUTT runs in
//! closed networks, so nothing is loaded from the internet. The page and its assets need no
//! key; the viewer's "Authorize" asks for the `X-API-KEY` that "Try it out" then sends.
//! Asset URLs are relative (`docs/…` from `/api/docs`), so the viewer also works behind a
//! reverse proxy that mounts muttd under a prefix.

use crate::WebState;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const INIT: &str = include_str!("assets/init.js");
const BUNDLE: &[u8] = include_bytes!("assets/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("assets/swagger-ui.css");
const LICENSE: &str = include_str!("assets/LICENSE");

/// The viewer's routes (no key).
pub(crate) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/api/docs", get(|| async { asset("text/html; charset=utf-8", INDEX.as_bytes(), false) }))
        // Relative asset URLs resolve from `/api/docs`, not from `/api/docs/`.
        .route("/api/docs/", get(|| async { Redirect::permanent("/api/docs") }))
        .route("/api/docs/init.js", get(|| async { asset("text/javascript; charset=utf-8", INIT.as_bytes(), false) }))
        .route(
            "/api/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE, true) }),
        )
        .route("/api/docs/swagger-ui.css", get(|| async { asset("text/css; charset=utf-8", CSS, true) }))
        .route("/api/docs/LICENSE", get(|| async { asset("text/plain; charset=utf-8", LICENSE.as_bytes(), true) }))
}

/// An embedded file. The vendored ones change only with the binary: browsers may keep them
/// a day; the page and its script are checked again each time.
fn asset(content_type: &'static str, body: &'static [u8], long_lived: bool) -> Response {
    let cache = if long_lived { "public, max-age=86400" } else { "no-cache" };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

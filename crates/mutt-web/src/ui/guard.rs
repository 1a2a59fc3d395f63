//! The middleware in front of the console: the original's `?api_key=` bookmarks, the session
//! every page needs, the CSRF token every state-changing request needs, and the security
//! headers of every console response.

use super::session::{self, SESSION_COOKIE, Session, Theme};
use crate::WebState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// The largest form body the CSRF check reads (bulk CSV imports included).
const FORM_LIMIT: usize = 16 * 1024 * 1024;
/// The header htmx requests carry the CSRF token in (`base.html` sets it).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// `uri` without its `api_key` parameter (path and the rest of the query).
fn without_key(uri: &Uri) -> String {
    let rest: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(k, _)| k != crate::auth::API_KEY_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if rest.is_empty() {
        return uri.path().to_string();
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish();
    format!("{}?{query}", uri.path())
}

fn query_key(uri: &Uri) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == crate::auth::API_KEY_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// Whole console: a request with `?api_key=` (the original's bookmarks) logs in with that key
/// and is redirected to the same URL without it, so the key does not stay in the address bar
/// or the history; a wrong key gets the login page with an error.
pub(crate) async fn bookmarks(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let Some(given) = query_key(req.uri()) else {
        return next.run(req).await;
    };
    let (parts, _) = req.into_parts();
    let clean = without_key(&parts.uri);
    let keys = state.api_keys.get();
    match mutt_service::auth::find_key(given.as_bytes(), &keys).filter(|_| !given.is_empty()) {
        Some(key) => {
            tracing::info!(key = %key.name(), "console login with ?api_key= (redirected to a clean URL)");
            let id = state.ui.sessions.open(key.clone());
            let cookie =
                session::set_cookie(SESSION_COOKIE, &id, "/", session::IDLE.as_secs(), session::over_tls(&parts));
            let mut resp = Redirect::to(&clean).into_response();
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp
        }
        None => {
            tracing::warn!(path = %parts.uri.path(), "console request with a wrong ?api_key=");
            super::login::form(&parts, &clean, Some("That API key is not accepted."), StatusCode::UNAUTHORIZED)
        }
    }
}

/// Where an unauthenticated request goes: the login page, then back here. htmx requests get
/// `HX-Redirect` so the whole page goes, not a fragment.
fn to_login(req: &Request) -> Response {
    let here = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target =
        format!("/login?{}", form_urlencoded::Serializer::new(String::new()).append_pair("next", here).finish());
    if req.headers().contains_key("hx-request") {
        // Not back to a fragment: the login goes to the overview.
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.headers_mut().insert("hx-redirect", HeaderValue::from_static("/login"));
        return resp;
    }
    Redirect::to(&target).into_response()
}

fn forbidden() -> Response {
    let body = "<!doctype html><title>Refused</title><p>This form has expired or did not come from this console. \
                Go back, reload the page and try again.</p><p><a href=\"/\">Overview</a></p>";
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// Whether a token in the header, the query (`?csrf=`, for multipart forms) or the
/// urlencoded form body equals `expected`; the body is read and put back.
async fn csrf_ok(req: Request, expected: &str) -> Result<Request, ()> {
    let same = |t: &str| mutt_service::auth::key_matches(t.as_bytes(), &[mutt_core::Secret::new(expected)]);
    if req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).is_some_and(same) {
        return Ok(req);
    }
    let in_query = req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()));
    if in_query.and_then(|mut q| q.find(|(k, _)| k == CSRF_FIELD)).is_some_and(|(_, v)| same(&v)) {
        return Ok(req);
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if !form {
        return Err(());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| ())?;
    let found = form_urlencoded::parse(&bytes).find(|(k, _)| k == CSRF_FIELD).is_some_and(|(_, v)| same(&v));
    if found { Ok(Request::from_parts(parts, Body::from(bytes))) } else { Err(()) }
}

/// Every page: a live session (else the login page), and on any method but GET/HEAD its CSRF
/// token (else 403). The [`Session`] goes into the request for the handler's extractor.
pub(crate) async fn require_session(State(state): State<Arc<WebState>>, mut req: Request, next: Next) -> Response {
    let id = session::cookie(req.headers(), SESSION_COOKIE).unwrap_or_default().to_string();
    let keys = state.api_keys.get();
    let Some((name, csrf)) = state.ui.sessions.lookup(&id, &keys) else {
        return to_login(&req);
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        req = match csrf_ok(req, &csrf).await {
            Ok(r) => r,
            Err(()) => {
                tracing::warn!(key = %name, "console request without a valid CSRF token refused");
                return forbidden();
            }
        };
    }
    let theme = Theme::from_headers(req.headers());
    let s = Session::new(&id, name.clone(), csrf, theme, state.clone());
    req.extensions_mut().insert(crate::KeyName(name.clone()));
    req.extensions_mut().insert(s);
    let span = tracing::info_span!("console_request", key = %name);
    tracing::Instrument::instrument(next.run(req), span).await
}

/// Every console response: not framed by other sites, no referrer leaving the console, only
/// the console's own scripts and styles (nothing is loaded from elsewhere).
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_taken_out_of_the_url_and_the_rest_kept() {
        let uri: Uri = "/rules?api_key=s3cret&q=link%20down&page=2".parse().unwrap();
        assert_eq!(query_key(&uri).as_deref(), Some("s3cret"));
        assert_eq!(without_key(&uri), "/rules?q=link+down&page=2");
        let uri: Uri = "/?api_key=s3cret".parse().unwrap();
        assert_eq!(without_key(&uri), "/");
        assert_eq!(query_key(&"/audit?page=1".parse().unwrap()), None);
    }
}

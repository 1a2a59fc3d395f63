//! `/login` (a form taking an API key, checked as the API checks `X-API-KEY`), `/logout`, and
//! `/ui/theme` (the theme toggle, a cookie; works without JavaScript).

use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE, Session, THEME_COOKIE, Theme};
use crate::WebState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    theme: Theme,
    asset_version: &'static str,
}

/// Routes reachable without a session.
pub(crate) fn public() -> Router<Arc<WebState>> {
    Router::new().route("/login", get(show).post(submit)).route("/ui/theme", get(theme))
}

/// Routes behind the session guard.
pub(crate) fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/logout", post(logout))
}

/// A path on this console to go back to: only `/...`, never `//host` or a scheme.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/",
    }
}

/// Where to go after login: a local path other than the login page itself.
fn safe_next(next: Option<&str>) -> &str {
    match local_path(next) {
        n if n.starts_with("/login") => "/",
        n => n,
    }
}

/// The login page with a fresh login CSRF token (cookie and hidden field).
pub(crate) fn form(parts: &Parts, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = session::random_token();
    let page = LoginPage {
        csrf: &token,
        next: safe_next(Some(next)),
        error,
        theme: Theme::from_headers(&parts.headers),
        asset_version: super::assets::version(),
    };
    let mut resp = super::render(&page);
    *resp.status_mut() = status;
    let cookie = session::set_cookie(LOGIN_COOKIE, &token, "/login", 3600, session::over_tls(parts));
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn show(Query(q): Query<Next>, parts: Parts) -> Response {
    form(&parts, safe_next(q.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
struct Login {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

async fn submit(State(state): State<Arc<WebState>>, parts: Parts, Form(login): Form<Login>) -> Response {
    let next = safe_next(login.next.as_deref()).to_string();
    let expected = session::cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || !mutt_service::auth::key_matches(login.csrf.as_bytes(), &[mutt_core::Secret::new(expected)])
    {
        let msg = "The login form had expired; please try again.";
        return form(&parts, &next, Some(msg), StatusCode::FORBIDDEN);
    }
    let keys = state.api_keys.get();
    let Some(key) = mutt_service::auth::find_key(login.api_key.as_bytes(), &keys).filter(|_| !login.api_key.is_empty())
    else {
        tracing::warn!("console login with a wrong API key refused");
        return form(&parts, &next, Some("That API key is not accepted."), StatusCode::UNAUTHORIZED);
    };
    tracing::info!(key = %key.name(), "console login");
    let id = state.ui.sessions.open(key.clone());
    let tls = session::over_tls(&parts);
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &id, "/", session::IDLE.as_secs(), tls));
    resp.headers_mut().append(header::SET_COOKIE, session::set_cookie(LOGIN_COOKIE, "", "/login", 0, tls));
    resp
}

async fn logout(State(state): State<Arc<WebState>>, s: Session, parts: Parts) -> Response {
    tracing::info!(key = %s.key_name, "console logout");
    state.ui.sessions.close(s.id());
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, "", "/", 0, session::over_tls(&parts)));
    resp
}

#[derive(Deserialize)]
struct ThemeChoice {
    set: Option<String>,
    next: Option<String>,
}

/// Sets (or clears, `auto`) the theme cookie and goes back: a preference, not a change of
/// MUTT's state, so a plain link (GET) without CSRF token.
async fn theme(Query(q): Query<ThemeChoice>, parts: Parts) -> Response {
    let tls = session::over_tls(&parts);
    let cookie = match q.set.as_deref() {
        Some(v @ ("dark" | "light")) => session::set_cookie(THEME_COOKIE, v, "/", 365 * 86400, tls),
        _ => session::set_cookie(THEME_COOKIE, "", "/", 0, tls),
    };
    let mut resp = Redirect::to(local_path(q.next.as_deref())).into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_next(Some("/rules?q=1")), "/rules?q=1");
        for foreign in ["//evil.example/", "/\\evil.example", "https://evil.example/", "evil", "", "/login?next=/"] {
            assert_eq!(safe_next(Some(foreign)), "/", "{foreign}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(local_path(Some("/login")), "/login", "the theme toggle may go back to the login page");
    }
}

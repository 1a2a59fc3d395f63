//! The operator's console: server-rendered pages (askama templates in `ui/templates/`, checked
//! at build time), htmx for the live parts, every asset vendored (`ui/assets/`, listed with
//! version and licence in its README; MUTT runs in closed networks). Pages call the same store
//! and queue functions as the API handlers, not the API over HTTP. Every page works without
//! JavaScript for reading.
//!
//! # Writing a page
//!
//! One module per page (`ui/rules.rs`, ...) with a `pub(crate) fn routes() ->
//! Router<Arc<WebState>>`, added with one `.merge(...)` line in [`pages`] (and a `mod` line
//! below). Its paths are top-level (`/rules`, `/rules/{id}`); the nav entries in [`NAV`] name
//! the pages' paths. Everything in [`pages`] is behind the session guard (`guard.rs`):
//!
//! - **Who:** take [`Session`] as an extractor: `key_name` (the API key's name, never the
//!   key), `csrf`, [`Session::changed_by`] for the audit (`webui_api:<name>`, as the API).
//!   Without a live session the guard sends the browser to `/login?next=<path>` (htmx
//!   requests get `HX-Redirect`).
//! - **CSRF:** every request but GET/HEAD must carry the session's token, else the guard
//!   answers 403 before the handler runs: in a form, `<input type="hidden" name="csrf"
//!   value="{{ page.csrf }}">` (urlencoded forms; a multipart form puts `?csrf={{ page.csrf }}`
//!   in its `action`); htmx requests send the `X-CSRF-Token` header, which `base.html` sets
//!   for the whole page (`hx-headers` on `<body>`). Handlers then ignore the `csrf` field
//!   (serde ignores unknown fields unless the struct denies them).
//! - **Templates:** a page template starts with `{% extends "base.html" %}`, fills `{% block
//!   content %}` (and optionally `{% block head %}`), and its struct has a field `page:`
//!   [`Page`], built by `session.page("Title", "/rules")` (the title, and the nav entry to
//!   mark current). Return it with [`render`] (HTML, `no-store`, 500 with a logged error if
//!   rendering fails). A fragment for htmx is a template without `extends`.
//! - **Messages:** after a POST, redirect (303, `Redirect::to`) and call
//!   `session.flash_ok("Rule 12 saved")` / `flash_error(..)` first: `base.html` shows them once
//!   on the next page. Validation errors next to a field: re-render the form (status 422)
//!   with a [`FieldErrors`] field, `errors.insert("regex", "...")`, and in the template
//!   `{% if let Some(e) = errors.get("regex") %}<p class="field-error" id="regex-error">{{ e
//!   }}</p>{% endif %}` with `aria-describedby="regex-error"` on the input.
//! - **Style:** `mutt.css` (`ui/assets/`) has the layout, tables (`table.data`), forms
//!   (`.field`, `.field-error`), buttons (`button`, `.button`, `.danger`), cards (`.cards`,
//!   `.card`), badges (`.badge.ok|warn|bad`), `.muted`, `.flash`; add rules there rather
//!   than `style` attributes (the CSP allows only the console's own stylesheet and scripts).
//!
//! Public routes (no session): `/login`, `/ui/theme`, `/ui/assets/<name>` ([`public`]).
//! `?api_key=` on any console URL (the original's bookmarks) logs in and redirects to the
//! same URL without it.
//!
//! Browser tests: `mutt_testkit::browser` (feature `browser`) starts headless Chromium;
//! `tests/ui_browser.rs` shows a login and screenshots into `docs/ui/`.

mod assets;
mod audit;
mod config;
mod csv;
mod dlq;
mod guard;
mod host_table;
mod hosts;
mod login;
mod overview;
mod rules;
pub mod session;
mod silences;
mod teams;
mod unhandled;

pub use session::{Flash, ServedOverTls, Session, Sessions, Theme, served_over_tls};

use crate::WebState;
use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The console's state in [`WebState`].
#[derive(Default)]
pub struct UiState {
    pub sessions: Sessions,
}

/// The navigation bar: (path, label). A page marks itself current with its path.
pub const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/rules", "Rules"),
    ("/hosts", "Hosts"),
    ("/teams", "Teams"),
    ("/audit", "Audit"),
    ("/config", "Configuration"),
    ("/dlq", "Dead letters"),
    ("/unhandled", "Unhandled"),
    ("/silences", "Silences"),
];

/// What `base.html` needs: every page template has a field `page: Page`.
pub struct Page {
    pub title: String,
    /// The [`NAV`] path marked current.
    pub nav: &'static str,
    /// The key's name, shown in the header.
    pub user: Arc<str>,
    pub csrf: Arc<str>,
    pub flashes: Vec<Flash>,
    pub theme: Theme,
    pub asset_version: &'static str,
}

impl Page {
    /// `aria-current` for the nav entry `path`.
    pub fn current(&self, path: &str) -> &'static str {
        if self.nav == path { "page" } else { "false" }
    }
}

/// Validation messages by field name, shown next to the field.
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn insert(&mut self, field: &str, message: impl Into<String>) {
        self.0.insert(field.to_string(), message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A rendered template as an HTML response (never cached: pages show live state).
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "This page could not be rendered; the log says why.").into_response()
        }
    }
}

/// The pages behind the session guard: one `.merge` per page module.
fn pages() -> Router<Arc<WebState>> {
    Router::new()
        .merge(login::routes())
        .merge(overview::routes())
        .merge(audit::routes())
        .merge(config::routes())
        .merge(dlq::routes())
        .merge(unhandled::routes())
        .merge(rules::routes())
        .merge(hosts::routes())
        .merge(teams::routes())
        .merge(silences::routes())
}

/// Reachable without a session.
fn public() -> Router<Arc<WebState>> {
    login::public().route("/ui/assets/{name}", get(assets::serve))
}

/// The console's routes, merged by `lib.rs` next to the API.
pub(crate) fn routes(state: Arc<WebState>) -> Router<Arc<WebState>> {
    let pages = pages().route_layer(from_fn_with_state(state.clone(), guard::require_session));
    Router::new()
        .merge(pages)
        .merge(public())
        .route_layer(from_fn_with_state(state, guard::bookmarks))
        .route_layer(from_fn(guard::headers))
}

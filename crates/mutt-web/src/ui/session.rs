//! The console's sessions: a random id in an HttpOnly cookie, the rest in memory here (the
//! key's name and digest, the CSRF token, the flash messages). The API key itself is never
//! kept or sent back. A session ends on logout, after [`IDLE`] without a request, when the
//! process restarts, or when its key is no longer accepted (rotated away).

use crate::WebState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use mutt_service::auth::{ApiKey, KeyName};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mutt_session";
/// The login form's own CSRF cookie (double submit: there is no session yet).
pub(crate) const LOGIN_COOKIE: &str = "mutt_login";
/// The theme preference cookie (`dark`, `light`; absent: the browser's).
pub(crate) const THEME_COOKIE: &str = "mutt_theme";
/// A session not used for this long ends.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions are kept; beyond it the one closest to expiry goes (a flood of
/// logins cannot grow memory without bound).
const MAX_SESSIONS: usize = 10_000;

/// A message shown once on the next page the session renders.
#[derive(Clone, Debug)]
pub struct Flash {
    /// `ok` or `error` (the CSS class and the ARIA role follow it).
    pub kind: &'static str,
    pub text: String,
}

struct Entry {
    key: ApiKey,
    csrf: Arc<str>,
    expires: Instant,
    flashes: Vec<Flash>,
}

/// The sessions of this process.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Entry>>);

/// 32 random bytes, hex: session ids and CSRF tokens.
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `key`; its id (the cookie's value).
    pub(crate) fn open(&self, key: ApiKey) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| e.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Entry { key, csrf: Arc::from(random_token()), expires: now + IDLE, flashes: Vec::new() },
        );
        id
    }

    /// The live session `id` whose key is still among `accepted` (its expiry moves on), as
    /// (key name, CSRF token); a dead one is dropped.
    pub(crate) fn lookup(&self, id: &str, accepted: &[ApiKey]) -> Option<(Arc<str>, Arc<str>)> {
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.get_mut(id)?;
        if entry.expires <= now || !accepted.iter().any(|k| k.same_as(&entry.key)) {
            map.remove(id);
            return None;
        }
        entry.expires = now + IDLE;
        Some((entry.key.name_arc(), entry.csrf.clone()))
    }

    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn push_flash(&self, id: &str, flash: Flash) {
        if let Some(e) = self.lock().get_mut(id) {
            e.flashes.push(flash);
        }
    }

    fn take_flashes(&self, id: &str) -> Vec<Flash> {
        self.lock().get_mut(id).map(|e| std::mem::take(&mut e.flashes)).unwrap_or_default()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Marks requests that came over TLS (muttd adds it when the web role serves HTTPS): the
/// cookies then carry `Secure`.
#[derive(Clone, Copy, Debug)]
pub struct ServedOverTls;

/// `router` served over TLS: its console cookies carry `Secure`.
pub fn served_over_tls(router: axum::Router) -> axum::Router {
    router.layer(axum::Extension(ServedOverTls))
}

/// Whether the request came over HTTPS (directly, or through a proxy that says so).
pub(crate) fn over_tls(parts: &Parts) -> bool {
    parts.extensions.get::<ServedOverTls>().is_some()
        || parts.headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` over TLS; `max_age` 0 deletes.
pub(crate) fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The logged-in operator of a console request: page handlers take it as an extractor (the
/// guard in `ui/mod.rs` has already checked the session and, on a POST, its CSRF token).
#[derive(Clone)]
pub struct Session {
    id: Arc<str>,
    /// The name of the API key the operator logged in with (never the key).
    pub key_name: Arc<str>,
    /// This session's CSRF token: every form sends it back as the hidden field `csrf`
    /// (`{{ page.csrf }}`), htmx requests as the `X-CSRF-Token` header (set in `base.html`).
    pub csrf: Arc<str>,
    pub(crate) theme: Theme,
    state: Arc<WebState>,
}

impl Session {
    pub(crate) fn new(id: &str, key_name: Arc<str>, csrf: Arc<str>, theme: Theme, state: Arc<WebState>) -> Self {
        Self { id: Arc::from(id), key_name, csrf, theme, state }
    }

    /// The key's name as the API handlers see it (`KeyName`).
    pub fn key(&self) -> KeyName {
        KeyName(self.key_name.clone())
    }

    /// The audit's `changed_by` of a change made in the console: the same as over the API
    /// with this key (`webui_api:<name>`).
    pub fn changed_by(&self) -> String {
        crate::auth::changed_by(&self.key())
    }

    /// Shows `text` as a success message on the next page rendered (after a redirect).
    pub fn flash_ok(&self, text: impl Into<String>) {
        self.state.ui.sessions.push_flash(&self.id, Flash { kind: "ok", text: text.into() });
    }

    /// Shows `text` as an error on the next page rendered.
    pub fn flash_error(&self, text: impl Into<String>) {
        self.state.ui.sessions.push_flash(&self.id, Flash { kind: "error", text: text.into() });
    }

    /// What `base.html` needs for a page titled `title` under the nav entry `nav` (its href,
    /// e.g. `"/rules"`); takes the pending flash messages.
    pub fn page(&self, title: impl Into<String>, nav: &'static str) -> super::Page {
        super::Page {
            title: title.into(),
            nav,
            user: self.key_name.clone(),
            csrf: self.csrf.clone(),
            flashes: self.state.ui.sessions.take_flashes(&self.id),
            theme: self.theme,
            asset_version: super::assets::version(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

/// The guard put the [`Session`] in the request; without one (a route outside the guard)
/// the request goes to the login page.
impl FromRequestParts<Arc<WebState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<WebState>) -> Result<Self, Response> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The colour theme: the browser's preference unless the operator chose one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Theme {
    #[default]
    Auto,
    Dark,
    Light,
}

impl Theme {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        match cookie(headers, THEME_COOKIE) {
            Some("dark") => Theme::Dark,
            Some("light") => Theme::Light,
            _ => Theme::Auto,
        }
    }

    /// The `data-theme` attribute's value (`""`: none, the CSS follows the browser).
    pub fn attr(&self) -> &'static str {
        match self {
            Theme::Auto => "",
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }

    /// What the toggle switches to next, and its label.
    pub fn next(&self) -> (&'static str, &'static str) {
        match self {
            Theme::Auto => ("dark", "Theme: auto"),
            Theme::Dark => ("light", "Theme: dark"),
            Theme::Light => ("auto", "Theme: light"),
        }
    }
}

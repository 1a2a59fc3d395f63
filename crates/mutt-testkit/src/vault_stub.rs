//! A stub of HashiCorp Vault's documented HTTP API, only the endpoints MUTT uses (Vault is not
//! installable here). It is not Vault: no storage, policies or seal; it answers as the API
//! documentation describes:
//!
//! - `POST /v1/auth/approle/login` `{"role_id","secret_id"}` → `{"auth":{"client_token",
//!   "lease_duration","renewable":true,…}}`; wrong credentials → 400 `{"errors":[…]}`.
//! - `GET /v1/<mount>/data/<path>` (KV v2 read) → `{"data":{"data":{…},"metadata":{"version"}}}`;
//!   an unknown path → 404 `{"errors":[]}`.
//! - `GET /v1/auth/token/lookup-self` → `{"data":{"ttl","renewable","expire_time",…}}`.
//! - `POST /v1/auth/token/renew-self` → `{"auth":{…,"lease_duration"}}`.
//!
//! Every call but the login needs `X-Vault-Token`; a missing, unknown or expired token gets
//! 403 `{"errors":["permission denied"]}`, as Vault answers. Tokens live `token_ttl` from the
//! login or the last renewal. The test can rotate a secret ([`VaultStub::put`] writes a new
//! version), make renewals fail ([`VaultStub::fail_renewals`]) and expire every token
//! ([`VaultStub::expire_tokens`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the stub was asked, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VaultCounts {
    pub logins: u64,
    pub failed_logins: u64,
    pub renewals: u64,
    pub failed_renewals: u64,
    pub lookups: u64,
    pub reads: u64,
    /// Calls refused for a missing, unknown or expired token.
    pub refused: u64,
}

struct Inner {
    role_id: String,
    secret_id: String,
    token_ttl: Duration,
    tokens: HashMap<String, Instant>,
    /// `(mount, path)` → versions of the secret's data, newest last.
    secrets: HashMap<(String, String), Vec<Value>>,
    fail_renewals: bool,
    counts: VaultCounts,
    next_token: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// A running stub on 127.0.0.1 (port chosen by the system); stops when dropped.
pub struct VaultStub {
    addr: std::net::SocketAddr,
    https: bool,
    /// Stops the HTTPS server's open connections too (aborting the task stops only the accepts).
    stop: tokio_util::sync::CancellationToken,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VaultStub {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// How the stub serves: plain HTTP, or HTTPS with a server certificate.
enum Scheme {
    Http,
    Https(std::sync::Arc<mutt_service::tls::ListenerTls>),
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [message] }))).into_response()
}

impl VaultStub {
    /// Starts a stub accepting AppRole `role_id`/`secret_id`, issuing tokens valid `token_ttl`.
    pub async fn start(role_id: &str, secret_id: &str, token_ttl: Duration) -> std::io::Result<Self> {
        Self::start_with(role_id, secret_id, token_ttl, Scheme::Http).await
    }

    /// [`Self::start`] over HTTPS with `certs`' server certificate (for 127.0.0.1, signed by
    /// `certs.ca`: what `VAULT_CACERT` must name).
    pub async fn start_tls(
        role_id: &str,
        secret_id: &str,
        token_ttl: Duration,
        certs: &crate::TestCertificates,
    ) -> std::io::Result<Self> {
        let files = mutt_service::tls::TlsFiles {
            cert_file: certs.cert.clone(),
            key_file: certs.key.clone(),
            client_ca_file: None,
            client_auth: mutt_service::tls::ClientAuth::None,
        };
        let tls = mutt_service::tls::ListenerTls::load("vault-stub", files).map_err(std::io::Error::other)?;
        Self::start_with(role_id, secret_id, token_ttl, Scheme::Https(tls)).await
    }

    async fn start_with(role_id: &str, secret_id: &str, token_ttl: Duration, scheme: Scheme) -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            role_id: role_id.to_owned(),
            secret_id: secret_id.to_owned(),
            token_ttl,
            tokens: HashMap::new(),
            secrets: HashMap::new(),
            fail_renewals: false,
            counts: VaultCounts::default(),
            next_token: 0,
        }));
        let app = Router::new().route("/v1/{*rest}", get(read).post(write)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let https = matches!(scheme, Scheme::Https(_));
        let stop = tokio_util::sync::CancellationToken::new();
        let serving = stop.clone();
        let task = tokio::spawn(async move {
            let _ = match scheme {
                Scheme::Http => axum::serve(listener, app).await,
                Scheme::Https(tls) => {
                    mutt_service::serve_with_tls(listener, app, serving, Default::default(), Some(tls)).await
                }
            };
        });
        Ok(Self { addr, https, stop, inner, task })
    }

    /// `http://127.0.0.1:<port>`, or `https://` from [`Self::start_tls`] (for `VAULT_ADDR`).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.addr)
    }

    /// Writes a new version of the KV v2 secret at `<mount>/data/<path>`.
    pub fn put(&self, mount: &str, path: &str, data: Value) {
        lock(&self.inner).secrets.entry((mount.to_owned(), path.to_owned())).or_default().push(data);
    }

    /// While on, `renew-self` answers 403 (as for a token past its max TTL or revoked).
    pub fn fail_renewals(&self, on: bool) {
        lock(&self.inner).fail_renewals = on;
    }

    /// Every token issued so far expires now.
    pub fn expire_tokens(&self) {
        lock(&self.inner).tokens.clear();
    }

    /// Changes the lifetime of tokens issued or renewed from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.inner).token_ttl = ttl;
    }

    pub fn counts(&self) -> VaultCounts {
        lock(&self.inner).counts
    }
}

/// The caller's token, if it is known and not expired (an expired one is forgotten).
fn check_token(inner: &mut Inner, headers: &HeaderMap) -> Option<String> {
    let token = headers.get("x-vault-token").and_then(|v| v.to_str().ok())?.to_owned();
    match inner.tokens.get(&token) {
        Some(expires) if *expires > Instant::now() => Some(token),
        Some(_) => {
            inner.tokens.remove(&token);
            None
        }
        None => None,
    }
}

fn auth_body(token: &str, ttl: Duration) -> Value {
    json!({
        "request_id": uuid::Uuid::new_v4().to_string(),
        "lease_id": "", "renewable": false, "lease_duration": 0, "data": null,
        "auth": {
            "client_token": token,
            "accessor": format!("accessor-{token}"),
            "policies": ["default", "mutt"],
            "token_policies": ["default", "mutt"],
            "lease_duration": ttl.as_secs(),
            "renewable": true,
        }
    })
}

async fn write(State(s): State<Shared>, Path(rest): Path<String>, headers: HeaderMap, body: String) -> Response {
    let mut inner = lock(&s);
    match rest.as_str() {
        "auth/approle/login" => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if v["role_id"].as_str() != Some(inner.role_id.as_str())
                || v["secret_id"].as_str() != Some(inner.secret_id.as_str())
            {
                inner.counts.failed_logins += 1;
                return error(StatusCode::BAD_REQUEST, "invalid role or secret ID");
            }
            inner.counts.logins += 1;
            inner.next_token += 1;
            let token = format!("hvs.stub{:08}{}", inner.next_token, uuid::Uuid::new_v4().simple());
            let ttl = inner.token_ttl;
            inner.tokens.insert(token.clone(), Instant::now() + ttl);
            axum::Json(auth_body(&token, ttl)).into_response()
        }
        "auth/token/renew-self" => {
            let Some(token) = check_token(&mut inner, &headers) else {
                inner.counts.refused += 1;
                return error(StatusCode::FORBIDDEN, "permission denied");
            };
            if inner.fail_renewals {
                inner.counts.failed_renewals += 1;
                return error(StatusCode::FORBIDDEN, "permission denied");
            }
            inner.counts.renewals += 1;
            let ttl = inner.token_ttl;
            inner.tokens.insert(token.clone(), Instant::now() + ttl);
            axum::Json(auth_body(&token, ttl)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "unsupported path"),
    }
}

async fn read(State(s): State<Shared>, Path(rest): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = lock(&s);
    let Some(token) = check_token(&mut inner, &headers) else {
        inner.counts.refused += 1;
        return error(StatusCode::FORBIDDEN, "permission denied");
    };
    if rest == "auth/token/lookup-self" {
        inner.counts.lookups += 1;
        let left = inner.tokens.get(&token).map_or(0, |e| e.saturating_duration_since(Instant::now()).as_secs());
        return axum::Json(json!({
            "data": { "ttl": left, "renewable": true, "policies": ["default", "mutt"], "creation_ttl": inner.token_ttl.as_secs() }
        }))
        .into_response();
    }
    let Some((mount, path)) = rest.split_once("/data/") else {
        return error(StatusCode::NOT_FOUND, "unsupported path");
    };
    inner.counts.reads += 1;
    match inner.secrets.get(&(mount.to_owned(), path.to_owned())) {
        Some(versions) if !versions.is_empty() => {
            let data = versions[versions.len() - 1].clone();
            axum::Json(json!({
                "data": { "data": data, "metadata": { "version": versions.len(), "destroyed": false, "deletion_time": "" } }
            }))
            .into_response()
        }
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({ "errors": [] }))).into_response(),
    }
}

//! The webhook sink: POSTs each request to Moogsoft (or any receiver) and classifies the
//! response. Requests of one batch go out concurrently. A REST LAM batch the receiver rejects
//! (a 4xx other than 401/403) is sent again in halves, recursively, so that only the alerts it
//! rejects on their own are dead-lettered. Redirects are followed only to the same origin
//! (scheme, host and port): anywhere else they would carry the credentials (the REST LAM token
//! travels in the body, which a 307/308 sends again).

use super::{Sent, Sink};
use crate::delivery::{Delivery, classify};
use crate::payload::{Encoder, OutputFormat};
use crate::view::AlertView;
use crate::worker::ForwarderError;
use crate::{ForwarderConfig, ForwarderMetrics, LamAuth};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use mutt_core::Secret;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How a request says who sends it.
#[derive(Clone)]
enum Auth {
    None,
    /// `Authorization: Bearer …` (the `legacy` and `generic` formats).
    Bearer(Secret),
    /// HTTP basic authentication (REST LAM `basic_auth`).
    Basic {
        user: String,
        password: Secret,
    },
    /// `"auth_token": …` in the REST LAM body.
    BodyToken(Secret),
}

impl Auth {
    fn from_config(config: &ForwarderConfig) -> Self {
        match (config.format, &config.lam_auth, &config.api_key) {
            (OutputFormat::MoogRestLam, LamAuth::Basic { user, password }, _) => {
                Auth::Basic { user: user.clone(), password: password.clone() }
            }
            (OutputFormat::MoogRestLam, LamAuth::Token(t), _) => Auth::BodyToken(t.clone()),
            (OutputFormat::MoogRestLam, LamAuth::None, _) => Auth::None,
            (_, _, Some(key)) => Auth::Bearer(key.clone()),
            _ => Auth::None,
        }
    }

    /// The same scheme with `key` as its secret (`None`: no scheme to put it in).
    fn with_secret(&self, key: Secret) -> Option<Self> {
        match self {
            Auth::None => None,
            Auth::Bearer(_) => Some(Auth::Bearer(key)),
            Auth::Basic { user, .. } => Some(Auth::Basic { user: user.clone(), password: key }),
            Auth::BodyToken(_) => Some(Auth::BodyToken(key)),
        }
    }
}

/// The webhook's credential (`MOOG_API_KEY`: the bearer key, the REST LAM token or basic-auth
/// password), replaceable while the forwarder runs: a rotated secret is used from the next
/// request on.
#[derive(Clone)]
pub struct MoogKey(Arc<RwLock<Arc<Auth>>>);

impl MoogKey {
    fn new(auth: Auth) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(auth))))
    }

    fn current(&self) -> Arc<Auth> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends `key` from the next request on, in the configured scheme. False (nothing changes)
    /// when the sink was configured without credentials: there is no scheme to put it in.
    pub fn set(&self, key: Secret) -> bool {
        let mut held = self.0.write().unwrap_or_else(|p| p.into_inner());
        match held.with_secret(key) {
            Some(auth) => {
                *held = Arc::new(auth);
                true
            }
            None => false,
        }
    }
}

pub struct WebhookSink {
    /// Parsed once: a request would parse a string again. An unreadable URL fails each
    /// delivery (retried), as it did when every request parsed it.
    url: Result<reqwest::Url, String>,
    client: reqwest::Client,
    auth: MoogKey,
    encoder: Encoder,
    metrics: ForwarderMetrics,
}

impl WebhookSink {
    pub fn new(
        url: String,
        config: &ForwarderConfig,
        encoder: Encoder,
        metrics: ForwarderMetrics,
    ) -> Result<Self, ForwarderError> {
        // The error names the flaw, never the URL (it may carry credentials).
        let url = reqwest::Url::parse(&url).map_err(|e| e.to_string());
        Ok(Self { url, client: http_client(config)?, auth: MoogKey::new(Auth::from_config(config)), encoder, metrics })
    }

    /// POSTs one group's body, written with the REST LAM token when that is the scheme.
    async fn post(&self, group: &[&AlertView<'_>], now: i64) -> Delivery {
        let auth = self.auth.current();
        let token = match auth.as_ref() {
            Auth::BodyToken(t) => Some(t.expose()),
            _ => None,
        };
        let body = self.encoder.group_body(group, now, token);
        let url = match &self.url {
            Ok(url) => url.clone(),
            Err(e) => {
                self.metrics.request("fail", "http");
                return Delivery::Retry { after: None, reason: format!("request error: {e}") };
            }
        };
        let mut req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/json"))
            .body(body);
        match auth.as_ref() {
            Auth::Basic { user, password } => req = req.basic_auth(user, Some(password.expose())),
            Auth::Bearer(key) => req = req.bearer_auth(key.expose()),
            Auth::None | Auth::BodyToken(_) => {}
        }
        if let [one] = group
            && !one.event_id.is_empty()
        {
            req = req.header("Idempotency-Key", one.event_id.as_ref());
        }
        let started = Instant::now();
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.request("fail", "http");
                return Delivery::Retry { after: None, reason: format!("{}: {}", error_kind(&e), without_url(&e)) };
            }
        };
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        self.metrics.request_latency.observe(started.elapsed().as_secs_f64());
        let outcome = classify(status, retry_after.as_deref(), &text);
        match &outcome {
            Delivery::Delivered => self.metrics.request("success", ""),
            Delivery::Hold { status, reason } => {
                let reason_label = if outcome.is_unauthorized() { "unauthorized" } else { "redirect" };
                self.metrics.request("fail", reason_label);
                tracing::error!(
                    status,
                    alerts = group.len(),
                    reason = %reason,
                    "webhook delivery held: the alerts wait in the queue and the circuit breaker is opened until \
                     this is fixed"
                );
            }
            _ if status == 429 => self.metrics.request("fail", "rate_limit"),
            _ => self.metrics.request("fail", "http"),
        }
        outcome
    }

    /// POSTs one group. A REST LAM batch the receiver rejects is split in halves and each sent
    /// again, down to single alerts, so that only the alerts rejected on their own are
    /// dead-lettered (with their own rejection). Costs about 2·log₂(n) more requests per
    /// rejected alert.
    fn send<'s>(&'s self, group: &'s [&'s AlertView<'s>], now: i64) -> BoxFuture<'s, Vec<Sent>> {
        Box::pin(async move {
            match self.post(group, now).await {
                Delivery::Reject { status, .. } if group.len() > 1 => {
                    tracing::warn!(
                        status,
                        alerts = group.len(),
                        event_ids = mutt_queue::log_ids::join_ids(group.iter().map(|a| a.event_id.as_ref())),
                        "REST LAM batch rejected: sending it again in halves to find the rejected alerts"
                    );
                    let (first, second) = group.split_at(group.len() / 2);
                    let mut out = self.send(first, now).await;
                    out.extend(self.send(second, now).await);
                    out
                }
                delivery => vec![Sent { alerts: group.len(), delivery }],
            }
        })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, alerts: &[&AlertView<'_>]) -> Vec<Sent> {
        let now = chrono::Utc::now().timestamp();
        let posts = alerts.chunks(self.encoder.request_size()).map(|group| self.send(group, now));
        futures_util::future::join_all(posts).await.into_iter().flatten().collect()
    }

    fn request_size(&self) -> usize {
        self.encoder.request_size()
    }

    fn rate_limited(&self) -> bool {
        true
    }

    fn moog_key(&self) -> Option<MoogKey> {
        Some(self.auth.clone())
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection error"
    } else {
        "request error"
    }
}

/// reqwest errors print the URL, which may carry credentials; keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c.to_string());
        cur = c.source();
    }
    if s.is_empty() { "request failed".into() } else { s }
}

/// Follows a redirect (up to 10) only to the first request's origin; stops at any other, whose
/// 3xx the sink then holds (see [`crate::delivery`]). Basic auth and bearer headers would be
/// dropped by reqwest on such a redirect, but a REST LAM token in a re-sent body would not.
fn same_origin_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let origin = |u: &reqwest::Url| (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port_or_known_default());
    let same = attempt.previous().first().is_some_and(|first| origin(first) == origin(attempt.url()));
    if !same {
        attempt.stop()
    } else if attempt.previous().len() > 10 {
        attempt.error("too many redirects")
    } else {
        attempt.follow()
    }
}

/// The HTTP client for the webhook: timeouts, the private CA and the client identity from the
/// configuration.
pub fn http_client(config: &ForwarderConfig) -> Result<reqwest::Client, ForwarderError> {
    let mut b = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::custom(same_origin_redirects))
        .user_agent(concat!("mutt-forwarder/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &config.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| ForwarderError::Http(format!("reading CA file {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| ForwarderError::Http(format!("CA file {}: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    if let Some(id) = &config.client_identity_file {
        let pem = std::fs::read(id)
            .map_err(|e| ForwarderError::Http(format!("reading client identity {}: {e}", id.display())))?;
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| ForwarderError::Http(format!("client identity {}: {e}", id.display())))?;
        b = b.identity(identity);
    }
    b.build().map_err(|e| ForwarderError::Http(e.to_string()))
}

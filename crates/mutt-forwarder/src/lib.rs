//! The forwarder: leases alerts, delivers them to the webhook, and settles each outcome:
//! delivered, retried later (delayed-retry set, with backoff and full jitter, or the
//! receiver's `Retry-After`), dead-lettered with the receiver's status and body (only the
//! alerts a REST LAM receiver rejects: a rejected batch is sent again in halves to find them),
//! or held in the queue with the circuit breaker opened when the receiver refuses our
//! credentials (401/403) or redirects elsewhere.
//!
//! Layout:
//! - [`worker`]: the loop, one batch in five named stages: decode → drop already delivered →
//!   admit → deliver → settle ([`Forwarder::process_one_batch`]);
//! - [`batch`]: a leased batch on its way (decoded alerts, the settlement, the counts);
//! - [`admission`]: the shared circuit breaker and rate limit (live rate from dynamic
//!   configuration);
//! - [`sink`]: where alerts go, behind one interface: the webhook or the alerts file;
//! - [`view`]: a leased alert read once, borrowing from its bytes;
//! - [`payload`]: the request body for each output format, written straight into its bytes;
//! - [`delivery`]: classifying a response into delivered / retry / reject / hold (pure);
//! - [`metrics`]: the original's `mutt_moog_*` metrics.

pub mod admission;
pub mod batch;
pub mod delivery;
pub mod metrics;
pub mod payload;
pub mod sink;
pub mod view;
pub mod worker;

use mutt_core::Secret;
use std::time::Duration;

pub use metrics::ForwarderMetrics;
pub use payload::OutputFormat;
pub use sink::Sink;
pub use worker::{ForwardOutcome, Forwarder, ForwarderError};

/// Where delivered alerts go.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// POSTed to Moogsoft or any webhook.
    Webhook(String),
    /// Appended as JSON lines to a file (and logged): for a first run without a Moogsoft.
    File(std::path::PathBuf),
}

/// A password or token written into the webhook URL never shows in a log line or an error.
impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Webhook(url) => f.debug_tuple("Webhook").field(&mutt_core::secret::redact_url(url)).finish(),
            Destination::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// How the `moog-rest-lam` format authenticates.
#[derive(Clone, Debug, Default)]
pub enum LamAuth {
    #[default]
    None,
    /// `"auth_token": …` in the request body (REST LAM `auth_token` setting).
    Token(Secret),
    /// HTTP basic authentication (REST LAM `basic_auth` setting).
    Basic { user: String, password: Secret },
}

#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    pub destination: Destination,
    /// Sent as `Authorization: Bearer …` in the `legacy` and `generic` formats (the original's
    /// scheme).
    pub api_key: Option<Secret>,
    pub format: OutputFormat,
    pub lam_auth: LamAuth,
    /// Alerts per `moog-rest-lam` request.
    pub lam_batch_size: usize,
    /// Moog severity (0 clear … 5 critical) for syslog severities 0–7.
    pub severity_map: [u8; 8],
    /// Moog severity of events without a syslog severity.
    pub default_severity: u8,
    /// Whole-request timeout (original: 10 s).
    pub timeout: Duration,
    /// Alerts leased per batch.
    pub batch_size: usize,
    pub block_timeout: Duration,
    /// Retries after the first attempt before an alert is dead-lettered (original: 5).
    pub max_retries: u32,
    /// Backoff: attempt n waits uniform [0, min(max, base · 2ⁿ)].
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Shared rate limit across all forwarders: alerts per period (original: 50 per 1 s);
    /// `mutt:config:moog_rate_limit` / `moog_rate_period` override it at run time.
    pub rate_limit: Option<(u64, Duration)>,
    /// Shared circuit breaker: opens after this many consecutive retryable failures, for
    /// this long (original: 10, 300 s). `None` turns it off.
    pub breaker: Option<(u64, Duration)>,
    /// How long delivered event ids are remembered, so a redelivered alert is not sent again.
    pub dedup_ttl: Duration,
    /// PEM CA for a receiver signed by a private CA (default: the system trust store).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM file with a client certificate and its private key, for mutual TLS.
    pub client_identity_file: Option<std::path::PathBuf>,
    /// The alerts file: fsync each batch before it counts as delivered (else a flush: the
    /// lines survive a crash of the process, not a power loss). muttd follows the embedded
    /// `durability` setting (`full` → on).
    pub alerts_file_sync: bool,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            destination: Destination::File("alerts.jsonl".into()),
            api_key: None,
            format: OutputFormat::MoogRestLam,
            lam_auth: LamAuth::None,
            lam_batch_size: 100,
            severity_map: payload::DEFAULT_SEVERITY_MAP,
            default_severity: 2,
            timeout: Duration::from_secs(10),
            batch_size: 100,
            block_timeout: Duration::from_secs(2),
            max_retries: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            rate_limit: Some((50, Duration::from_secs(1))),
            breaker: Some((10, Duration::from_secs(300))),
            dedup_ttl: Duration::from_secs(3600),
            ca_file: None,
            client_identity_file: None,
            alerts_file_sync: true,
        }
    }
}

/// Readiness of a forwarder: Redis answers and the webhook host is reachable (a `HEAD`
/// request; any HTTP answer counts, no event is sent). No webhook URL: Redis only.
pub fn health(queue: std::sync::Arc<dyn mutt_queue::Queue>, webhook_url: String, pod: String) -> mutt_service::Health {
    let health = mutt_service::Health::new("mutt-moog-forwarder")
        .pod(pod)
        .check("Redis", queue, |q| async move { q.ping().await });
    if webhook_url.is_empty() {
        return health;
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default();
    health.check("Webhook", (client, webhook_url), |(client, url)| async move {
        match client.head(&url).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.is_timeout() => Err("timeout"),
            Err(_) => Err("unreachable"),
        }
    })
}

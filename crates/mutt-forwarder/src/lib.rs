//! The forwarder: leases alerts, delivers them to the webhook, and settles each outcome:
//! delivered, retried later (delayed-retry set, with backoff and full jitter, or the
//! receiver's `Retry-After`), or dead-lettered with the receiver's status and body.
//!
//! Layout:
//! - [`payload`]: the request body for each output format;
//! - [`delivery`]: classifying a response into delivered / retry / reject (pure);
//! - [`worker`]: the lease → send → settle loop ([`Forwarder::process_one_batch`]);
//! - [`metrics`]: the original's `mutt_moog_*` metrics.

pub mod delivery;
pub mod metrics;
pub mod payload;
pub mod worker;

use mutt_core::Secret;
use std::time::Duration;

pub use metrics::ForwarderMetrics;
pub use payload::OutputFormat;
pub use worker::{ForwardOutcome, Forwarder};

/// Where delivered alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// POSTed to Moogsoft or any webhook.
    Webhook(String),
    /// Appended as JSON lines to a file (and logged): for a first run without a Moogsoft.
    File(std::path::PathBuf),
}

#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    pub destination: Destination,
    /// Sent as `Authorization: Bearer …` (the original's scheme).
    pub api_key: Option<Secret>,
    pub format: OutputFormat,
    /// Whole-request timeout (original: 10 s).
    pub timeout: Duration,
    /// Alerts leased and sent concurrently per batch.
    pub batch_size: usize,
    pub block_timeout: Duration,
    /// Retries after the first attempt before an alert is dead-lettered (original: 5).
    pub max_retries: u32,
    /// Backoff: attempt n waits uniform [0, min(max, base · 2ⁿ)].
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            destination: Destination::File("alerts.jsonl".into()),
            api_key: None,
            format: OutputFormat::Legacy,
            timeout: Duration::from_secs(10),
            batch_size: 20,
            block_timeout: Duration::from_secs(2),
            max_retries: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// Readiness of a forwarder: Redis answers and the webhook host is reachable (a `HEAD`
/// request; any HTTP answer counts, no event is sent).
pub struct ForwarderHealth {
    pub queue: std::sync::Arc<dyn mutt_queue::Queue>,
    pub webhook_url: String,
    pub pod: String,
    client: reqwest::Client,
}

impl ForwarderHealth {
    pub fn new(queue: std::sync::Arc<dyn mutt_queue::Queue>, webhook_url: String, pod: String) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default();
        Self { queue, webhook_url, pod, client }
    }
}

#[async_trait::async_trait]
impl mutt_service::HealthCheck for ForwarderHealth {
    async fn check(&self) -> mutt_service::HealthReport {
        let mut errors = Vec::new();
        if let Err(e) = self.queue.ping().await {
            errors.push(format!("Redis: {e}"));
        }
        if !self.webhook_url.is_empty()
            && let Err(e) = self.client.head(&self.webhook_url).send().await
        {
            let kind = if e.is_timeout() { "timeout" } else { "unreachable" };
            errors.push(format!("Webhook: {kind}"));
        }
        let healthy = errors.is_empty();
        let mut body = serde_json::json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "service": "mutt-moog-forwarder",
            "version": env!("CARGO_PKG_VERSION"),
            "pod": self.pod,
        });
        if !healthy {
            body["errors"] = serde_json::json!(errors);
        }
        mutt_service::HealthReport { healthy, body }
    }
}

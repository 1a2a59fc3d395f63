//! Is the webhook healthy? Asked without sending an event: `HEAD` on the webhook URL (any
//! answer below 500 means it is there: many receivers answer 405 to HEAD), or `GET` on a
//! configured health URL (2xx). The original POSTed a fake "health check" alert to Moogsoft
//! every minute instead (spec §8.2); that is gone.

use std::time::{Duration, Instant};

/// How the webhook is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// `MOOG_HEALTH_CHECK_ENABLED`: off means "healthy" without asking, as the original.
    pub enabled: bool,
    /// `MOOG_WEBHOOK_URL`: probed with HEAD; unset means "healthy", as the original.
    pub webhook_url: Option<String>,
    /// A health URL of the receiver, probed with GET instead (2xx is healthy).
    pub health_url: Option<String>,
    /// `MOOG_HEALTH_TIMEOUT`.
    pub timeout: Duration,
    /// How long an answer is reused (the original's 60 s cache).
    pub cache_for: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            webhook_url: None,
            health_url: None,
            timeout: Duration::from_secs(5),
            cache_for: Duration::from_secs(60),
        }
    }
}

pub struct Probe {
    config: ProbeConfig,
    client: reqwest::Client,
    last: Option<(Instant, bool)>,
}

impl Probe {
    pub fn new(config: ProbeConfig) -> Self {
        let client = reqwest::Client::builder().timeout(config.timeout).build().unwrap_or_default();
        Self { config, client, last: None }
    }

    /// Whether there is anything to ask.
    pub fn active(&self) -> bool {
        self.config.enabled && (self.config.health_url.is_some() || self.config.webhook_url.is_some())
    }

    /// The webhook's health, from the cache while fresh.
    pub async fn healthy(&mut self) -> bool {
        if !self.active() {
            return true;
        }
        if let Some((at, ok)) = self.last
            && at.elapsed() < self.config.cache_for
        {
            return ok;
        }
        let ok = self.ask().await;
        self.last = Some((Instant::now(), ok));
        ok
    }

    async fn ask(&self) -> bool {
        let (request, health_url) = match (&self.config.health_url, &self.config.webhook_url) {
            (Some(url), _) => (self.client.get(url), true),
            (None, Some(url)) => (self.client.head(url), false),
            (None, None) => return true,
        };
        match request.send().await {
            Ok(r) if health_url => r.status().is_success(),
            Ok(r) => r.status().as_u16() < 500,
            Err(e) => {
                // Without the URL: a webhook URL may carry a token.
                tracing::info!(error = %e.without_url(), "webhook health probe failed");
                false
            }
        }
    }
}

//! The forwarder's loop: lease alerts, send them concurrently, settle every outcome at once.

use crate::delivery::{Delivery, classify};
use crate::payload;
use crate::{Destination, ForwarderConfig, ForwarderMetrics};
use mutt_core::Alert;
use mutt_queue::{ConsumerConfig, Queue, QueueError, RetryOutcome, RetryPolicy, Settlement, WorkerRole};
use mutt_service::Backoff;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardOutcome {
    Empty,
    Processed { alerts: usize, delivered: usize, retried: usize, dead_lettered: usize },
}

pub struct Forwarder {
    consumer: Box<dyn mutt_queue::Consumer>,
    client: reqwest::Client,
    config: ForwarderConfig,
    metrics: ForwarderMetrics,
    /// Open alerts file for [`Destination::File`].
    file: Option<tokio::sync::Mutex<tokio::fs::File>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("HTTP client: {0}")]
    Http(String),
}

impl Forwarder {
    pub async fn start(
        queue: &dyn Queue,
        consumer: ConsumerConfig,
        config: ForwarderConfig,
        metrics: ForwarderMetrics,
    ) -> Result<Self, ForwarderError> {
        debug_assert_eq!(consumer.role, WorkerRole::Forwarder);
        let client = http_client(&config)?;
        let file = match &config.destination {
            Destination::File(path) => Some(tokio::sync::Mutex::new(open_alerts_file(path).await?)),
            Destination::Webhook(_) => None,
        };
        let consumer = queue.consumer(consumer).await?;
        Ok(Self { consumer, client, config, metrics, file })
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy { field: WorkerRole::Forwarder.retry_field(), max_retries: self.config.max_retries }
    }

    /// Leases a batch of alerts, sends them concurrently, and settles all outcomes in one step.
    pub async fn process_one_batch(&mut self) -> Result<ForwardOutcome, QueueError> {
        let Some(lease) = self.consumer.lease(self.config.batch_size, self.config.block_timeout).await? else {
            self.metrics.processing_list_depth.set(0);
            return Ok(ForwardOutcome::Empty);
        };
        self.metrics.processing_list_depth.set(lease.len() as i64);
        let sends = lease.messages.iter().map(|raw| self.deliver(raw));
        let outcomes = futures_util::future::join_all(sends).await;

        let mut s = Settlement::new();
        let (mut delivered, mut retried, mut dead) = (0, 0, 0);
        for (raw, outcome) in lease.messages.iter().zip(outcomes) {
            match outcome {
                Ok(Delivery::Delivered) => {
                    delivered += 1;
                    self.metrics.processed("success");
                }
                Ok(Delivery::Retry { after, reason }) => {
                    let attempt = retry_count(raw, self.policy().field);
                    let delay = after.unwrap_or_else(|| {
                        Backoff::jittered(self.config.retry_base, self.config.retry_max, attempt as u32)
                    });
                    match s.retry(self.policy(), raw, delay, &reason) {
                        RetryOutcome::Retried { .. } => {
                            retried += 1;
                            self.metrics.processed("error");
                        }
                        RetryOutcome::DeadLettered => {
                            dead += 1;
                            self.metrics.request("fail", "retry_exhausted");
                            self.metrics.processed("dlq");
                            tracing::error!(reason = %reason, "alert dead-lettered: retries exhausted");
                        }
                    }
                }
                Ok(Delivery::Reject { status, body }) => {
                    dead += 1;
                    self.metrics.processed("dlq");
                    tracing::error!(status, "alert rejected by the receiver; dead-lettered");
                    s.dead_letter(raw, "rejected_by_receiver", &format!("HTTP {status}: {body}"));
                }
                Err(unreadable) => {
                    dead += 1;
                    self.metrics.processed("dlq");
                    s.dead_letter(raw, "invalid_alert", &unreadable);
                }
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            match self.consumer.settle(&lease, &s).await {
                Ok(()) => break,
                Err(e) if backoff.attempts() >= 50 => return Err(e),
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "settle failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.metrics.processing_list_depth.set(0);
        Ok(ForwardOutcome::Processed { alerts: lease.len(), delivered, retried, dead_lettered: dead })
    }

    /// Sends one alert; `Err` only when the queued alert itself is unreadable.
    async fn deliver(&self, raw: &[u8]) -> Result<Delivery, String> {
        let alert: Alert = serde_json::from_slice(raw).map_err(|e| format!("not an alert: {e}"))?;
        let body = payload::body(self.config.format, &alert, chrono::Utc::now().timestamp());
        let url = match &self.config.destination {
            Destination::Webhook(url) => url,
            Destination::File(path) => return Ok(self.append_to_file(path, &body).await),
        };
        let mut req = self.client.post(url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        if !alert.event_id.is_empty() {
            req = req.header("Idempotency-Key", &alert.event_id);
        }
        let started = Instant::now();
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.request("fail", "http");
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection error"
                } else {
                    "request error"
                };
                return Ok(Delivery::Retry { after: None, reason: format!("{kind}: {}", without_url(&e)) });
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
            _ if status == 429 => self.metrics.request("fail", "rate_limit"),
            _ => self.metrics.request("fail", "http"),
        }
        Ok(outcome)
    }

    async fn append_to_file(&self, path: &std::path::Path, body: &serde_json::Value) -> Delivery {
        let Some(file) = &self.file else {
            return Delivery::Retry { after: None, reason: "alerts file is not open".into() };
        };
        let mut line = body.to_string();
        tracing::info!(alert = %line, file = %path.display(), "alert");
        line.push('\n');
        let mut f = file.lock().await;
        match f.write_all(line.as_bytes()).await {
            Ok(()) => {
                self.metrics.request("success", "");
                Delivery::Delivered
            }
            Err(e) => Delivery::Retry { after: None, reason: format!("writing {}: {e}", path.display()) },
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            match self.process_one_batch().await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "forwarder batch failed");
                    if !mutt_service::sleep_or_shutdown(wait, &shutdown).await {
                        break;
                    }
                }
            }
        }
        if let Err(e) = self.consumer.shutdown().await {
            tracing::warn!(error = %e, "forwarder shutdown could not hand back its lease (a janitor will)");
        }
        tracing::info!("forwarder stopped");
    }
}

async fn open_alerts_file(path: &std::path::Path) -> Result<tokio::fs::File, ForwarderError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ForwarderError::Http(format!("creating {}: {e}", dir.display())))?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| ForwarderError::Http(format!("opening {}: {e}", path.display())))
}

fn retry_count(raw: &[u8], field: &str) -> u64 {
    serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
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

pub(crate) fn http_client(config: &ForwarderConfig) -> Result<reqwest::Client, ForwarderError> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("mutt-forwarder/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ForwarderError::Http(e.to_string()))
}

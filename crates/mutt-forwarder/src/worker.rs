//! The forwarder's loop. One step: lease alerts → drop those already delivered → ask the
//! shared circuit breaker → take slots from the shared rate limit → send (REST LAM batches,
//! or one request per alert) → record outcomes → settle everything at once.
//!
//! Alerts that wait (breaker open, rate limit exhausted, another probe in flight) are put back
//! at the front of the queue unchanged: they never burn a retry and are never dropped.

use crate::delivery::{Delivery, classify};
use crate::payload::{self, OutputFormat};
use crate::{Destination, ForwarderConfig, ForwarderMetrics, LamAuth};
use mutt_core::Alert;
use mutt_queue::{
    BreakerPermit, BreakerState, ConsumerConfig, Coordination, Queue, QueueError, RetryOutcome, RetryPolicy,
    Settlement, WorkerRole,
};
use mutt_service::Backoff;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The circuit breaker's name in its Redis keys (`mutt:circuit_breaker:moogsoft:*`).
pub const BREAKER: &str = "moogsoft";
/// The shared rate limiter's name (`mutt:rate_limit:moog`).
pub const LIMITER: &str = "moog";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardOutcome {
    Empty,
    Processed {
        alerts: usize,
        delivered: usize,
        retried: usize,
        dead_lettered: usize,
        put_back: usize,
        duplicates: usize,
    },
    /// Nothing could be sent (breaker open, rate limit exhausted): everything put back; the
    /// caller should wait this long.
    Paused(Duration),
}

pub struct Forwarder {
    /// Delivered ids, the shared breaker and rate limit, the live rate settings.
    coordination: Arc<dyn Coordination>,
    consumer: Box<dyn mutt_queue::Consumer>,
    client: reqwest::Client,
    config: ForwarderConfig,
    metrics: ForwarderMetrics,
    /// Open alerts file for [`Destination::File`].
    file: Option<tokio::sync::Mutex<tokio::fs::File>>,
    /// Rate limit in force (refreshed from `mutt:config:moog_rate_*` every few seconds).
    rate: Option<(u64, Duration)>,
    rate_read: Option<Instant>,
    last_state: BreakerState,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// One leased alert on its way.
struct Pending<'a> {
    raw: &'a [u8],
    alert: Alert,
}

impl Forwarder {
    pub async fn start(
        queue: Arc<dyn Queue>,
        coordination: Arc<dyn Coordination>,
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
        let rate = config.rate_limit;
        Ok(Self {
            coordination,
            consumer,
            client,
            config,
            metrics,
            file,
            rate,
            rate_read: None,
            last_state: BreakerState::Closed,
        })
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy { field: WorkerRole::Forwarder.retry_field(), max_retries: self.config.max_retries }
    }

    async fn current_rate(&mut self) -> Option<(u64, Duration)> {
        // The rate limit protects Moogsoft; the alerts file needs none (with it, a first run
        // without a webhook would shed events once 2,000 alerts waited behind 50/s).
        if matches!(self.config.destination, Destination::File(_)) {
            return None;
        }
        let (limit, period) = self.config.rate_limit?;
        if self.rate_read.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
            self.rate_read = Some(Instant::now());
            if let Ok(v) = self.coordination.config_values(&["moog_rate_limit", "moog_rate_period"]).await {
                let num = |i: usize| {
                    v.get(i).cloned().flatten().and_then(|s| s.trim().parse::<u64>().ok()).filter(|n| *n > 0)
                };
                self.rate = Some((num(0).unwrap_or(limit), num(1).map(Duration::from_secs).unwrap_or(period)));
            }
        }
        self.rate
    }

    fn note_state(&mut self, state: BreakerState, failures: Option<u64>) {
        self.metrics.breaker_state_moog.set(state as i64);
        self.metrics.circuit_open.set(i64::from(state == BreakerState::Open));
        if let Some(f) = failures {
            self.metrics.breaker_failures.set(f as i64);
        }
        if state != self.last_state {
            self.metrics.breaker_transition(self.last_state.as_str(), state.as_str());
            tracing::warn!(from = self.last_state.as_str(), to = state.as_str(), "circuit breaker changed state");
            self.last_state = state;
        }
    }

    /// Leases a batch and takes it to the end (see the module docs).
    pub async fn process_one_batch(&mut self) -> Result<ForwardOutcome, QueueError> {
        let Some(lease) = self.consumer.lease(self.config.batch_size, self.config.block_timeout).await? else {
            self.metrics.processing_list_depth.set(0);
            return Ok(ForwardOutcome::Empty);
        };
        self.metrics.processing_list_depth.set(lease.len() as i64);
        let mut s = Settlement::new();
        let (mut delivered, mut retried, mut dead, mut duplicates) = (0, 0, 0, 0);

        // Unreadable alerts go to the DLQ at once.
        let mut pending = Vec::with_capacity(lease.len());
        for raw in &lease.messages {
            match serde_json::from_slice::<Alert>(raw) {
                Ok(alert) => pending.push(Pending { raw, alert }),
                Err(e) => {
                    dead += 1;
                    self.metrics.processed("dlq");
                    s.dead_letter(raw, "invalid_alert", &format!("not an alert: {e}"));
                }
            }
        }

        // Already delivered (redelivered after a crash between the POST and the ack): done.
        let ids: Vec<String> = pending.iter().map(|p| p.alert.event_id.clone()).collect();
        let seen = self.coordination.already_delivered(&ids).await?;
        let mut fresh = Vec::with_capacity(pending.len());
        for (p, seen) in pending.into_iter().zip(seen) {
            if seen && !p.alert.event_id.is_empty() {
                duplicates += 1;
                self.metrics.duplicates.inc();
            } else {
                fresh.push(p);
            }
        }

        // How many may go now: the breaker, then the shared rate limit.
        let mut allowed = fresh.len();
        let mut pause = Duration::ZERO;
        let mut probing = false;
        if let Some((_, open_for)) = self.config.breaker
            && allowed > 0
        {
            match self.coordination.breaker_acquire(BREAKER, open_for).await? {
                BreakerPermit::Go => self.note_state(BreakerState::Closed, None),
                BreakerPermit::Probe => {
                    self.note_state(BreakerState::HalfOpen, None);
                    probing = true;
                    allowed = allowed.min(self.request_size());
                }
                BreakerPermit::Wait { retry_after } => {
                    let (state, failures) = self.coordination.breaker_state(BREAKER).await?;
                    self.note_state(state, Some(failures));
                    self.metrics.request("fail", "circuit_open");
                    allowed = 0;
                    pause = retry_after.min(Duration::from_secs(1));
                }
            }
        }
        if allowed > 0
            && let Some((limit, period)) = self.current_rate().await
        {
            let grant = self.coordination.rate_limit_take(LIMITER, limit, period, allowed as u64).await?;
            if (grant.granted as usize) < allowed {
                self.metrics.rate_limit_hits.inc();
                pause = grant.retry_after.min(period);
            }
            allowed = grant.granted as usize;
        }
        if probing && allowed == 0 {
            // The probe slot is ours but the rate limit is not: let the probe lock expire.
            tracing::debug!("half-open probe deferred by the rate limit");
        }
        let waiting = fresh.split_off(allowed);

        // Send.
        let outcomes = self.send(&fresh).await;
        let mut succeeded = Vec::new();
        for (p, outcome) in fresh.iter().zip(outcomes) {
            match outcome {
                Delivery::Delivered => {
                    delivered += 1;
                    self.metrics.processed("success");
                    if let Some(ms) = age_ms(&p.alert.event_id) {
                        self.metrics.delivery_latency.observe(ms / 1000.0);
                    }
                    succeeded.push(p.alert.event_id.clone());
                }
                Delivery::Retry { after, reason } => {
                    let attempt = retry_count(p.raw, self.policy().field);
                    let delay = after.unwrap_or_else(|| {
                        Backoff::jittered(self.config.retry_base, self.config.retry_max, attempt as u32)
                    });
                    match s.retry(self.policy(), p.raw, delay, &reason) {
                        RetryOutcome::Retried { .. } => {
                            retried += 1;
                            self.metrics.processed("error");
                        }
                        RetryOutcome::DeadLettered => {
                            dead += 1;
                            self.metrics.request("fail", "retry_exhausted");
                            self.metrics.processed("dlq");
                            tracing::error!(event_id = %p.alert.event_id, reason = %reason, "alert dead-lettered: retries exhausted");
                        }
                    }
                }
                Delivery::Reject { status, body } => {
                    dead += 1;
                    self.metrics.processed("dlq");
                    tracing::error!(event_id = %p.alert.event_id, status, "alert rejected by the receiver; dead-lettered");
                    s.dead_letter(p.raw, "rejected_by_receiver", &format!("HTTP {status}: {body}"));
                }
            }
        }
        if !succeeded.is_empty()
            && let Err(e) = self.coordination.mark_delivered(&succeeded, self.config.dedup_ttl).await
        {
            tracing::warn!(error = %e, "could not record delivered ids (a redelivery may send them again)");
        }
        // Put the waiting ones back in their order, first in line.
        for p in waiting.iter().rev() {
            s.put_back(p.raw);
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
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
        if fresh.is_empty() && dead == 0 && duplicates == 0 && !waiting.is_empty() {
            return Ok(ForwardOutcome::Paused(pause.max(Duration::from_millis(10))));
        }
        Ok(ForwardOutcome::Processed {
            alerts: lease.len(),
            delivered,
            retried,
            dead_lettered: dead,
            put_back: waiting.len(),
            duplicates,
        })
    }

    fn request_size(&self) -> usize {
        match self.config.format {
            OutputFormat::MoogRestLam => self.config.lam_batch_size.max(1),
            _ => 1,
        }
    }

    /// Sends the alerts (grouped into requests per format) concurrently; one outcome per alert.
    async fn send(&mut self, alerts: &[Pending<'_>]) -> Vec<Delivery> {
        if alerts.is_empty() {
            return Vec::new();
        }
        let now = chrono::Utc::now().timestamp();
        let groups: Vec<&[Pending]> = alerts.chunks(self.request_size()).collect();
        let bodies: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| match self.config.format {
                OutputFormat::MoogRestLam => {
                    let events = g
                        .iter()
                        .map(|p| {
                            payload::lam_event(&p.alert, &self.config.severity_map, self.config.default_severity, now)
                        })
                        .collect();
                    let token = match &self.config.lam_auth {
                        LamAuth::Token(t) => Some(t.expose()),
                        _ => None,
                    };
                    payload::lam_body(events, token)
                }
                f => payload::body(f, &g[0].alert, now),
            })
            .collect();
        let sends = groups.iter().zip(&bodies).map(|(g, body)| self.send_one(g, body));
        let results = futures_util::future::join_all(sends).await;
        let mut out = Vec::with_capacity(alerts.len());
        for (g, r) in groups.iter().zip(results) {
            if self.config.breaker.is_some() && !matches!(r, Delivery::Reject { .. }) {
                let success = matches!(r, Delivery::Delivered);
                let threshold = self.config.breaker.map(|b| b.0).unwrap_or(10);
                match self.coordination.breaker_record(BREAKER, success, threshold).await {
                    Ok(state) => self.note_state(state, None),
                    Err(e) => tracing::warn!(error = %e, "could not record on the circuit breaker"),
                }
            }
            out.extend(std::iter::repeat_n(r, g.len()));
        }
        out
    }

    async fn send_one(&self, group: &[Pending<'_>], body: &serde_json::Value) -> Delivery {
        let url = match &self.config.destination {
            Destination::Webhook(url) => url,
            Destination::File(path) => return self.append_to_file(path, body).await,
        };
        let mut req = self.client.post(url).json(body);
        match (&self.config.format, &self.config.lam_auth, &self.config.api_key) {
            (OutputFormat::MoogRestLam, LamAuth::Basic { user, password }, _) => {
                req = req.basic_auth(user, Some(password.expose()))
            }
            (OutputFormat::MoogRestLam, _, _) => {}
            (_, _, Some(key)) => req = req.bearer_auth(key.expose()),
            _ => {}
        }
        if let [one] = group
            && !one.alert.event_id.is_empty()
        {
            req = req.header("Idempotency-Key", &one.alert.event_id);
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
                return Delivery::Retry { after: None, reason: format!("{kind}: {}", without_url(&e)) };
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
        outcome
    }

    async fn append_to_file(&self, path: &std::path::Path, body: &serde_json::Value) -> Delivery {
        let Some(file) = &self.file else {
            return Delivery::Retry { after: None, reason: "alerts file is not open".into() };
        };
        // The REST LAM token belongs to Moogsoft, not to files and logs.
        let mut body = body.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("auth_token");
        }
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
                Ok(ForwardOutcome::Paused(wait)) => {
                    if !mutt_service::sleep_or_shutdown(wait, &shutdown).await {
                        break;
                    }
                }
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

/// Milliseconds since a UUIDv7 event id was made (its ingest time).
fn age_ms(event_id: &str) -> Option<f64> {
    let id = uuid::Uuid::parse_str(event_id).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    let made = secs as f64 * 1000.0 + f64::from(nanos) / 1e6;
    let now = chrono::Utc::now().timestamp_millis() as f64;
    Some((now - made).max(0.0))
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
    let mut b = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
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

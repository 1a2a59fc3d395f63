//! A leased batch on its way through the forwarder's stages (see [`crate::worker`]): the
//! alerts decoded from it, the settlement being built, and the counts reported at the end.

use crate::ForwarderMetrics;
use crate::delivery::Delivery;
use crate::view::{self, AlertView};
use crate::worker::ForwardOutcome;
use mutt_queue::log_ids::join_ids;
use mutt_queue::{Lease, MessageIds, RetryOutcome, RetryPolicy, Settlement};
use mutt_service::Backoff;
use std::borrow::Cow;
use std::time::Duration;

/// One leased alert on its way: the bytes re-queued or dead-lettered in its place (the leased
/// bytes, or without the `api_key` of an alert the original MUTT queued) and the alert read
/// from them (borrowing from the lease).
pub struct Pending<'a> {
    pub raw: Cow<'a, [u8]>,
    pub alert: AlertView<'a>,
    /// Leased before (handed back or recovered): it may have been delivered already.
    pub redelivered: bool,
}

/// When a failed delivery is tried again.
#[derive(Clone, Copy, Debug)]
pub struct RetrySchedule {
    pub policy: RetryPolicy,
    /// Backoff: attempt n waits uniform [0, min(max, base · 2ⁿ)], unless the receiver said
    /// `Retry-After`.
    pub base: Duration,
    pub max: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    delivered: usize,
    retried: usize,
    dead: usize,
    duplicates: usize,
    put_back: usize,
    /// Of `put_back`: sent and held because our side is wrong (credentials, redirect).
    held: usize,
}

/// How long a forwarder waits after a batch whose alerts were all held (credentials refused):
/// without a circuit breaker, this is what keeps it from asking the receiver in a tight loop.
pub const HOLD_PAUSE: Duration = Duration::from_secs(1);

pub struct Batch<'a> {
    lease: &'a Lease,
    pub settlement: Settlement,
    counts: Counts,
    /// Alerts held after delivery (in order), put back with the waiting ones.
    held: Vec<Vec<u8>>,
    metrics: ForwarderMetrics,
    /// When the first delivered alert was recorded (ms since the epoch): one clock read for
    /// the ingest-to-delivery times of the batch.
    delivered_at: Option<i64>,
}

impl<'a> Batch<'a> {
    pub fn new(lease: &'a Lease, metrics: &ForwarderMetrics) -> Self {
        Self {
            lease,
            settlement: Settlement::new(),
            counts: Counts::default(),
            held: Vec::new(),
            metrics: metrics.clone(),
            delivered_at: None,
        }
    }

    pub fn lease(&self) -> &'a Lease {
        self.lease
    }

    /// Reads the leased alerts, muttd's own and those the original MUTT queued (see
    /// [`view::read`], read as `Alert::from_queue` reads them). An unreadable one is dead-lettered at once, and so is one that
    /// arrives with `_moog_retry_count` above `max_retries` (left by the original forwarder,
    /// or replayed from the DLQ by hand), undelivered, as the original did (spec §5.2).
    pub fn decode(&mut self, max_retries: u32) -> Vec<Pending<'a>> {
        let mut pending = Vec::with_capacity(self.lease.len());
        for (i, raw) in self.lease.messages.iter().enumerate() {
            match view::read(raw) {
                Ok((alert, q)) if q.retry_count > u64::from(max_retries) => {
                    let raw = q.scrubbed.as_deref().unwrap_or(raw);
                    self.exhausted_on_arrival(raw, &alert, q.retry_count, max_retries);
                }
                Ok((alert, q)) => {
                    let raw = q.scrubbed.map_or(Cow::Borrowed(raw.as_slice()), Cow::Owned);
                    let redelivered = self.lease.possibly_redelivered(i) || !made_by_muttd(&alert.event_id);
                    pending.push(Pending { raw, alert, redelivered });
                }
                Err(e) => {
                    self.counts.dead += 1;
                    self.metrics.processed("dlq");
                    // Only the ids are read back: the message may hold the original's api_key.
                    let ids = MessageIds::of(raw);
                    tracing::error!(
                        correlation_id = ids.correlation_id(),
                        event_id = ids.event_id(),
                        error = %e,
                        "unreadable alert dead-lettered"
                    );
                    self.settlement.dead_letter(raw, "invalid_alert", &e.to_string());
                }
            }
        }
        pending
    }

    fn exhausted_on_arrival(&mut self, raw: &[u8], alert: &AlertView<'_>, count: u64, max_retries: u32) {
        self.counts.dead += 1;
        self.metrics.request("fail", "retry_exhausted");
        self.metrics.processed("dlq");
        tracing::error!(
            correlation_id = %alert.correlation_id,
            event_id = %alert.event_id,
            retry_count = count,
            "alert dead-lettered on arrival: retries exhausted"
        );
        let error = format!("arrived with _moog_retry_count {count}, above MOOG_MAX_RETRIES ({max_retries})");
        self.settlement.dead_letter(raw, "retries_exhausted", &error);
    }

    /// An alert delivered before (redelivered after a crash between the POST and the ack): done.
    pub fn duplicate(&mut self, p: &Pending<'_>) {
        self.counts.duplicates += 1;
        self.metrics.duplicates.inc();
        tracing::info!(
            correlation_id = %p.alert.correlation_id,
            event_id = %p.alert.event_id,
            "alert delivered before: dropped as a duplicate"
        );
    }

    /// Settles one alert after its delivery; returns its event id when it was delivered.
    pub fn record(&mut self, p: &Pending<'_>, outcome: Delivery, retry: RetrySchedule) -> Option<String> {
        match outcome {
            Delivery::Delivered => {
                self.counts.delivered += 1;
                self.metrics.delivered.inc();
                // Debug only: an info line per alert would cost on the hot path.
                tracing::debug!(correlation_id = %p.alert.correlation_id, event_id = %p.alert.event_id, "alert delivered");
                let now = *self.delivered_at.get_or_insert_with(|| chrono::Utc::now().timestamp_millis());
                if let Some(ms) = age_ms(&p.alert.event_id, now) {
                    self.metrics.delivery_latency.observe(ms / 1000.0);
                }
                return Some(p.alert.event_id.as_ref().to_owned());
            }
            Delivery::Retry { after, reason } => self.retry(p, after, &reason, retry),
            Delivery::Reject { status, body } => {
                self.counts.dead += 1;
                self.metrics.processed("dlq");
                tracing::error!(
                    correlation_id = %p.alert.correlation_id,
                    event_id = %p.alert.event_id,
                    status,
                    "alert rejected by the receiver; dead-lettered"
                );
                self.settlement.dead_letter(&p.raw, "rejected_by_receiver", &format!("HTTP {status}: {body}"));
            }
            // Logged once per request by the sink; the alert itself is fine.
            Delivery::Hold { .. } => {
                self.counts.held += 1;
                self.held.push(p.raw.to_vec());
            }
        }
        None
    }

    fn retry(&mut self, p: &Pending<'_>, after: Option<Duration>, reason: &str, retry: RetrySchedule) {
        let attempt = retry_count(&p.raw, retry.policy.field);
        let delay = after.unwrap_or_else(|| Backoff::jittered(retry.base, retry.max, attempt as u32));
        match self.settlement.retry(retry.policy, &p.raw, delay, reason) {
            RetryOutcome::Retried { attempt } => {
                self.counts.retried += 1;
                self.metrics.processed("error");
                tracing::warn!(
                    correlation_id = %p.alert.correlation_id,
                    event_id = %p.alert.event_id,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    reason = %reason,
                    "delivery failed; alert retried"
                );
            }
            RetryOutcome::DeadLettered => {
                self.counts.dead += 1;
                self.metrics.request("fail", "retry_exhausted");
                self.metrics.processed("dlq");
                tracing::error!(
                    correlation_id = %p.alert.correlation_id,
                    event_id = %p.alert.event_id,
                    reason = %reason,
                    "alert dead-lettered: retries exhausted"
                );
            }
        }
    }

    /// Puts the alerts held back at the front of the queue, in their order: those held after
    /// delivery first (they came first in the batch), then those that waited.
    pub fn put_back(&mut self, waiting: &[Pending<'_>]) {
        for p in waiting.iter().rev() {
            self.settlement.put_back(&p.raw);
        }
        for raw in self.held.iter().rev() {
            self.settlement.put_back(raw);
        }
        self.counts.put_back += waiting.len() + self.held.len();
        if !waiting.is_empty() {
            // One line per batch, at debug: while the breaker is open this repeats every pause.
            tracing::debug!(
                held = waiting.len(),
                event_ids = join_ids(waiting.iter().map(|p| p.alert.event_id.as_ref())),
                "alerts held back by the circuit breaker or the rate limit; put back first in line"
            );
        }
    }

    /// What the batch came to. `sent` alerts went out; when none was settled and all had to
    /// wait or were held, the caller should pause (at least 10 ms; [`HOLD_PAUSE`] after a hold).
    pub fn outcome(&self, sent: usize, pause: Duration) -> ForwardOutcome {
        let c = self.counts;
        let settled = c.delivered + c.retried + c.dead + c.duplicates;
        if settled == 0 && c.put_back > 0 && (sent == 0 || c.held > 0) {
            let least = if c.held > 0 { HOLD_PAUSE } else { Duration::from_millis(10) };
            return ForwardOutcome::Paused(pause.max(least));
        }
        ForwardOutcome::Processed {
            alerts: self.lease.len(),
            delivered: c.delivered,
            retried: c.retried,
            dead_lettered: c.dead,
            put_back: c.put_back,
            duplicates: c.duplicates,
        }
    }
}

/// Whether an alert's id is one muttd made (a UUIDv7, one per event): muttd's alerter queues
/// each such alert once (in the settle of its event), so a first delivery of it cannot have
/// been delivered before. The original MUTT's alerter pushed an alert before removing its event
/// and could queue one twice; its alerts (derived UUIDv5 ids) are always looked up.
fn made_by_muttd(event_id: &str) -> bool {
    event_id.len() == 36 && event_id.as_bytes().get(14) == Some(&b'7')
}

/// Milliseconds from the making of a UUIDv7 event id (its ingest time) to `now_ms`.
fn age_ms(event_id: &str, now_ms: i64) -> Option<f64> {
    let made = mutt_core::EventId::parse(event_id)?.made_at_ms()?;
    Some((now_ms.saturating_sub(made) as f64).max(0.0))
}

fn retry_count(raw: &[u8], field: &str) -> u64 {
    serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{age_ms, made_by_muttd};

    #[test]
    fn delivery_age_is_read_from_the_event_id() {
        let id = uuid::Uuid::now_v7().to_string();
        let now = chrono::Utc::now().timestamp_millis();
        let age = age_ms(&id, now + 1500).unwrap();
        assert!((1499.0..=1501.0).contains(&age), "{age}");
        assert_eq!(age_ms(&id, now - 60_000), Some(0.0), "never negative");
        assert_eq!(age_ms("not-a-uuid", now), None);
    }

    #[test]
    fn only_muttds_own_ids_skip_the_delivered_check() {
        assert!(made_by_muttd(&uuid::Uuid::now_v7().to_string()));
        let legacy = mutt_core::alert::legacy_alert_id(&serde_json::Map::new()).to_string();
        assert!(!made_by_muttd(&legacy), "the original's alerts: {legacy}");
        assert!(!made_by_muttd("") && !made_by_muttd("cid-1"));
    }
}

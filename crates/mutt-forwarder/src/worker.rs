//! The forwarder's loop. Each batch goes through five stages, in order:
//! 1. **decode**: lease alerts and read them, the original MUTT's too (an unreadable one, or
//!    one that arrives with its retries already exhausted, is dead-lettered);
//! 2. **drop already delivered**: alerts whose id the shared delivered set holds (redelivered
//!    after a crash between the POST and the ack) are done;
//! 3. **admit**: the shared circuit breaker, then the shared rate limit, say how many go now
//!    ([`crate::admission`]);
//! 4. **deliver**: the sink sends them (webhook or alerts file, [`crate::sink`]); each
//!    request's outcome is recorded on the breaker;
//! 5. **settle**: delivered ids are remembered, failures retried later (backoff with full
//!    jitter, or the receiver's `Retry-After`) or dead-lettered, and held-back alerts put back;
//!    all in one settle of the lease.
//!
//! Alerts that wait (breaker open, rate limit exhausted, another probe in flight) are put back
//! at the front of the queue unchanged: they never burn a retry and are never dropped.

use crate::admission::Gate;
use crate::batch::{Batch, Pending, RetrySchedule};
use crate::delivery::Delivery;
use crate::sink::{self, Sink};
use crate::view::AlertView;
use crate::{ForwarderConfig, ForwarderMetrics};
use mutt_queue::log_ids::{BatchFailure, first_event_ids};
use mutt_queue::{ConsumerConfig, Coordination, Lease, Queue, QueueError, RetryPolicy, WorkerRole};
use mutt_service::{Backoff, Watchdog};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::admission::{BREAKER, LIMITER};

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

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("alerts file: {0}")]
    File(String),
}

/// Stage 3's split of a batch.
struct Admission<'a> {
    /// Sent now.
    go: Vec<Pending<'a>>,
    /// Put back, first in line.
    waiting: Vec<Pending<'a>>,
    /// When nothing goes: how long the caller should wait.
    pause: Duration,
}

pub struct Forwarder {
    /// Delivered ids, the shared breaker and rate limit, the live rate settings.
    coordination: Arc<dyn Coordination>,
    consumer: Box<dyn mutt_queue::Consumer>,
    sink: Arc<dyn Sink>,
    gate: Gate,
    config: ForwarderConfig,
    metrics: ForwarderMetrics,
    /// Told after every step that returned; `/health` fails when it hears nothing for long.
    watchdog: Watchdog,
    /// The loop's stop request ([`Self::run`]'s token): cuts the settle's retries short.
    stopping: CancellationToken,
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
        let sink = sink::open(&config, &metrics).await?;
        let consumer = queue.consumer(consumer).await?;
        let rate = config.rate_limit.filter(|_| sink.rate_limited());
        let gate = Gate::new(config.breaker, rate, &coordination, &metrics);
        Ok(Self {
            coordination,
            consumer,
            sink,
            gate,
            config,
            metrics,
            watchdog: Watchdog::default(),
            stopping: CancellationToken::new(),
        })
    }

    /// The webhook's credential, to replace it when `MOOG_API_KEY` is rotated (`None` for the
    /// alerts file).
    pub fn moog_key(&self) -> Option<crate::sink::MoogKey> {
        self.sink.moog_key()
    }

    /// The watchdog the loop reports progress to (the one the role's `/health` checks).
    pub fn with_watchdog(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// Leases a batch and takes it through the five stages (see the module docs).
    pub async fn process_one_batch(&mut self) -> Result<ForwardOutcome, QueueError> {
        self.step().await.map_err(|f| f.error)
    }

    /// [`Self::process_one_batch`], saying which batch failed.
    async fn step(&mut self) -> Result<ForwardOutcome, BatchFailure<QueueError>> {
        let Some(lease) = self.lease().await.map_err(BatchFailure::unleased)? else {
            return Ok(ForwardOutcome::Empty);
        };
        match self.take_through(&lease).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                self.hand_back(&lease).await;
                Err(BatchFailure::of(e, &lease))
            }
        }
    }

    /// A queue error between lease and settle (delivered-id check, breaker, rate limit, a
    /// settle given up): the batch goes back to the queue now instead of sitting in this live
    /// worker's processing list. If that fails too, the next lease hands it back first.
    async fn hand_back(&mut self, lease: &Lease) {
        let event_ids = first_event_ids(&lease.messages);
        match self.consumer.release().await {
            Ok(moved) => {
                tracing::warn!(
                    moved,
                    events = lease.len(),
                    event_ids,
                    "handed the batch back to the queue after an error"
                );
                self.metrics.processing_list_depth.set(0);
            }
            Err(e) => tracing::warn!(
                error = %e,
                events = lease.len(),
                event_ids,
                "could not hand the batch back yet (the next lease does it first)"
            ),
        }
    }

    /// Stages 1 to 5 for a leased batch.
    async fn take_through(&mut self, lease: &Lease) -> Result<ForwardOutcome, QueueError> {
        let mut batch = Batch::new(lease, &self.metrics);
        let decoded = batch.decode(self.config.max_retries);
        let fresh = self.drop_delivered(&mut batch, decoded).await?;
        let admission = self.admit(fresh).await?;
        let (outcomes, breaker) = self.deliver(&admission.go).await;
        self.settle(batch, admission, outcomes, breaker).await
    }

    async fn lease(&mut self) -> Result<Option<Lease>, QueueError> {
        let lease = self.consumer.lease(self.config.batch_size, self.config.block_timeout).await?;
        self.metrics.processing_list_depth.set(lease.as_ref().map_or(0, |l| l.len() as i64));
        Ok(lease)
    }

    /// Stage 2: alerts delivered before are done (counted as duplicates). Only an alert
    /// leased before (handed back, or recovered from a forwarder that died) can have been, so
    /// only those are looked up; a batch of first deliveries costs nothing here.
    async fn drop_delivered<'a>(
        &self,
        batch: &mut Batch<'a>,
        decoded: Vec<Pending<'a>>,
    ) -> Result<Vec<Pending<'a>>, QueueError> {
        let ids: Vec<String> =
            decoded.iter().filter(|p| p.redelivered).map(|p| p.alert.event_id.as_ref().to_owned()).collect();
        let delivered_before =
            if ids.is_empty() { Vec::new() } else { self.coordination.already_delivered(&ids).await? };
        let mut seen = delivered_before.into_iter();
        // Two copies of one alert in the same batch (queued twice before either was delivered)
        // go out once: the delivered ids only know about earlier batches.
        let copies = later_copies(&decoded);
        let mut fresh = Vec::with_capacity(decoded.len());
        for (p, copy) in decoded.into_iter().zip(copies) {
            let delivered = p.redelivered && seen.next().unwrap_or(false);
            if !p.alert.event_id.is_empty() && (delivered || copy) {
                batch.duplicate(&p);
            } else {
                fresh.push(p);
            }
        }
        Ok(fresh)
    }

    /// Stage 3: splits the alerts into those that go now and those that wait.
    async fn admit<'a>(&mut self, mut fresh: Vec<Pending<'a>>) -> Result<Admission<'a>, QueueError> {
        let admitted = self.gate.admit(self.coordination.as_ref(), fresh.len(), self.sink.request_size()).await?;
        let waiting = fresh.split_off(admitted.allowed.min(fresh.len()));
        Ok(Admission { go: fresh, waiting, pause: admitted.pause })
    }

    /// Stage 4: the sink delivers; one outcome per alert, and what the requests tell the
    /// breaker (recorded with the delivered ids in stage 5).
    async fn deliver(&mut self, alerts: &[Pending<'_>]) -> (Vec<Delivery>, Option<(Vec<bool>, bool)>) {
        if alerts.is_empty() {
            return (Vec::new(), None);
        }
        let refs: Vec<&AlertView<'_>> = alerts.iter().map(|p| &p.alert).collect();
        let sent = self.sink.deliver(&refs).await;
        let breaker = self.gate.outcomes(&sent);
        let mut outcomes: Vec<Delivery> =
            sent.into_iter().flat_map(|s| std::iter::repeat_n(s.delivery, s.alerts)).collect();
        // A sink that left alerts without an outcome must not get them acked unsent.
        outcomes.resize(alerts.len(), Delivery::Retry { after: None, reason: "no delivery outcome".into() });
        (outcomes, breaker)
    }

    /// Stage 5: records every outcome in the settlement, puts the waiting alerts back, and
    /// settles the lease; at the same time records the breaker outcomes and remembers the
    /// delivered ids (one call). The two writes are independent: whichever a forwarder that
    /// dies between them completed, a redelivery is either dropped (ids recorded) or not
    /// needed (lease settled), and with neither the alerts go again (at least once). Run
    /// together they cost one wait for the backend instead of two; on the embedded backend,
    /// whose one writer commits waiting work in groups, they usually share a commit.
    async fn settle(
        &mut self,
        mut batch: Batch<'_>,
        admission: Admission<'_>,
        outcomes: Vec<Delivery>,
        breaker: Option<(Vec<bool>, bool)>,
    ) -> Result<ForwardOutcome, QueueError> {
        let retry = self.retry_schedule();
        let delivered: Vec<String> =
            admission.go.iter().zip(outcomes).filter_map(|(p, outcome)| batch.record(p, outcome, retry)).collect();
        batch.put_back(&admission.waiting);
        // The record is sent first (a future starts its write when first polled): on the
        // embedded backend it then commits no later than the settle.
        let record = self.gate.record(self.coordination.as_ref(), breaker.as_ref(), &delivered, self.config.dedup_ttl);
        let settle = settle_lease(self.consumer.as_mut(), &batch, &self.stopping);
        let ((), settled) = tokio::join!(record, settle);
        settled?;
        self.metrics.processing_list_depth.set(0);
        Ok(batch.outcome(admission.go.len(), admission.pause))
    }
    fn retry_schedule(&self) -> RetrySchedule {
        RetrySchedule {
            policy: RetryPolicy { field: WorkerRole::Forwarder.retry_field(), max_retries: self.config.max_retries },
            base: self.config.retry_base,
            max: self.config.retry_max,
        }
    }

    /// Waits out a pause (breaker open, rate limit spent), telling the watchdog every second
    /// that the loop is alive: a pause is not a stall, however long the breaker stays open.
    /// `false` if shutdown came first.
    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            self.watchdog.progress();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            if !mutt_service::sleep_or_shutdown(left.min(Duration::from_secs(1)), shutdown).await {
                return false;
            }
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        self.stopping = shutdown.clone();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            self.gate.sample(self.coordination.as_ref()).await;
            match self.step().await {
                Ok(ForwardOutcome::Paused(wait)) => {
                    if !self.pause(wait, &shutdown).await {
                        break;
                    }
                }
                Ok(_) => {
                    self.watchdog.progress();
                    backoff.reset();
                }
                Err(f) => {
                    let wait = backoff.next_delay();
                    tracing::error!(
                        error = %f.error,
                        events = f.events,
                        event_ids = %f.event_ids,
                        retry_in_ms = wait.as_millis() as u64,
                        "forwarder batch failed"
                    );
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

/// Settles the lease, retrying with backoff while the backend is away (settling is
/// idempotent). After a stop request one more attempt is made at once, then the lease is left
/// to a janitor: retrying for minutes would outlast a supervisor's stop timeout (its SIGKILL
/// leaves the lease to the janitor all the same).
async fn settle_lease(
    consumer: &mut dyn mutt_queue::Consumer,
    batch: &Batch<'_>,
    stopping: &CancellationToken,
) -> Result<(), QueueError> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match consumer.settle(batch.lease(), &batch.settlement).await {
            Ok(()) => return Ok(()),
            Err(e) if backoff.attempts() >= 50 || stopping.is_cancelled() => return Err(e),
            Err(e) => {
                let wait = backoff.next_delay();
                let lease = batch.lease();
                tracing::error!(
                    error = %e,
                    events = lease.len(),
                    event_ids = first_event_ids(&lease.messages),
                    retry_in_ms = wait.as_millis() as u64,
                    "settle failed; retrying"
                );
                mutt_service::sleep_or_shutdown(wait, stopping).await;
            }
        }
    }
}

/// Per alert, whether an earlier alert of the batch has its (non-empty) event id.
fn later_copies(decoded: &[Pending<'_>]) -> Vec<bool> {
    let mut ids = std::collections::HashSet::with_capacity(decoded.len());
    decoded.iter().map(|p| !p.alert.event_id.is_empty() && !ids.insert(p.alert.event_id.as_ref())).collect()
}

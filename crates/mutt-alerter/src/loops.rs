//! Several batch loops in one alerter process (`alerter.concurrency`).
//!
//! With a durable database a batch spends most of its time waiting for its audit commit (the
//! WAL flush); meanwhile the alerter and Redis idle. Each further loop leases, decides, writes
//! and settles its own batches while the others wait, and PostgreSQL flushes the commits that
//! arrive together in one go.
//!
//! Every loop is a consumer of its own, exactly like a separate alerter process: its own pod
//! name (the process's, then `<pod>-1`, `<pod>-2`, … for the loops after the first), so its
//! own processing list (Redis) or lease owner (embedded), its own heartbeat, janitor and lease
//! token. The no-loss rules hold per loop as they hold per process: a loop settles a batch only
//! after its audit rows are committed, and a loop that dies leaves its lease to the janitor. A
//! restart with fewer loops leaves the higher-numbered pods' leases to the janitor too (after
//! their heartbeat expires). The rule cache, silences, dynamic settings and metrics are shared.
//!
//! The loops after the first are elastic: they lease only while there is a backlog. Below a
//! few thousand events/s a lease carries one or two events and pays every round trip of a
//! batch, so four loops splitting a light load each pay them for a quarter of the events and
//! compete for the same two cores (issue 21: one loop used ~12 % less CPU per event at
//! 2,000/s than four, with half the p99). A loop after the first rests after a lease less
//! than half full, until a lease of any loop comes back at least half full ([`Backlog`]); the
//! first loop always leases. Half, not full: with batch envelopes a lease stops before an
//! envelope that would overflow it, so a full queue can still give a lease short of the batch
//! size, but never short of half of it.

use crate::{Alerter, AlerterError};
use mutt_core::PodName;
use mutt_queue::{Consumer, ConsumerConfig, Queue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tells the resting loops that a lease came back at least half full: a generation number,
/// raised at every such lease, that each resting loop waits to see move.
#[derive(Clone)]
pub(crate) struct Backlog {
    generation: Arc<watch::Sender<u64>>,
    /// `mutt_alerter_active_loops`: the loops leasing now.
    active: prometheus_client::metrics::gauge::Gauge,
}

impl Backlog {
    pub(crate) fn new(active: prometheus_client::metrics::gauge::Gauge) -> Self {
        Self { generation: Arc::new(watch::Sender::new(0)), active }
    }

    /// Whether a lease of `events` says the queue holds more than the loops take.
    pub(crate) fn is_backlogged(events: usize, batch_size: usize) -> bool {
        events >= batch_size.div_ceil(2).max(1)
    }

    /// A lease of `events` came back: wakes the resting loops if it says there is a backlog.
    pub(crate) fn lease_taken(&self, events: usize, batch_size: usize) {
        if Self::is_backlogged(events, batch_size) {
            self.generation.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// A watch for a loop after the first (it starts awake: the next lease decides).
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// The pod name of loop `k` (0 is the process's own).
pub fn loop_pod(pod: &PodName, k: usize) -> Result<PodName, AlerterError> {
    if k == 0 {
        return Ok(pod.clone());
    }
    PodName::parse(format!("{pod}-{k}")).map_err(|e| AlerterError::Config(format!("pod name of alerter loop {k}: {e}")))
}

/// Starts the consumers of the loops after the first.
pub(crate) async fn extra_consumers(
    queue: &dyn Queue,
    consumer: &ConsumerConfig,
    concurrency: usize,
) -> Result<Vec<Box<dyn Consumer>>, AlerterError> {
    let mut extra = Vec::new();
    for k in 1..concurrency.max(1) {
        let config = ConsumerConfig { pod: loop_pod(&consumer.pod, k)?, ..consumer.clone() };
        extra.push(queue.consumer(config).await?);
    }
    Ok(extra)
}

impl Alerter {
    /// Another loop of this alerter, on `consumer`: everything else shared.
    fn sibling(&self, consumer: Box<dyn Consumer>) -> Alerter {
        Alerter {
            queue: self.queue.clone(),
            coordination: self.coordination.clone(),
            dynamic: self.dynamic.clone(),
            alert_queue_depth: self.alert_queue_depth.clone(),
            warned_at: None,
            consumer,
            extra: Vec::new(),
            leased: 0,
            backlog: self.backlog.clone(),
            wake: Some(self.backlog.watch()),
            store: self.store.clone(),
            rules: self.rules.clone(),
            silences: self.silences.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            watchdog: self.watchdog.clone(),
            timings: self.timings.clone(),
        }
    }

    /// Runs the loops after the first as tasks, until `shutdown`.
    pub(crate) fn spawn_extra_loops(&mut self, shutdown: &CancellationToken) -> tokio::task::JoinSet<()> {
        let mut loops = tokio::task::JoinSet::new();
        for consumer in std::mem::take(&mut self.extra) {
            let sibling = self.sibling(consumer);
            loops.spawn(sibling.run_loop(shutdown.clone()));
        }
        loops
    }

    /// One batch loop until `shutdown`; then hands back its lease and stops its consumer.
    /// A loop after the first rests after a lease less than half full ([`Backlog`]).
    pub(crate) async fn run_loop(mut self, shutdown: CancellationToken) {
        let mut backoff = mutt_service::Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        self.backlog.active.inc();
        while !shutdown.is_cancelled() {
            match self.step(&shutdown).await {
                Ok(outcome) => {
                    self.watchdog.progress();
                    backoff.reset();
                    if !Backlog::is_backlogged(outcome.events(), self.config.batch_size) && !self.rest(&shutdown).await
                    {
                        break;
                    }
                }
                Err(f) => {
                    let wait = backoff.next_delay();
                    tracing::error!(
                        error = %f.error,
                        events = f.events,
                        event_ids = %f.event_ids,
                        retry_in_ms = wait.as_millis() as u64,
                        "alerter batch failed"
                    );
                    if !mutt_service::sleep_or_shutdown(wait, &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.backlog.active.dec();
        self.set_leased(0);
        if let Err(e) = self.consumer.shutdown().await {
            let pod = self.consumer.config().pod.clone();
            tracing::warn!(error = %e, %pod, "alerter shutdown could not hand back its lease (a janitor will)");
        }
    }

    /// A loop after the first waits until a lease of any loop comes back at least half full
    /// since it last woke (at once if one did meanwhile); the first loop never rests. False at
    /// shutdown. It holds no lease while it rests: its last batch is settled.
    async fn rest(&mut self, shutdown: &CancellationToken) -> bool {
        let Some(wake) = self.wake.as_mut() else {
            return true;
        };
        self.backlog.active.dec();
        let woke = tokio::select! {
            changed = wake.changed() => changed.is_ok(),
            () = shutdown.cancelled() => false,
        };
        self.backlog.active.inc();
        woke
    }

    /// `mutt_alerter_processing_list_depth` counts the events every loop holds: each loop
    /// adds the change in its own.
    pub(crate) fn set_leased(&mut self, n: usize) {
        let n = n as i64;
        self.metrics.processing_list_depth.inc_by(n - self.leased);
        self.leased = n;
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn a_lease_at_least_half_full_is_a_backlog() {
        assert!(Backlog::is_backlogged(50, 100));
        assert!(!Backlog::is_backlogged(49, 100));
        assert!(Backlog::is_backlogged(5, 9), "half rounded up");
        assert!(!Backlog::is_backlogged(4, 9));
        assert!(Backlog::is_backlogged(1, 1), "batches of one: every lease");
        assert!(!Backlog::is_backlogged(0, 1), "an empty lease never");
        assert!(Backlog::is_backlogged(300, 100), "an envelope larger than the batch");
    }
}

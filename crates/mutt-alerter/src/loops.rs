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

use crate::{Alerter, AlerterError};
use mutt_core::PodName;
use mutt_queue::{Consumer, ConsumerConfig, Queue};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    pub(crate) async fn run_loop(mut self, shutdown: CancellationToken) {
        let mut backoff = mutt_service::Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        while !shutdown.is_cancelled() {
            match self.step(&shutdown).await {
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
                        "alerter batch failed"
                    );
                    if !mutt_service::sleep_or_shutdown(wait, &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.set_leased(0);
        if let Err(e) = self.consumer.shutdown().await {
            let pod = self.consumer.config().pod.clone();
            tracing::warn!(error = %e, %pod, "alerter shutdown could not hand back its lease (a janitor will)");
        }
    }

    /// `mutt_alerter_processing_list_depth` counts the events every loop holds: each loop
    /// adds the change in its own.
    pub(crate) fn set_leased(&mut self, n: usize) {
        let n = n as i64;
        self.metrics.processing_list_depth.inc_by(n - self.leased);
        self.leased = n;
    }
}

//! The alerter: leases batches of events from the ingest queue, decides each against the
//! cached rules, writes the batch's audit rows in one statement, and pushes the batch's alerts
//! and dead letters with the ack in one atomic settle.
//!
//! Layout:
//! - [`rules`]: the rule cache (load, atomic swap, periodic reload, version check per batch);
//! - [`batch`]: one batch from lease to settle ([`Alerter::process_one_batch`]);
//! - [`metrics`]: the original's `mutt_alerter_*` metrics.
//! - [`flap`]: flap suppression (events past a rule's flap limit audited, not forwarded; one
//!   summary per window).
//! - [`silence`]: silences and maintenance windows (audited, not forwarded).
//!
//! Failure handling: the database unavailable (connection lost, timed out, locked, busy) →
//! the batch stays leased and the write is retried with backoff (the heartbeat keeps the lease
//! ours); an event whose audit row the database refuses for any other reason (a constraint, a
//! trigger, permissions) is found by splitting the batch, retried with `_retry_count` and
//! dead-lettered with the database's message once `max_retries` are spent, while its batch
//! mates are audited; an event that cannot be read is dead-lettered alone with its reason;
//! Redis unreachable at settle → the settle is retried (it is idempotent).

pub mod batch;
pub mod dynamic;
pub mod flap;
pub mod loops;
pub mod metrics;
mod payload;
pub mod rules;
pub mod silence;
pub mod timings;

use mutt_queue::{ConsumerConfig, Coordination, Queue, QueueError, WorkerRole};
use mutt_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use batch::BatchOutcome;
pub use metrics::AlerterMetrics;
pub use rules::RuleCache;
pub use timings::{BatchTimings, Phase, SharedTimings};

#[derive(Clone, Debug)]
pub struct AlerterConfig {
    /// Events leased per batch.
    pub batch_size: usize,
    /// How long one lease call waits for the first event.
    pub block_timeout: Duration,
    /// Retries of an event after a failure before it is dead-lettered (original: 3).
    pub max_retries: u32,
    /// Fields an event must carry with a non-empty value to be processed.
    pub required_fields: Vec<String>,
    /// Rule cache reload period (original: 300 s).
    pub cache_reload_interval: Duration,
    /// Backoff ceiling while PostgreSQL or Redis is unreachable.
    pub max_backoff: Duration,
    /// Team of unhandled meta-alerts for hosts not in `device_teams` (original: NETO).
    pub unhandled_default_team: String,
    /// Defaults of the settings that `mutt:config:*` keys can change at run time.
    pub dynamic: dynamic::DynamicSettings,
    /// Batch loops in this process, each a consumer of its own ([`loops`]); at least 1.
    pub concurrency: usize,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            block_timeout: Duration::from_secs(2),
            max_retries: 3,
            required_fields: vec!["hostname".into(), "message".into(), "timestamp".into()],
            cache_reload_interval: Duration::from_secs(300),
            max_backoff: Duration::from_secs(10),
            unhandled_default_team: "NETO".into(),
            dynamic: dynamic::DynamicSettings::default(),
            concurrency: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlerterError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("first rule load failed, refusing to start: {0}")]
    InitialLoad(StoreError),
    #[error("{0}")]
    Config(String),
}

pub struct Alerter {
    pub(crate) queue: Arc<dyn Queue>,
    /// Unhandled counters and dynamic configuration.
    pub(crate) coordination: Arc<dyn Coordination>,
    pub(crate) dynamic: Arc<dynamic::DynamicCache>,
    /// `mutt_alerter_queue_depth` of the queue metrics: set at every backpressure check.
    pub(crate) alert_queue_depth: prometheus_client::metrics::gauge::Gauge,
    /// When the last "alert queue above the warning threshold" line was logged.
    pub(crate) warned_at: Option<std::time::Instant>,
    pub(crate) consumer: Box<dyn mutt_queue::Consumer>,
    /// The consumers of the further loops (`concurrency` − 1), until [`Alerter::run`] starts them.
    pub(crate) extra: Vec<Box<dyn mutt_queue::Consumer>>,
    /// Events this loop holds leased (its part of `mutt_alerter_processing_list_depth`).
    pub(crate) leased: i64,
    /// Wakes the resting loops after the first ([`loops`]).
    pub(crate) backlog: loops::Backlog,
    /// This loop's watch of [`Self::backlog`]; `None` for the first loop, which never rests.
    pub(crate) wake: Option<tokio::sync::watch::Receiver<u64>>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) rules: RuleCache,
    /// Silences and maintenance windows in force.
    pub(crate) silences: silence::SilenceCache,
    pub(crate) config: AlerterConfig,
    pub(crate) metrics: AlerterMetrics,
    /// Told after every step that returned; `/health` fails when it hears nothing for long.
    pub(crate) watchdog: mutt_service::Watchdog,
    /// Time per batch phase, summed over the loops.
    pub(crate) timings: SharedTimings,
}

impl Alerter {
    /// Loads the rules (failing if the first load fails) and starts the queue consumer.
    pub async fn start(
        queue: Arc<dyn Queue>,
        coordination: Arc<dyn Coordination>,
        store: Arc<dyn Store>,
        consumer: ConsumerConfig,
        config: AlerterConfig,
        metrics: AlerterMetrics,
    ) -> Result<Self, AlerterError> {
        debug_assert_eq!(consumer.role, WorkerRole::Alerter);
        let rules = RuleCache::load(store.as_ref(), &metrics).await.map_err(AlerterError::InitialLoad)?;
        if let Err(e) = store.ensure_partitions(3).await {
            tracing::warn!(error = %e, "could not create audit partitions (rows go to the DEFAULT partition)");
        }
        let silences = silence::SilenceCache::new(metrics.silences.clone());
        silences.reload(store.as_ref()).await;
        let alert_queue_depth = consumer.metrics.alert_queue_depth.clone();
        let extra = loops::extra_consumers(queue.as_ref(), &consumer, config.concurrency).await?;
        let consumer = queue.consumer(consumer).await?;
        let dynamic = Arc::new(dynamic::DynamicCache::new(config.dynamic.clone()).watching(coordination.clone()));
        let timings = SharedTimings::reporting_to(metrics.batch_phase_seconds.clone());
        Ok(Self {
            queue,
            coordination,
            dynamic,
            alert_queue_depth,
            warned_at: None,
            consumer,
            extra,
            leased: 0,
            backlog: loops::Backlog::new(metrics.active_loops.clone()),
            wake: None,
            store,
            rules,
            silences,
            config,
            metrics,
            watchdog: mutt_service::Watchdog::default(),
            timings,
        })
    }

    /// The watchdog the loop reports progress to (the one the role's `/health` checks).
    pub fn with_watchdog(mut self, watchdog: mutt_service::Watchdog) -> Self {
        self.watchdog = watchdog;
        self
    }

    pub fn rules(&self) -> &RuleCache {
        &self.rules
    }

    /// Where the batches' time went so far, by phase (all loops).
    pub fn timings(&self) -> BatchTimings {
        self.timings.snapshot()
    }

    /// The same, to read while [`Alerter::run`] runs.
    pub fn shared_timings(&self) -> SharedTimings {
        self.timings.clone()
    }

    pub fn silences(&self) -> &silence::SilenceCache {
        &self.silences
    }

    /// Evaluates silences at `clock`'s time instead of the wall clock's (tests); reloads them
    /// as of that time.
    pub async fn with_silence_clock(mut self, clock: silence::Clock) -> Self {
        self.silences = self.silences.with_clock(clock);
        self.silences.reload(self.store.as_ref()).await;
        self
    }

    /// Runs until `shutdown` (`concurrency` batch loops), then hands back any lease and stops
    /// the consumers.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), AlerterError> {
        let flaps = self.spawn_flap_summaries(shutdown.clone());
        let reloader = self.rules.spawn_reloader(
            self.store.clone(),
            self.coordination.clone(),
            self.config.cache_reload_interval,
            self.metrics.clone(),
            shutdown.clone(),
        );
        let silences = self.silences.spawn_refresher(self.store.clone(), self.coordination.clone(), shutdown.clone());
        let mut loops = self.spawn_extra_loops(&shutdown);
        self.run_loop(shutdown.clone()).await;
        while loops.join_next().await.is_some() {}
        reloader.abort();
        flaps.abort();
        silences.abort();
        tracing::info!("alerter stopped");
        Ok(())
    }
}

/// Readiness of an alerter: Redis and PostgreSQL both answer (`"errors"` names the ones that
/// do not).
pub fn health(queue: Arc<dyn Queue>, store: Arc<dyn Store>, pod: String) -> mutt_service::Health {
    mutt_service::Health::new("mutt-alerter").pod(pod).check("Redis", queue, |q| async move { q.ping().await }).check(
        "PostgreSQL",
        store,
        |s| async move { s.ping().await },
    )
}

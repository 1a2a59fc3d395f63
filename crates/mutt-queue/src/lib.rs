//! MUTT's reliable queue: the interface the workers use, and its Redis lists backend.
//!
//! Layout:
//! - this file: the [`Queue`] and [`Consumer`] interfaces and the names of queues and roles;
//! - [`settlement`]: what a worker decided about a leased batch (emit, retry, dead-letter),
//!   including the retry counter and DLQ annotations written into messages;
//! - [`redis`]: the Redis backend (lists, per-worker processing lists, heartbeats, janitor,
//!   delayed-retry sorted sets, Lua scripts);
//! - [`sqlite`]: the embedded backend (the same semantics in the SQLite data file, for a
//!   single `muttd run` process).
//!
//! The life of a message: a producer [`Queue::push`]es it; a worker's [`Consumer::lease`] moves
//! up to N messages into the worker's own processing list; the worker decides, then
//! [`Consumer::settle`] applies the decision and removes the lease in one atomic step. A worker
//! that dies leaves its processing list behind; a janitor in any live worker of the same role
//! moves it back to the source queue once the dead worker's heartbeat has expired.

pub mod metrics;
pub mod redis;
pub mod settlement;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::PodName;
use std::time::Duration;

pub use metrics::QueueMetrics;
pub use settlement::{RetryOutcome, RetryPolicy, Settlement};

/// The two work queues of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueId {
    /// Events from the ingestor, consumed by the alerter (`mutt:ingest_queue`).
    Ingest,
    /// Alerts from the alerter, consumed by the forwarder (`mutt:alert_queue`).
    Alert,
}

/// A consuming role: where it reads from, where its output and dead letters go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerRole {
    Alerter,
    Forwarder,
}

impl WorkerRole {
    pub fn source(self) -> QueueId {
        match self {
            WorkerRole::Alerter => QueueId::Ingest,
            WorkerRole::Forwarder => QueueId::Alert,
        }
    }

    /// The queue `Settlement::emit` pushes to.
    pub fn output(self) -> Option<QueueId> {
        match self {
            WorkerRole::Alerter => Some(QueueId::Alert),
            WorkerRole::Forwarder => None,
        }
    }

    /// The segment used in processing-list and heartbeat keys (the original's names).
    pub fn key_tag(self) -> &'static str {
        match self {
            WorkerRole::Alerter => "alerter",
            WorkerRole::Forwarder => "moog",
        }
    }

    /// The field in a message that counts failed attempts (the original's names).
    pub fn retry_field(self) -> &'static str {
        match self {
            WorkerRole::Alerter => "_retry_count",
            WorkerRole::Forwarder => "_moog_retry_count",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {context}: {source}")]
    Redis {
        context: &'static str,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("embedded queue: {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: mutt_sqlite::DbError,
    },
    #[error("invalid queue configuration: {0}")]
    Config(String),
    #[error("unexpected reply from the queue backend: {0}")]
    Protocol(String),
}

impl QueueError {
    /// Whether the error is a lost or refused connection (worth waiting for) rather than a bug.
    pub fn is_connection(&self) -> bool {
        match self {
            QueueError::Redis { source, .. } => {
                source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_io_error()
                    || source.is_timeout()
            }
            // Busy (another process writing), disk full or I/O: worth waiting for.
            QueueError::Sqlite { source, .. } => !source.is_rejected(),
            _ => false,
        }
    }
}

/// Settings of one consuming worker.
#[derive(Clone)]
pub struct ConsumerConfig {
    pub role: WorkerRole,
    pub pod: PodName,
    /// How often the heartbeat is refreshed (original: 10 s).
    pub heartbeat_interval: Duration,
    /// How long a heartbeat lives without refresh; after that the worker counts as dead (30 s).
    pub heartbeat_ttl: Duration,
    /// How often the janitor looks for dead workers' processing lists (60 s).
    pub janitor_interval: Duration,
    /// How often due delayed retries are moved back to the source queue.
    pub delayed_poll_interval: Duration,
    /// Where janitor recoveries are counted.
    pub metrics: QueueMetrics,
    /// A message whose worker died more than this many times while holding it is
    /// dead-lettered (reason `worker_crashed`) instead of being handed to the next worker.
    pub max_crashes: u32,
}

impl ConsumerConfig {
    pub fn new(role: WorkerRole, pod: PodName) -> Self {
        Self {
            role,
            pod,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_ttl: Duration::from_secs(30),
            janitor_interval: Duration::from_secs(60),
            delayed_poll_interval: Duration::from_millis(250),
            metrics: QueueMetrics::default(),
            max_crashes: Self::DEFAULT_MAX_CRASHES,
        }
    }

    pub const DEFAULT_MAX_CRASHES: u32 = 3;
}

/// Messages leased by one worker: the exact bytes that were queued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub messages: Vec<Vec<u8>>,
}

impl Lease {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// One unhandled event for [`Queue::count_unhandled`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnhandledKey {
    pub hostname: String,
    /// First 16 hex characters of the SHA-1 of the message text (the original's signature).
    pub signature: String,
    /// The event's id: a redelivered triggering event fires again with the same id.
    pub event_id: String,
}

/// The answer of [`Queue::rate_limit_take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateGrant {
    pub granted: u64,
    /// When fewer than wanted were granted: how long until a slot frees.
    pub retry_after: Duration,
}

/// The answer of [`Queue::breaker_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerPermit {
    /// Closed: deliver.
    Go,
    /// Half-open and this caller holds the single probe: deliver one request.
    Probe,
    /// Open (or another probe is in flight): deliver nothing; ask again after `retry_after`.
    Wait { retry_after: Duration },
}

/// A circuit breaker's state (the original's names and gauge values: 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub fn parse(s: &str) -> Self {
        match s {
            "OPEN" => BreakerState::Open,
            "HALF_OPEN" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::HalfOpen => "HALF_OPEN",
            BreakerState::Open => "OPEN",
        }
    }
}

/// The answer of [`Queue::rate_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit; a slot frees after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// Depths and worker liveness, for `muttd status` and metrics.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct QueueStatus {
    pub queues: Vec<NamedDepth>,
    pub dead_letter_queues: Vec<NamedDepth>,
    pub delayed_retries: Vec<NamedDepth>,
    pub processing_lists: Vec<ProcessingList>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct NamedDepth {
    pub name: String,
    pub depth: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProcessingList {
    pub name: String,
    pub role: String,
    pub pod: String,
    pub depth: u64,
    /// Whether the owner's heartbeat key exists.
    pub alive: bool,
}

/// The producer side and the administration of the queues.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends messages to the back of a queue in one command; returns the new depth.
    async fn push(&self, queue: QueueId, messages: &[Vec<u8>]) -> Result<u64, QueueError>;

    /// Appends ingested events and counts them in the per-minute/hour/day ingest counters, in
    /// one atomic step; returns the new depth of the ingest queue.
    async fn push_ingest(&self, messages: &[Vec<u8>], now: DateTime<Utc>) -> Result<u64, QueueError>;

    async fn depth(&self, queue: QueueId) -> Result<u64, QueueError>;

    async fn dead_letter_depth(&self, role: WorkerRole) -> Result<u64, QueueError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), QueueError>;

    async fn status(&self) -> Result<QueueStatus, QueueError>;

    /// A rate limit shared by every process using this backend: admits the call if fewer than
    /// `limit` were admitted under `name` in the last `window`.
    async fn rate_limit(&self, name: &str, limit: u64, window: Duration) -> Result<RateDecision, QueueError> {
        let grant = self.rate_limit_take(name, limit, window, 1).await?;
        Ok(if grant.granted == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited { retry_after: grant.retry_after }
        })
    }

    /// Takes up to `want` slots of a shared limit at once; grants what is free now.
    async fn rate_limit_take(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
        want: u64,
    ) -> Result<RateGrant, QueueError>;

    /// Asks the shared circuit breaker `name` whether a delivery may go out now.
    async fn breaker_acquire(&self, name: &str, open_for: Duration) -> Result<BreakerPermit, QueueError>;

    /// Records a delivery outcome on breaker `name`; returns the state after it.
    async fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> Result<BreakerState, QueueError>;

    /// The breaker's state and consecutive failure count.
    async fn breaker_state(&self, name: &str) -> Result<(BreakerState, u64), QueueError>;

    /// Which of these event ids were already delivered (recorded by [`Queue::mark_delivered`]).
    async fn already_delivered(&self, ids: &[String]) -> Result<Vec<bool>, QueueError>;

    /// Records event ids as delivered for `ttl`, so that a redelivered alert is not sent again.
    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError>;

    /// Counts unhandled events per (hostname, message signature) in a window anchored at the
    /// first occurrence; returns, per event, whether it is the one that reached `threshold`
    /// (spec §3.6a). Counting stops for `expiry` after that.
    async fn count_unhandled(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError>;

    /// Reads dynamic configuration values (`mutt:config:<key>` on Redis); `None` when unset.
    async fn config_values(&self, keys: &[&str]) -> Result<Vec<Option<String>>, QueueError>;

    /// Sets a dynamic configuration value and tells listeners (`PUBLISH mutt:config:updates
    /// <key>` on Redis, as the original); returns the value it replaced.
    async fn set_config_value(&self, key: &str, value: &str) -> Result<Option<String>, QueueError>;

    /// Starts a consuming worker: writes its heartbeat, takes back what its previous
    /// incarnation (same pod name) left leased, runs the janitor once, and starts the
    /// heartbeat, janitor and delayed-retry tasks.
    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError>;
}

/// One worker's view of its source queue. A consumer holds at most one lease at a time.
#[async_trait]
pub trait Consumer: Send + Sync {
    fn config(&self) -> &ConsumerConfig;

    /// Leases up to `max` messages, waiting up to `wait` for the first one.
    /// Returns `None` when nothing arrived in time.
    async fn lease(&mut self, max: usize, wait: Duration) -> Result<Option<Lease>, QueueError>;

    /// Applies a settlement to the lease and removes the lease, atomically. Safe to call again
    /// after an error: a lease already settled (or recovered by a janitor) is left alone.
    async fn settle(&mut self, lease: &Lease, settlement: &Settlement) -> Result<(), QueueError>;

    /// Hands everything this worker has leased back to the front of the source queue.
    async fn release(&mut self) -> Result<u64, QueueError>;

    /// Runs the janitor once; returns how many messages it moved back.
    async fn recover_dead_workers(&self) -> Result<u64, QueueError>;

    /// Releases the lease, stops the background tasks and removes the heartbeat.
    async fn shutdown(&mut self) -> Result<(), QueueError>;
}

//! MUTT's reliable queue: the interface the workers use, and its Redis lists backend.
//!
//! Layout:
//! - this file: the [`Queue`] and [`Consumer`] interfaces, the names of queues and roles, and
//!   [`QueueError`] with its backend-neutral [`QueueErrorKind`];
//! - [`coordination`]: the [`Coordination`] interface, the shared state beside the queues
//!   (rate limits, circuit breaker, delivered ids, unhandled counters, dynamic configuration,
//!   rule-change notifications);
//! - [`settings`]: dynamic settings read through [`Coordination`], cached for a few seconds;
//! - [`periodic`]: the consumers' background loops (heartbeat, janitor, delayed retries);
//! - [`settlement`]: what a worker decided about a leased batch (emit, retry, dead-letter),
//!   including the retry counter and DLQ annotations written into messages;
//! - [`dlq`]: the dead-letter toolbox (list, show, replay, park, purge, export, trim) on both
//!   backends, for the CLI, the management API and the remediation role;
//! - [`log_ids`]: the correlation and event ids log lines name for queued messages;
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

pub mod coordination;
pub mod dlq;
pub mod envelope;
pub mod flap;
pub mod ingest_rate;
pub mod log_ids;
pub mod metrics;
pub mod periodic;
pub mod redis;
pub mod settings;
pub mod settlement;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::PodName;
use std::time::Duration;

pub use coordination::{
    AdmitRequest, BreakerOutcomes, BreakerPermit, BreakerState, Coordination, RateDecision, RateGrant, UnhandledCount,
    UnhandledKey, UnhandledSample,
};
pub use flap::{FlapAck, FlapEvent, FlapSummary, FlapVerdict};
pub use log_ids::MessageIds;
pub use metrics::QueueMetrics;
pub use settings::{Settings, SettingsCache};
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

/// What went wrong, in terms a role can act on without knowing the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueErrorKind {
    /// Lost or refused connection, time-out, busy file: worth waiting for and retrying.
    Unavailable,
    /// The backend has no room (disk full): retrying the same write now fails again.
    Full,
    /// The backend refused this piece of work itself (constraint, type): do not retry it.
    Rejected,
    /// The configuration cannot work (bad URL, missing TLS file).
    Config,
    /// The backend answered something this code does not understand (a bug or a version skew).
    Protocol,
}

impl QueueError {
    pub fn kind(&self) -> QueueErrorKind {
        match self {
            QueueError::Redis { source, .. } => {
                if source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_io_error()
                    || source.is_timeout()
                {
                    QueueErrorKind::Unavailable
                } else {
                    QueueErrorKind::Protocol
                }
            }
            QueueError::Sqlite { source, .. } if source.is_full() => QueueErrorKind::Full,
            QueueError::Sqlite { source, .. } if source.is_rejected() => QueueErrorKind::Rejected,
            // Busy (another process writing) or I/O: worth waiting for.
            QueueError::Sqlite { .. } => QueueErrorKind::Unavailable,
            QueueError::Config(_) => QueueErrorKind::Config,
            QueueError::Protocol(_) => QueueErrorKind::Protocol,
        }
    }

    /// Whether the error is a lost or refused connection (worth waiting for) rather than a bug.
    pub fn is_connection(&self) -> bool {
        matches!(self.kind(), QueueErrorKind::Unavailable | QueueErrorKind::Full)
    }

    /// The backend's name for messages to clients and operators ("redis", "embedded data
    /// file"), so a role can say where the problem is without matching on variants.
    pub fn backend(&self) -> &'static str {
        match self {
            QueueError::Redis { .. } => "redis",
            QueueError::Sqlite { .. } => "embedded data file",
            QueueError::Config(_) | QueueError::Protocol(_) => "queue",
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

/// Messages leased by one worker: the exact bytes that were queued, and the lease's identity.
///
/// The token is settled at most once: a settle retried after a lost reply, or a settle of a
/// lease that was handed back (or recovered by a janitor) in the meantime, changes nothing,
/// so it can never remove or push on behalf of another lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub messages: Vec<Vec<u8>>,
    /// How many queue elements were leased, when not one per message (a backend that packs many
    /// messages into one element: Redis with batch envelopes); 0 otherwise.
    pub(crate) elements: usize,
    /// Random, never 0 for a real lease (0: a default, empty lease that matches nothing).
    token: u64,
    /// Per message, whether it was leased before (handed back or recovered from a dead
    /// worker); `None` when the backend does not tell, so every message may be.
    redelivered: Option<Vec<bool>>,
}

impl Lease {
    /// A new lease of `messages` with a fresh token.
    pub(crate) fn new(messages: Vec<Vec<u8>>) -> Self {
        Self { messages, elements: 0, token: rand::random::<u64>() | 1, redelivered: None }
    }

    /// A lease of `messages` with a given token (a backend that mints tokens itself).
    pub(crate) fn with_token(messages: Vec<Vec<u8>>, token: u64) -> Self {
        Self { messages, elements: 0, token, redelivered: None }
    }

    /// How many queue elements this lease removes at settle (see [`Lease::elements`]).
    pub(crate) fn with_elements(mut self, elements: usize) -> Self {
        self.elements = elements;
        self
    }

    /// How many queue elements the settle removes.
    pub(crate) fn leased_elements(&self) -> usize {
        if self.elements == 0 { self.messages.len() } else { self.elements }
    }

    /// Says which messages were leased before (one flag per message).
    pub(crate) fn with_redeliveries(mut self, redelivered: Vec<bool>) -> Self {
        if redelivered.len() == self.messages.len() {
            self.redelivered = Some(redelivered);
        }
        self
    }

    /// Whether message `i` may have been leased before (and so may have been delivered by a
    /// worker that died before settling): `false` only when the backend knows it is a first
    /// delivery.
    pub fn possibly_redelivered(&self, i: usize) -> bool {
        self.redelivered.as_ref().is_none_or(|r| r.get(i).copied().unwrap_or(true))
    }

    /// The lease's identity, as the backend records it until the settle.
    pub fn token(&self) -> u64 {
        self.token
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
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
    /// What is left of the owner's heartbeat (milliseconds; `None` when it has none): the
    /// heartbeat was written `heartbeat_ttl` minus this ago.
    pub heartbeat_expires_in_ms: Option<u64>,
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

    /// Starts a consuming worker: writes its heartbeat, takes back what its previous
    /// incarnation (same pod name) left leased, runs the janitor once, and starts the
    /// heartbeat, janitor and delayed-retry tasks.
    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError>;

    /// The dead-letter queues, for the toolbox in [`dlq`] (list, replay, park, purge, trim).
    fn dead_letters(&self) -> std::sync::Arc<dyn dlq::DeadLetterStore>;

    /// The ingest counters, for the rate dashboard ([`ingest_rate`]).
    fn ingest_counters(&self) -> std::sync::Arc<dyn ingest_rate::IngestCounters>;
}

/// One worker's view of its source queue. A consumer holds at most one lease at a time.
#[async_trait]
pub trait Consumer: Send + Sync {
    fn config(&self) -> &ConsumerConfig;

    /// Leases up to `max` messages, waiting up to `wait` for the first one.
    /// Returns `None` when nothing arrived in time. A lease that was never settled (the worker
    /// gave up on it after an error) is handed back to the source queue first: a new lease
    /// never joins messages already leased.
    async fn lease(&mut self, max: usize, wait: Duration) -> Result<Option<Lease>, QueueError>;

    /// Applies a settlement to the lease and removes exactly the leased messages, atomically.
    /// Safe to call again after an error: a lease already settled, handed back or recovered by
    /// a janitor (its token no longer current) is left alone and nothing is pushed.
    async fn settle(&mut self, lease: &Lease, settlement: &Settlement) -> Result<(), QueueError>;

    /// Hands everything this worker has leased back to the front of the source queue.
    async fn release(&mut self) -> Result<u64, QueueError>;

    /// Runs the janitor once; returns how many messages it moved back.
    async fn recover_dead_workers(&self) -> Result<u64, QueueError>;

    /// Releases the lease, stops the background tasks and removes the heartbeat.
    async fn shutdown(&mut self) -> Result<(), QueueError>;
}

/// A backend that offers both the queues and the coordination state (Redis, the embedded
/// file). Tools and tests that need both hold one of these; a role takes the two narrow
/// interfaces (`Arc<dyn Queue>`, `Arc<dyn Coordination>`), which it upcasts to.
pub trait Backend: Queue + Coordination {}

impl<T: Queue + Coordination> Backend for T {}

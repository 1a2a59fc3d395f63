//! The Redis lists backend of the queue (the seed decision, ADR-001).
//!
//! Connections: one shared [`ConnectionManager`] (multiplexed, reconnecting, normal response
//! timeout) carries all non-blocking traffic. Every consumer opens its own connection for
//! `BLMOVE`, with no response timeout: redis-rs's default 500 ms timeout would cut a blocking
//! call short, and a blocking call on the shared connection would stall every other command.
//!
//! Layout: this file connects and implements [`Queue`]; [`keys`] names every key;
//! `coordination` implements [`crate::Coordination`]; `consumer` leases and settles;
//! [`scripts`] holds the Lua scripts.

pub mod connection;
mod consumer;
mod coordination;
mod delivered;
mod delivery;
// Kept under this path too: the envelope started as the Redis queue's.
pub use crate::envelope;
mod flap;
mod keys;
mod rotation;
pub mod scripts;

use crate::{
    Consumer, ConsumerConfig, NamedDepth, ProcessingList, Queue, QueueError, QueueId, QueueStatus, WorkerRole,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::Secret;
use std::time::Duration;

use connection::Connector;
pub use connection::{AnyConnection, Topology};
pub use consumer::{BLOCKING_MARGIN, RedisConsumer};
pub use keys::KeySpace;
use std::sync::{Arc, RwLock};

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://…` for TLS.
    pub url: String,
    /// Overrides any password in the URL (from the secrets source).
    pub password: Option<Secret>,
    pub keys: KeySpace,
    /// Single server (the URL), Sentinel or Cluster.
    pub topology: Topology,
    /// PEM file of the CA that signed the servers' certificates (`rediss://`); default: the
    /// system's trust store.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A password written into a URL never shows in a log line or an error.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use mutt_core::secret::redact_url;
        let topology = match &self.topology {
            Topology::Single => "single".to_owned(),
            Topology::Sentinel { master_name, sentinels } => format!(
                "sentinel {master_name} via {}",
                sentinels.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", ")
            ),
            Topology::Cluster { nodes } => {
                format!("cluster via {}", nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", "))
            }
        };
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password)
            .field("keys", &self.keys)
            .field("topology", &topology)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl RedisConfig {
    /// A single server at `url` with default keys.
    pub fn single(url: impl Into<String>, keys: KeySpace) -> Self {
        Self { url: url.into(), password: None, keys, topology: Topology::Single, ca_file: None }
    }
}

pub(crate) fn redis_err(context: &'static str) -> impl FnOnce(redis::RedisError) -> QueueError {
    move |source| QueueError::Redis { context, source }
}

/// The Redis queue: cheap to clone, shares one multiplexed connection.
#[derive(Clone)]
pub struct RedisQueue {
    connector: Arc<Connector>,
    /// The shared connection; replaced when Sentinel reports a new master.
    conn: Arc<RwLock<AnyConnection>>,
    keys: KeySpace,
    /// Makes rate-limiter members unique per process (random) and per call (counter).
    instance: Arc<str>,
    member_seq: Arc<std::sync::atomic::AtomicU64>,
    /// Follows Sentinel failovers while any clone is alive.
    _watcher: Option<Arc<AbortOnDrop>>,
    /// Whether `status()` also SCANs for processing lists (see [`RedisQueue::with_deep_status`]).
    deep_status: bool,
    /// The most events one list element carries (`redis.batch_envelope`); ≤ 1: one per element,
    /// as the original. Reading accepts both forms whatever this says.
    envelope: usize,
    /// From how many bytes of messages a settle goes without a script (see
    /// [`RedisQueue::with_native_settle_from`]).
    native_settle_from: usize,
}

/// Default of [`RedisQueue::with_native_settle_from`]: a script hashes each byte passed to it
/// (~1.6 ns per byte measured here), a native settle costs one more round trip (~25 µs of
/// client and server CPU); 16 KiB is past the point where the bytes cost more.
pub const NATIVE_SETTLE_FROM: usize = 16 * 1024;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisQueue {
    /// Connects (and checks the connection with PING).
    pub async fn connect(config: &RedisConfig) -> Result<Self, QueueError> {
        let credentials = mutt_core::credentials::Credentials::fixed("the password", config.password.clone());
        Self::connect_with_credentials(config, Arc::new(credentials)).await
    }

    /// As [`RedisQueue::connect`], with the passwords `credentials` gives instead of
    /// `config.password`: a single server tries them in order on every new connection.
    pub async fn connect_with_credentials(
        config: &RedisConfig,
        credentials: Arc<mutt_core::credentials::Credentials>,
    ) -> Result<Self, QueueError> {
        // rustls needs one process-wide crypto provider; reqwest uses aws-lc-rs too. An error
        // only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let connector = Connector::new(&config.topology, &config.url, credentials, &config.ca_file)
            .map_err(|e| QueueError::Config(format!("redis: {e}")))?;
        let connector = Arc::new(connector);
        let conn = Arc::new(RwLock::new(connector.shared().await.map_err(redis_err("connecting"))?));
        let watcher = if connector.is_sentinel() {
            Some(Arc::new(AbortOnDrop(tokio::spawn(follow_master(connector.clone(), conn.clone())))))
        } else {
            None
        };
        let q = Self {
            connector,
            conn,
            keys: config.keys.clone(),
            instance: format!("{:016x}", rand::random::<u64>()).into(),
            member_seq: Default::default(),
            _watcher: watcher,
            deep_status: false,
            envelope: 1,
            native_settle_from: NATIVE_SETTLE_FROM,
        };
        q.ping().await?;
        Ok(q)
    }

    /// Makes `status()` SCAN for processing lists not in the worker registry (lists left by
    /// the original MUTT): for `muttd status`, not for periodic metrics.
    pub fn with_deep_status(mut self) -> Self {
        self.deep_status = true;
        self
    }

    /// Pushes up to `max` events per list element (the batch envelope, [`envelope`]); ≤ 1
    /// pushes one event per element, as the original did.
    pub fn with_batch_envelope(mut self, max: usize) -> Self {
        self.envelope = max;
        self
    }

    /// Settles whose messages (emitted, put back, dead-lettered) come to at least `bytes`, and
    /// that delay none, go as one `MULTI`/`EXEC` under `WATCH` instead of one script call
    /// (none on a Redis Cluster); 0 sends every such settle that way (the conformance suite
    /// runs both). Default [`NATIVE_SETTLE_FROM`].
    pub fn with_native_settle_from(mut self, bytes: usize) -> Self {
        self.native_settle_from = bytes;
        self
    }

    /// Whether a settle of `bytes` of messages goes without a script.
    pub(crate) fn settles_natively(&self, bytes: usize) -> bool {
        bytes >= self.native_settle_from && !self.is_cluster()
    }

    /// The elements to push for `messages` (see [`RedisQueue::with_batch_envelope`]).
    pub(crate) fn pack(&self, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
        envelope::pack(messages, self.envelope)
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// A clone of the shared, non-blocking connection (for rate limiters, counters, …).
    pub fn connection(&self) -> AnyConnection {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.connector.is_cluster()
    }

    /// Opens a dedicated connection for blocking commands (no response timeout).
    pub(crate) async fn blocking_connection(&self) -> Result<AnyConnection, QueueError> {
        self.connector.blocking().await.map_err(redis_err("opening blocking connection"))
    }

    /// A queue's depth in events (see `DEPTH_COUNTED`).
    async fn events_in(&self, q: QueueId, context: &'static str) -> Result<u64, QueueError> {
        let mut c = self.connection();
        scripts::DEPTH_COUNTED
            .key(self.keys.queue(q))
            .key(self.keys.events(q))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err(context))
    }

    async fn llen(&self, key: &str, context: &'static str) -> Result<u64, QueueError> {
        let mut c = self.connection();
        redis::cmd("LLEN").arg(key).query_async(&mut c).await.map_err(redis_err(context))
    }

    /// The pods of a role that may own a processing list: the registry set, plus with `deep`
    /// (outside a cluster) whatever SCAN finds, which also covers lists left by the original
    /// MUTT. SCAN walks the whole keyspace, so it runs at worker start and for `muttd status`,
    /// not on every janitor tick.
    pub(crate) async fn known_pods(&self, role: WorkerRole, deep: bool) -> Result<Vec<String>, QueueError> {
        let mut c = self.connection();
        let mut pods: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers(role))
            .query_async(&mut c)
            .await
            .map_err(redis_err("reading the worker registry"))?;
        if deep && !self.is_cluster() {
            for prefix in [&self.keys.processing_prefix, &self.keys.heartbeat_prefix] {
                let prefix = format!("{prefix}:{}:", role.key_tag());
                for key in self.scan(&format!("{prefix}*")).await? {
                    pods.push(key[prefix.len()..].to_owned());
                }
            }
        }
        pods.retain(|p| !p.is_empty() && !p.contains(':'));
        pods.sort();
        pods.dedup();
        Ok(pods)
    }

    /// Lists the keys matching a pattern with SCAN (never KEYS, which blocks the server).
    pub(crate) async fn scan(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let c = self.connection();
        scan_pages(pattern, |cmd| {
            // Clones share the one connection; each page's future owns its handle.
            let mut c = c.clone();
            async move { cmd.query_async(&mut c).await.map_err(redis_err("scanning keys")) }
        })
        .await
    }
}

/// SCAN's cursor loop over `pattern`: `page` sends one SCAN and reads its reply (cursor, keys).
/// The keys come back sorted and once each (SCAN may return a key more than once).
async fn scan_pages<F, Fut>(pattern: &str, mut page: F) -> Result<Vec<String>, QueueError>
where
    F: FnMut(redis::Cmd) -> Fut,
    Fut: std::future::Future<Output = Result<(u64, Vec<String>), QueueError>>,
{
    let (mut cursor, mut out) = (0u64, Vec::new());
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500);
        let (next, keys) = page(cmd).await?;
        out.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[async_trait]
impl Queue for RedisQueue {
    async fn push(&self, queue: QueueId, messages: &[Vec<u8>]) -> Result<u64, QueueError> {
        if messages.is_empty() {
            return self.depth(queue).await;
        }
        // One element per message, envelopes or not: this is the path of replays and
        // remediation, whose messages are looked at one by one; the bulk paths (ingest, the
        // alerter's alerts) pack.
        let mut inv = scripts::PUSH_COUNTED.prepare_invoke();
        inv.key(self.keys.queue(queue)).key(self.keys.events(queue));
        for m in messages {
            inv.arg(m.as_slice());
        }
        let mut c = self.connection();
        inv.invoke_async(&mut c).await.map_err(redis_err("pushing messages"))
    }

    async fn push_ingest(&self, messages: &[Vec<u8>], now: DateTime<Utc>) -> Result<u64, QueueError> {
        let n = messages.len() as u64;
        let p = &self.keys.metrics_prefix;
        let minute = format!("{p}:1m:{}", now.format("%Y-%m-%dT%H:%M"));
        let hour = format!("{p}:1h:{}", now.format("%Y-%m-%dT%H"));
        let day = format!("{p}:24h:{}", now.format("%Y-%m-%d"));
        if messages.is_empty() {
            return self.depth(QueueId::Ingest).await;
        }
        // One MULTI: the elements by a native LPUSH, the counters by a small script.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("LPUSH").arg(&self.keys.ingest_queue).arg(self.pack(messages));
        pipe.cmd("EVAL")
            .arg(scripts::INGEST_COUNTERS)
            .arg(4)
            .arg(&minute)
            .arg(&hour)
            .arg(&day)
            .arg(self.keys.events(QueueId::Ingest))
            .arg(n)
            .arg(7_200)
            .arg(172_800)
            .arg(2_592_000);
        let mut c = self.connection();
        let (len, events): (u64, u64) = pipe.query_async(&mut c).await.map_err(redis_err("enqueueing events"))?;
        Ok(len.max(events))
    }

    async fn depth(&self, queue: QueueId) -> Result<u64, QueueError> {
        self.events_in(queue, "reading queue depth").await
    }

    async fn dead_letter_depth(&self, role: WorkerRole) -> Result<u64, QueueError> {
        self.llen(self.keys.dead_letter_queue(role), "reading DLQ depth").await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut c = self.connection();
        let _: String = redis::cmd("PING").query_async(&mut c).await.map_err(redis_err("ping"))?;
        Ok(())
    }

    async fn status(&self) -> Result<QueueStatus, QueueError> {
        let mut status = QueueStatus::default();
        let mut c = self.connection();
        for q in [QueueId::Ingest, QueueId::Alert] {
            let name = self.keys.queue(q).to_owned();
            let depth = self.events_in(q, "reading queue depth").await?;
            status.queues.push(NamedDepth { name, depth });
            let name = self.keys.delayed(q);
            let depth: u64 = redis::cmd("ZCARD")
                .arg(&name)
                .query_async(&mut c)
                .await
                .map_err(redis_err("reading delayed retries"))?;
            status.delayed_retries.push(NamedDepth { name, depth });
        }
        for role in [WorkerRole::Alerter, WorkerRole::Forwarder] {
            let name = self.keys.dead_letter_queue(role).to_owned();
            let depth = self.llen(&name, "reading DLQ depth").await?;
            status.dead_letter_queues.push(NamedDepth { name, depth });
            for pod in self.known_pods(role, self.deep_status).await? {
                let name = self.keys.processing_list(role, &pod);
                let depth: u64 = scripts::LIST_EVENTS
                    .key(&name)
                    .invoke_async(&mut c)
                    .await
                    .map_err(redis_err("reading processing list"))?;
                // PTTL: -2 no key, -1 no expiry (never written so by muttd), else ms left.
                let left: i64 = redis::cmd("PTTL")
                    .arg(self.keys.heartbeat(role, &pod))
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err("reading heartbeat"))?;
                let alive = left != -2;
                if depth > 0 || alive {
                    status.processing_lists.push(ProcessingList {
                        name,
                        role: role.key_tag().to_owned(),
                        pod,
                        depth,
                        alive,
                        heartbeat_expires_in_ms: u64::try_from(left).ok(),
                    });
                }
            }
        }
        // Parked poison (the remediation's and `muttd dlq park`'s), after the two workers' DLQs.
        let dead = self.keys.dead_dlq.clone();
        let depth = self.llen(&dead, "reading DLQ depth").await?;
        status.dead_letter_queues.push(NamedDepth { name: dead, depth });
        Ok(status)
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(RedisConsumer::start(self.clone(), config).await?))
    }

    fn dead_letters(&self) -> Arc<dyn crate::dlq::DeadLetterStore> {
        Arc::new(self.clone())
    }

    fn ingest_counters(&self) -> Arc<dyn crate::ingest_rate::IngestCounters> {
        Arc::new(self.clone())
    }
}

/// Sentinel mode: asks the sentinels for the master every second and moves the shared
/// connection when it changed (consumers' blocking connections follow on their next error).
async fn follow_master(connector: Arc<Connector>, conn: Arc<RwLock<AnyConnection>>) {
    let mut current = connector.master_address().await.ok();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(now) = connector.master_address().await else { continue };
        if current.as_deref() == Some(now.as_str()) {
            continue;
        }
        match connector.shared().await {
            Ok(fresh) => {
                tracing::warn!(master = %now, "redis sentinel reports a new master; switching");
                *conn.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                current = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, master = %now, "cannot connect to the new master yet"),
        }
    }
}

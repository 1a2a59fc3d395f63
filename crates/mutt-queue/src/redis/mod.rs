//! The Redis lists backend of the queue (the seed decision, ADR-001).
//!
//! Connections: one shared [`ConnectionManager`] (multiplexed, reconnecting, normal response
//! timeout) carries all non-blocking traffic. Every consumer opens its own connection for
//! `BLMOVE`, with no response timeout: redis-rs's default 500 ms timeout would cut a blocking
//! call short, and a blocking call on the shared connection would stall every other command.

pub mod connection;
mod consumer;
pub mod scripts;

use crate::{BreakerPermit, BreakerState, RateGrant};
use crate::{
    Consumer, ConsumerConfig, NamedDepth, ProcessingList, Queue, QueueError, QueueId, QueueStatus, UnhandledKey,
    WorkerRole,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::Secret;
use std::time::Duration;

use connection::Connector;
pub use connection::{AnyConnection, Topology};
pub use consumer::RedisConsumer;
use std::sync::{Arc, RwLock};

/// Full key names. Defaults are the original's, so dashboards, runbooks and `redis-cli`
/// habits keep working; a hash-tagged prefix such as `{mutt}:` puts every key in one Redis
/// Cluster slot, which the multi-key scripts need.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySpace {
    pub ingest_queue: String,
    pub alert_queue: String,
    pub alerter_dlq: String,
    pub moog_dlq: String,
    /// Processing lists are `<processing_prefix>:<role>:<pod>`.
    pub processing_prefix: String,
    /// Heartbeats are `<heartbeat_prefix>:<role>:<pod>`.
    pub heartbeat_prefix: String,
    /// Ingest counters `<metrics_prefix>:1m:<YYYY-MM-DDTHH:MM>` etc.
    pub metrics_prefix: String,
    /// Dynamic configuration keys `<config_prefix>:<key>` and channels `<config_prefix>:reload`.
    pub config_prefix: String,
    /// The key prefix itself, under which the coordination keys live: rate limiters
    /// `<prefix>rate_limit:<name>`, circuit breakers `<prefix>circuit_breaker:<name>:*`,
    /// delivered ids `<prefix>delivered`.
    pub prefix: String,
    /// Sets of the pods of each role, `<workers_prefix>:<role>`, so janitors find processing
    /// lists without SCAN (which does not span a Redis Cluster).
    pub workers_prefix: String,
    /// Unhandled-event counters `<unhandled_prefix>:<hostname>:<sig16>` (spec §4.8).
    pub unhandled_prefix: String,
}

impl Default for KeySpace {
    fn default() -> Self {
        Self::with_prefix("mutt:")
    }
}

impl KeySpace {
    /// All keys under one prefix (`mutt:` gives the original names).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            ingest_queue: format!("{prefix}ingest_queue"),
            alert_queue: format!("{prefix}alert_queue"),
            alerter_dlq: format!("{prefix}dlq:alerter"),
            moog_dlq: format!("{prefix}dlq:moog"),
            processing_prefix: format!("{prefix}processing"),
            heartbeat_prefix: format!("{prefix}heartbeat"),
            metrics_prefix: format!("{prefix}metrics"),
            config_prefix: format!("{prefix}config"),
            prefix: prefix.to_owned(),
            workers_prefix: format!("{prefix}workers"),
            unhandled_prefix: format!("{prefix}unhandled"),
        }
    }

    pub fn queue(&self, q: QueueId) -> &str {
        match q {
            QueueId::Ingest => &self.ingest_queue,
            QueueId::Alert => &self.alert_queue,
        }
    }

    pub fn dead_letter_queue(&self, role: WorkerRole) -> &str {
        match role {
            WorkerRole::Alerter => &self.alerter_dlq,
            WorkerRole::Forwarder => &self.moog_dlq,
        }
    }

    /// The sorted set of delayed retries for a queue: `<queue>:delayed`.
    pub fn delayed(&self, q: QueueId) -> String {
        format!("{}:delayed", self.queue(q))
    }

    pub fn processing_list(&self, role: WorkerRole, pod: &str) -> String {
        format!("{}:{}:{pod}", self.processing_prefix, role.key_tag())
    }

    /// Hash of per-message crash counts of a role: `<workers_prefix>:<role>:crashes`.
    pub fn crashes(&self, role: WorkerRole) -> String {
        format!("{}:{}:crashes", self.workers_prefix, role.key_tag())
    }

    /// The unhandled-event counter of (host, message signature), and its triggered marker.
    pub fn unhandled(&self, hostname: &str, signature: &str) -> (String, String) {
        let counter = format!("{}:{hostname}:{signature}", self.unhandled_prefix);
        let triggered = format!("{counter}:triggered");
        (counter, triggered)
    }

    /// The circuit breaker's keys (the original's names): state, failures, open_time, and
    /// the half-open probe lock.
    pub fn breaker(&self, name: &str) -> [String; 4] {
        let base = format!("{}circuit_breaker:{name}", self.prefix);
        [format!("{base}:state"), format!("{base}:failures"), format!("{base}:open_time"), format!("{base}:probe")]
    }

    /// Delivered event ids, scored by when they may be forgotten: `<prefix>delivered`.
    pub fn delivered_set(&self) -> String {
        format!("{}delivered", self.prefix)
    }

    pub fn workers(&self, role: WorkerRole) -> String {
        format!("{}:{}", self.workers_prefix, role.key_tag())
    }

    pub fn heartbeat(&self, role: WorkerRole, pod: &str) -> String {
        format!("{}:{}:{pod}", self.heartbeat_prefix, role.key_tag())
    }
}

/// How to reach Redis.
#[derive(Clone, Debug)]
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
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisQueue {
    /// Connects (and checks the connection with PING).
    pub async fn connect(config: &RedisConfig) -> Result<Self, QueueError> {
        // rustls needs one process-wide crypto provider; reqwest uses aws-lc-rs too. An error
        // only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let connector = Connector::new(&config.topology, &config.url, &config.password, &config.ca_file)
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

    async fn llen(&self, key: &str, context: &'static str) -> Result<u64, QueueError> {
        let mut c = self.connection();
        redis::cmd("LLEN").arg(key).query_async(&mut c).await.map_err(redis_err(context))
    }

    /// The pub/sub channel that asks alerters to reload their rules (`mutt:config:reload`;
    /// any payload means "reload").
    pub fn reload_channel(&self) -> String {
        format!("{}:reload", self.keys.config_prefix)
    }

    /// Publishes a rule-reload request; returns how many subscribers got it.
    pub async fn publish_reload(&self) -> Result<u64, QueueError> {
        let mut c = self.connection();
        redis::cmd("PUBLISH")
            .arg(self.reload_channel())
            .arg(r#"{"reload":"rules"}"#)
            .query_async(&mut c)
            .await
            .map_err(redis_err("publishing reload"))
    }

    /// Calls `on_message` for every message on `channel` until `stop` resolves; reconnects
    /// with backoff when the connection drops (pub/sub needs a connection of its own).
    pub async fn listen(
        &self,
        channel: String,
        on_message: impl Fn() + Send,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use futures_util::StreamExt;
        let mut stop = std::pin::pin!(stop);
        let mut wait = Duration::from_millis(200);
        loop {
            let session = async {
                let mut pubsub = self.connector.pubsub().await?;
                pubsub.subscribe(&channel).await?;
                let mut stream = pubsub.on_message();
                while stream.next().await.is_some() {
                    on_message();
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = &mut stop => return,
                r = session => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, channel = %channel, "subscription lost; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
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
        let mut c = self.connection();
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await
                .map_err(redis_err("scanning keys"))?;
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
}

#[async_trait]
impl Queue for RedisQueue {
    async fn push(&self, queue: QueueId, messages: &[Vec<u8>]) -> Result<u64, QueueError> {
        if messages.is_empty() {
            return self.depth(queue).await;
        }
        let mut c = self.connection();
        redis::cmd("LPUSH")
            .arg(self.keys.queue(queue))
            .arg(messages)
            .query_async(&mut c)
            .await
            .map_err(redis_err("pushing messages"))
    }

    async fn push_ingest(&self, messages: &[Vec<u8>], now: DateTime<Utc>) -> Result<u64, QueueError> {
        let n = messages.len() as u64;
        let p = &self.keys.metrics_prefix;
        let minute = format!("{p}:1m:{}", now.format("%Y-%m-%dT%H:%M"));
        let hour = format!("{p}:1h:{}", now.format("%Y-%m-%dT%H"));
        let day = format!("{p}:24h:{}", now.format("%Y-%m-%d"));
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("LPUSH").arg(&self.keys.ingest_queue).arg(messages);
        for (key, ttl) in [(&minute, 7_200), (&hour, 172_800), (&day, 2_592_000)] {
            pipe.cmd("INCRBY").arg(key).arg(n).ignore();
            pipe.cmd("EXPIRE").arg(key).arg(ttl).arg("NX").ignore();
        }
        let mut c = self.connection();
        let (depth,): (u64,) = pipe.query_async(&mut c).await.map_err(redis_err("enqueueing events"))?;
        Ok(depth)
    }

    async fn depth(&self, queue: QueueId) -> Result<u64, QueueError> {
        self.llen(self.keys.queue(queue), "reading queue depth").await
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
            let depth = self.llen(&name, "reading queue depth").await?;
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
                let depth = self.llen(&name, "reading processing list").await?;
                let alive: bool = redis::cmd("EXISTS")
                    .arg(self.keys.heartbeat(role, &pod))
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err("reading heartbeat"))?;
                if depth > 0 || alive {
                    status.processing_lists.push(ProcessingList {
                        name,
                        role: role.key_tag().to_owned(),
                        pod,
                        depth,
                        alive,
                    });
                }
            }
        }
        Ok(status)
    }

    async fn rate_limit_take(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
        want: u64,
    ) -> Result<RateGrant, QueueError> {
        let key = format!("{}rate_limit:{name}", self.keys.prefix);
        let seq = self.member_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut c = self.connection();
        let (granted, wait_ms): (u64, u64) = scripts::SLIDING_WINDOW
            .key(key)
            .arg(limit)
            .arg(window.as_millis().max(1) as u64)
            .arg(format!("{}:{}:{seq}", self.instance, std::process::id()))
            .arg(want)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("rate limit"))?;
        Ok(RateGrant { granted, retry_after: Duration::from_millis(wait_ms) })
    }

    async fn breaker_acquire(&self, name: &str, open_for: Duration) -> Result<BreakerPermit, QueueError> {
        let k = self.keys.breaker(name);
        let seq = self.member_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut c = self.connection();
        let (verdict, wait_ms): (i64, u64) = scripts::BREAKER_ACQUIRE
            .key(&k[0])
            .key(&k[1])
            .key(&k[2])
            .key(&k[3])
            .arg(open_for.as_millis() as u64)
            // A probe that never reports back (its forwarder died) frees the slot after this.
            .arg(30_000)
            .arg(format!("{}:{seq}", self.instance))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("circuit breaker"))?;
        Ok(match verdict {
            1 => BreakerPermit::Go,
            2 => BreakerPermit::Probe,
            _ => BreakerPermit::Wait { retry_after: Duration::from_millis(wait_ms.max(1)) },
        })
    }

    async fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> Result<BreakerState, QueueError> {
        let k = self.keys.breaker(name);
        let mut c = self.connection();
        let state: String = scripts::BREAKER_RECORD
            .key(&k[0])
            .key(&k[1])
            .key(&k[2])
            .key(&k[3])
            .arg(if success { "success" } else { "failure" })
            .arg(threshold.max(1))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("circuit breaker"))?;
        Ok(BreakerState::parse(&state))
    }

    async fn breaker_state(&self, name: &str) -> Result<(BreakerState, u64), QueueError> {
        let k = self.keys.breaker(name);
        let mut c = self.connection();
        let (state, failures): (Option<String>, Option<u64>) =
            redis::cmd("MGET").arg(&k[0]).arg(&k[1]).query_async(&mut c).await.map_err(redis_err("circuit breaker"))?;
        Ok((state.as_deref().map(BreakerState::parse).unwrap_or(BreakerState::Closed), failures.unwrap_or(0)))
    }

    async fn already_delivered(&self, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.connection();
        let expiries: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(self.keys.delivered_set())
            .arg(ids)
            .query_async(&mut c)
            .await
            .map_err(redis_err("reading delivered ids"))?;
        let now = chrono::Utc::now().timestamp_millis() as f64;
        Ok(expiries.into_iter().map(|e| e.is_some_and(|until| until > now)).collect())
    }

    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        // One sorted set scored by expiry instead of a key per id: the keyspace stays small,
        // which keeps SCAN (janitor, status) cheap. Expired members are pruned on every write.
        let now = chrono::Utc::now().timestamp_millis();
        let until = now + ttl.as_millis() as i64;
        let key = self.keys.delivered_set();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&key);
        for id in ids {
            zadd.arg(until).arg(id);
        }
        pipe.add_command(zadd).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl.as_millis() as u64 + 60_000).ignore();
        let mut c = self.connection();
        pipe.query_async::<()>(&mut c).await.map_err(redis_err("recording delivered ids"))
    }

    async fn count_unhandled(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::UNHANDLED.prepare_invoke();
        for e in events {
            let (counter, triggered) = self.keys.unhandled(&e.hostname, &e.signature);
            inv.key(counter).key(triggered);
        }
        inv.arg(threshold.max(1)).arg(expiry.as_secs().max(1));
        for e in events {
            inv.arg(&e.event_id);
        }
        let mut c = self.connection();
        let fired: Vec<i64> = inv.invoke_async(&mut c).await.map_err(redis_err("counting unhandled events"))?;
        Ok(fired.into_iter().map(|f| f == 1).collect())
    }

    async fn config_values(&self, keys: &[&str]) -> Result<Vec<Option<String>>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(format!("{}:{k}", self.keys.config_prefix));
        }
        let mut c = self.connection();
        // One MGET: in a cluster the keys share a slot through the hash-tagged prefix.
        cmd.query_async(&mut c).await.map_err(redis_err("reading dynamic configuration"))
    }

    async fn set_config_value(&self, key: &str, value: &str) -> Result<Option<String>, QueueError> {
        let name = format!("{}:{key}", self.keys.config_prefix);
        let mut c = self.connection();
        // SET … GET (Redis 6.2+): the old value and the new one in one step.
        let old: Option<String> = redis::cmd("SET")
            .arg(&name)
            .arg(value)
            .arg("GET")
            .query_async(&mut c)
            .await
            .map_err(redis_err("writing dynamic configuration"))?;
        redis::cmd("PUBLISH")
            .arg(format!("{}:updates", self.keys.config_prefix))
            .arg(key)
            .query_async::<()>(&mut c)
            .await
            .map_err(redis_err("announcing a configuration change"))?;
        Ok(old)
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(RedisConsumer::start(self.clone(), config).await?))
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

//! The Redis lists backend of the queue (the seed decision, ADR-001).
//!
//! Connections: one shared [`ConnectionManager`] (multiplexed, reconnecting, normal response
//! timeout) carries all non-blocking traffic. Every consumer opens its own connection for
//! `BLMOVE`, with no response timeout: redis-rs's default 500 ms timeout would cut a blocking
//! call short, and a blocking call on the shared connection would stall every other command.

mod consumer;
pub mod scripts;

use crate::{
    Consumer, ConsumerConfig, NamedDepth, ProcessingList, Queue, QueueError, QueueId, QueueStatus, RateDecision,
    WorkerRole,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};
use std::time::Duration;

pub use consumer::RedisConsumer;

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
    /// Shared rate limiters are `<rate_limit_prefix>rate_limit:<name>`.
    pub rate_limit_prefix: String,
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
            rate_limit_prefix: prefix.to_owned(),
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
}

pub(crate) fn redis_err(context: &'static str) -> impl FnOnce(redis::RedisError) -> QueueError {
    move |source| QueueError::Redis { context, source }
}

/// The Redis queue: cheap to clone, shares one multiplexed connection.
#[derive(Clone)]
pub struct RedisQueue {
    client: Client,
    conn: ConnectionManager,
    keys: KeySpace,
    /// Makes rate-limiter members unique per process (random) and per call (counter).
    instance: std::sync::Arc<str>,
    member_seq: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RedisQueue {
    /// Connects (and checks the connection with PING).
    pub async fn connect(config: &RedisConfig) -> Result<Self, QueueError> {
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| QueueError::Config(format!("redis url is not valid ({:?})", e.kind())))?;
        if let Some(p) = &config.password {
            let settings = info.redis_settings().clone().set_password(p.expose());
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(redis_err("opening client"))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(manager_config).await.map_err(redis_err("connecting"))?;
        let q = Self {
            client,
            conn,
            keys: config.keys.clone(),
            instance: format!("{:016x}", rand::random::<u64>()).into(),
            member_seq: Default::default(),
        };
        q.ping().await?;
        Ok(q)
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// A clone of the shared, non-blocking connection (for rate limiters, counters, …).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Opens a dedicated connection for blocking commands (no response timeout).
    pub(crate) async fn blocking_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(redis_err("opening blocking connection"))
    }

    async fn llen(&self, key: &str, context: &'static str) -> Result<u64, QueueError> {
        let mut c = self.conn.clone();
        redis::cmd("LLEN").arg(key).query_async(&mut c).await.map_err(redis_err(context))
    }

    /// The pub/sub channel that asks alerters to reload their rules (`mutt:config:reload`;
    /// any payload means "reload").
    pub fn reload_channel(&self) -> String {
        format!("{}:reload", self.keys.config_prefix)
    }

    /// Publishes a rule-reload request; returns how many subscribers got it.
    pub async fn publish_reload(&self) -> Result<u64, QueueError> {
        let mut c = self.conn.clone();
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
                let mut pubsub = self.client.get_async_pubsub().await?;
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

    /// Lists the keys matching a pattern with SCAN (never KEYS, which blocks the server).
    pub(crate) async fn scan(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let mut c = self.conn.clone();
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
        let mut c = self.conn.clone();
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
        let mut c = self.conn.clone();
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
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await.map_err(redis_err("ping"))?;
        Ok(())
    }

    async fn status(&self) -> Result<QueueStatus, QueueError> {
        let mut status = QueueStatus::default();
        let mut c = self.conn.clone();
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
            let prefix = format!("{}:{}:", self.keys.processing_prefix, role.key_tag());
            for key in self.scan(&format!("{prefix}*")).await? {
                let pod = key[prefix.len()..].to_owned();
                let depth = self.llen(&key, "reading processing list").await?;
                let alive: bool = redis::cmd("EXISTS")
                    .arg(self.keys.heartbeat(role, &pod))
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err("reading heartbeat"))?;
                status.processing_lists.push(ProcessingList {
                    name: key,
                    role: role.key_tag().to_owned(),
                    pod,
                    depth,
                    alive,
                });
            }
            // Live workers whose processing list is currently empty.
            let hb_prefix = format!("{}:{}:", self.keys.heartbeat_prefix, role.key_tag());
            for key in self.scan(&format!("{hb_prefix}*")).await? {
                let pod = key[hb_prefix.len()..].to_owned();
                if !status.processing_lists.iter().any(|p| p.role == role.key_tag() && p.pod == pod) {
                    status.processing_lists.push(ProcessingList {
                        name: self.keys.processing_list(role, &pod),
                        role: role.key_tag().to_owned(),
                        pod,
                        depth: 0,
                        alive: true,
                    });
                }
            }
        }
        Ok(status)
    }

    async fn rate_limit(&self, name: &str, limit: u64, window: Duration) -> Result<RateDecision, QueueError> {
        let key = format!("{}rate_limit:{name}", self.keys.rate_limit_prefix);
        let member =
            format!("{}:{}", std::process::id(), self.member_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut c = self.conn.clone();
        let (admitted, wait_ms): (i64, i64) = scripts::SLIDING_WINDOW
            .key(key)
            .arg(limit)
            .arg(window.as_millis().max(1) as u64)
            .arg(format!("{}:{member}", self.instance))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("rate limit"))?;
        Ok(if admitted == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited { retry_after: Duration::from_millis(wait_ms.max(1) as u64) }
        })
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(RedisConsumer::start(self.clone(), config).await?))
    }
}

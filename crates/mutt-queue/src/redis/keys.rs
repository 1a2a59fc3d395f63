//! The Redis key names of every queue, list, counter and channel.

use crate::{QueueId, WorkerRole};

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
    /// Parked poison (`mutt:dlq:dead`, the original's `DEAD_LETTER_QUEUE`).
    pub dead_dlq: String,
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
    /// delivered ids `<prefix>delivered` and `<prefix>delivered:<second>`.
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
            dead_dlq: format!("{prefix}dlq:dead"),
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
    /// How many events a queue holds (`<queue>:events`): with batch envelopes a list element
    /// may carry many. Kept by the scripts that push and lease; see `DEPTH_COUNTED`.
    pub fn events(&self, q: QueueId) -> String {
        format!("{}:events", self.queue(q))
    }

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

    /// Hash of a role's messages handed back or recovered and not leased again yet (field:
    /// the message, value: how many copies): `<workers_prefix>:<role>:redelivered`. Only these
    /// can have been delivered before, so only these need the delivered-id check.
    pub fn redelivered(&self, role: WorkerRole) -> String {
        format!("{}:{}:redelivered", self.workers_prefix, role.key_tag())
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

    /// Delivered event ids without a time of their own (the original's alerts, meta-alerts),
    /// scored by when they may be forgotten: `<prefix>delivered`.
    pub fn delivered_set(&self) -> String {
        format!("{}delivered", self.prefix)
    }

    /// Delivered muttd event ids (UUIDv7s) made in unix second `second`:
    /// `<prefix>delivered:<second>`.
    pub fn delivered_second(&self, second: i64) -> String {
        format!("{}delivered:{second}", self.prefix)
    }

    pub fn workers(&self, role: WorkerRole) -> String {
        format!("{}:{}", self.workers_prefix, role.key_tag())
    }

    pub fn heartbeat(&self, role: WorkerRole, pod: &str) -> String {
        format!("{}:{}:{pod}", self.heartbeat_prefix, role.key_tag())
    }
}

//! Configuration: defaults, then a TOML file, then the original MUTT's environment variables
//! (so an existing deployment's env file works), then `MUTT_*` variables (`MUTT_ALERTER__BATCH_SIZE`:
//! `__` separates sections). Later sources win. Secrets are not configuration: see `secrets`.
//!
//! Loading takes the environment as a map so that tests are hermetic.

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use mutt_queue::redis::KeySpace;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every listener binds to (`0.0.0.0` to listen on all interfaces).
    pub bind_address: String,
    /// This process's worker name, the last segment of its processing-list and heartbeat keys;
    /// keep it fixed per replica (e.g. the Kubernetes pod name). Default: `<role>-<6 hex>`.
    pub pod_name: Option<String>,
    /// Directory for files MUTT writes itself: the embedded data file, the alerts file when no
    /// webhook is set, the generated API keys of the embedded backend.
    pub data_dir: std::path::PathBuf,
    pub log: LogConfig,
    pub embedded: EmbeddedSection,
    pub redis: RedisSection,
    pub database: DatabaseSection,
    pub ingestor: IngestorSection,
    pub alerter: AlerterSection,
    pub forwarder: ForwarderSection,
    pub web: WebSection,
    pub worker: WorkerSection,
    pub retention: RetentionSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_address: "127.0.0.1".into(),
            pod_name: None,
            data_dir: "mutt-data".into(),
            log: LogConfig::default(),
            embedded: EmbeddedSection::default(),
            redis: RedisSection::default(),
            database: DatabaseSection::default(),
            ingestor: IngestorSection::default(),
            alerter: AlerterSection::default(),
            forwarder: ForwarderSection::default(),
            web: WebSection::default(),
            worker: WorkerSection::default(),
            retention: RetentionSection::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `info,mutt_queue=debug`.
    pub level: String,
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), json: false }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://host:port/db`, or `rediss://…` for TLS. The password comes from the secrets
    /// (`REDIS_PASS_CURRENT`), not from here.
    pub url: Option<String>,
    /// Redis Sentinel: the master's name and the sentinels (`redis://host:26379`); the master is
    /// followed across failovers. Set both instead of `url`.
    pub sentinel_master: Option<String>,
    pub sentinel_urls: Vec<String>,
    /// Redis Cluster: some of its nodes (`redis://host:port`). Needs a hash-tagged key_prefix
    /// such as `{mutt}:` so that each script's keys share a slot.
    pub cluster_nodes: Vec<String>,
    /// PEM CA file for `rediss://` servers signed by a private CA.
    pub ca_file: Option<std::path::PathBuf>,
    /// Prefix of every key; `mutt:` gives the original names. Use a hash tag such as `{mutt}:`
    /// on Redis Cluster.
    pub key_prefix: String,
    pub ingest_queue: Option<String>,
    pub alert_queue: Option<String>,
    pub alerter_dlq: Option<String>,
    pub moog_dlq: Option<String>,
    pub metrics_prefix: Option<String>,
    pub processing_prefix: Option<String>,
    pub heartbeat_prefix: Option<String>,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: None,
            sentinel_master: None,
            sentinel_urls: Vec::new(),
            cluster_nodes: Vec::new(),
            ca_file: None,
            key_prefix: "mutt:".into(),
            ingest_queue: None,
            alert_queue: None,
            alerter_dlq: None,
            moog_dlq: None,
            metrics_prefix: None,
            processing_prefix: None,
            heartbeat_prefix: None,
        }
    }
}

impl RedisSection {
    /// Which deployment the settings describe; refuses ambiguous or unsafe combinations.
    pub fn topology(&self) -> Result<mutt_queue::redis::Topology, ConfigError> {
        use mutt_queue::redis::Topology;
        match (&self.sentinel_master, self.sentinel_urls.is_empty(), self.cluster_nodes.is_empty()) {
            (None, true, true) => Ok(Topology::Single),
            (Some(m), false, true) => {
                Ok(Topology::Sentinel { master_name: m.clone(), sentinels: self.sentinel_urls.clone() })
            }
            (None, true, false) => {
                let k = self.keys();
                let tagged = |s: &str| s.starts_with('{') && s.contains('}');
                if ![&k.ingest_queue, &k.alert_queue, &k.processing_prefix, &k.alerter_dlq, &k.moog_dlq]
                    .iter()
                    .all(|s| tagged(s))
                {
                    return Err(ConfigError::Invalid(
                        "redis.cluster_nodes needs a hash-tagged key_prefix such as \"{mutt}:\" (and no untagged key overrides)".into(),
                    ));
                }
                Ok(Topology::Cluster { nodes: self.cluster_nodes.clone() })
            }
            _ => Err(ConfigError::Invalid(
                "redis: set either url, or sentinel_master with sentinel_urls, or cluster_nodes".into(),
            )),
        }
    }

    pub fn keys(&self) -> KeySpace {
        let mut k = KeySpace::with_prefix(&self.key_prefix);
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut k.ingest_queue, &self.ingest_queue);
        set(&mut k.alert_queue, &self.alert_queue);
        set(&mut k.alerter_dlq, &self.alerter_dlq);
        set(&mut k.moog_dlq, &self.moog_dlq);
        set(&mut k.metrics_prefix, &self.metrics_prefix);
        set(&mut k.processing_prefix, &self.processing_prefix);
        set(&mut k.heartbeat_prefix, &self.heartbeat_prefix);
        k
    }
}

/// The embedded backend, used when neither Redis nor PostgreSQL is configured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedSection {
    /// The SQLite data file; default `<data_dir>/mutt.db`.
    pub path: Option<std::path::PathBuf>,
    /// `full` (default): a commit is on disk before the event is acknowledged; `normal`:
    /// survives a crash of muttd, but the last commits may be lost if the machine loses power.
    pub durability: Durability,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Full,
    Normal,
}

impl EmbeddedSection {
    pub fn durability(&self) -> mutt_sqlite::Durability {
        match self.durability {
            Durability::Full => mutt_sqlite::Durability::Full,
            Durability::Normal => mutt_sqlite::Durability::Normal,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://user@host:port/dbname`. The password comes from the secrets (`DB_PASS_CURRENT`).
    pub url: Option<String>,
    pub pool_size: usize,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self { url: None, pool_size: 10 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestorSection {
    pub port: u16,
    /// Fields every event must carry with a non-empty value.
    #[serde(deserialize_with = "list_or_comma_string")]
    pub required_fields: Vec<String>,
    /// Backpressure: requests get 503 at this ingest-queue depth.
    pub max_queue_size: u64,
    /// Bodies above this get 413.
    pub max_body_bytes: usize,
    /// Accept requests without an API key. Off by default; the ingestor refuses to start
    /// without a key unless this is set.
    pub auth_disabled: bool,
    /// Most events in one batch request.
    pub max_batch_events: usize,
    /// Shared rate limit across ingestors, in requests per window.
    pub rate_limit_enabled: bool,
    pub max_rate: u64,
    pub rate_window_secs: u64,
    /// Textual severities → `syslog_severity`, timestamps → RFC 3339 UTC, wrong types refused.
    pub normalize: bool,
}

impl Default for IngestorSection {
    fn default() -> Self {
        Self {
            port: 8080,
            required_fields: vec!["hostname".into(), "message".into(), "timestamp".into()],
            max_queue_size: 1_000_000,
            max_body_bytes: 5 * 1024 * 1024,
            auth_disabled: false,
            max_batch_events: 10_000,
            rate_limit_enabled: true,
            max_rate: 1000,
            rate_window_secs: 60,
            normalize: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterSection {
    pub port: u16,
    /// Events leased and processed per batch; default 100 on Redis, 500 embedded (each batch
    /// costs a few commits of the one data file, so bigger batches carry more).
    pub batch_size: Option<usize>,
    /// Retries of a failing event before it is dead-lettered.
    pub max_retries: u32,
    /// Rule cache reload period in seconds.
    pub cache_reload_interval_secs: u64,
    /// Unhandled meta-alert: this many unhandled messages (same host and text) within the
    /// expiry window raise one; `mutt:config:unhandled_threshold` / `_expiry_seconds` override.
    pub unhandled_threshold: u64,
    pub unhandled_expiry_secs: u64,
    /// Team of meta-alerts for hosts without a `device_teams` row.
    pub unhandled_default_team: String,
}

impl Default for AlerterSection {
    fn default() -> Self {
        Self {
            port: 8081,
            batch_size: None,
            max_retries: 3,
            cache_reload_interval_secs: 300,
            unhandled_threshold: 100,
            unhandled_expiry_secs: 86_400,
            unhandled_default_team: "NETO".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwarderSection {
    pub port: u16,
    /// Where alerts are POSTed (Moogsoft or any webhook). Unset: alerts go to `alerts_file`.
    pub webhook_url: Option<String>,
    /// JSON-lines file for alerts when no webhook is set; default `<data_dir>/alerts.jsonl`.
    pub alerts_file: Option<std::path::PathBuf>,
    /// `moog-rest-lam` (Moogsoft REST LAM, batched), `legacy` (the original's payload, one per
    /// request, `Authorization: Bearer MOOG_API_KEY`) or `generic` (the alert as JSON).
    pub format: mutt_forwarder::OutputFormat,
    /// REST LAM authentication with the MOOG_API_KEY secret: `token` (`auth_token` in the
    /// body), `basic` (user `lam_user`, password MOOG_API_KEY) or `none`.
    pub lam_auth: String,
    pub lam_user: String,
    /// Alerts per REST LAM request.
    pub lam_batch_size: usize,
    /// Moog severity (0 clear … 5 critical) for syslog severities 0 (emerg) … 7 (debug).
    pub severity_map: [u8; 8],
    /// Moog severity of events without a syslog severity.
    pub default_severity: u8,
    pub timeout_secs: f64,
    /// Alerts leased per batch; default 100 on Redis, 500 embedded.
    pub batch_size: Option<usize>,
    pub max_retries: u32,
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    /// Shared rate limit across forwarders: `rate_limit` alerts per `rate_period_secs`.
    pub rate_limit_enabled: bool,
    pub rate_limit: u64,
    pub rate_period_secs: u64,
    /// Shared circuit breaker: opens after `circuit_breaker_threshold` consecutive retryable
    /// failures, for `circuit_breaker_timeout_secs`, then lets one probe through.
    pub circuit_breaker_enabled: bool,
    pub circuit_breaker_threshold: u64,
    pub circuit_breaker_timeout_secs: u64,
    /// How long delivered event ids are remembered against redelivery (redeliveries come
    /// within minutes: a janitor recovery or a retry).
    pub dedup_ttl_secs: u64,
    /// PEM CA file for a receiver with a private CA; PEM file with a client cert and key.
    pub ca_file: Option<std::path::PathBuf>,
    pub client_identity_file: Option<std::path::PathBuf>,
}

impl Default for ForwarderSection {
    fn default() -> Self {
        Self {
            port: 8083,
            webhook_url: None,
            alerts_file: None,
            format: mutt_forwarder::OutputFormat::MoogRestLam,
            lam_auth: "token".into(),
            lam_user: "mutt".into(),
            lam_batch_size: 100,
            severity_map: mutt_forwarder::payload::DEFAULT_SEVERITY_MAP,
            default_severity: 2,
            timeout_secs: 10.0,
            batch_size: None,
            max_retries: 5,
            retry_base_secs: 1.0,
            retry_max_secs: 60.0,
            rate_limit_enabled: true,
            rate_limit: 50,
            rate_period_secs: 1,
            circuit_breaker_enabled: true,
            circuit_breaker_threshold: 10,
            circuit_breaker_timeout_secs: 300,
            dedup_ttl_secs: 3600,
            ca_file: None,
            client_identity_file: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    pub port: u16,
}

impl Default for WebSection {
    fn default() -> Self {
        Self { port: 8090 }
    }
}

/// How long the audit trails are kept (the original's retention job, run by the alerter's
/// process here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    pub enabled: bool,
    /// `event_audit_log` rows older than this (by event time) are deleted.
    pub event_audit_days: u32,
    /// `config_audit_log` rows older than this are deleted.
    pub config_audit_days: u32,
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// Seconds between runs (the first runs at start).
    pub interval_secs: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self { enabled: true, event_audit_days: 90, config_audit_days: 365, batch_size: 1000, interval_secs: 3600 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    pub heartbeat_interval_secs: u64,
    /// A worker whose heartbeat is older than this counts as dead.
    pub heartbeat_ttl_secs: u64,
    pub janitor_interval_secs: u64,
    /// How long one blocking lease waits for the first message.
    pub block_timeout_secs: f64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self { heartbeat_interval_secs: 10, heartbeat_ttl_secs: 30, janitor_interval_secs: 60, block_timeout_secs: 2.0 }
    }
}

fn list_or_comma_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(v) => v,
        Either::Text(s) => split_list(&s),
    })
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Figment(#[from] Box<figment::Error>),
}

/// The original's variable names and where each lands (spec §11.1).
const LEGACY_VARS: &[(&str, &str, Kind)] = &[
    ("POD_NAME", "pod_name", Kind::Text),
    ("MUTT_DATA_DIR", "data_dir", Kind::Text),
    ("LOG_LEVEL", "log.level", Kind::Text),
    ("LOG_JSON_ENABLED", "log.json", Kind::Flag),
    ("INGEST_QUEUE_NAME", "redis.ingest_queue", Kind::Text),
    ("ALERT_QUEUE_NAME", "redis.alert_queue", Kind::Text),
    ("ALERTER_DLQ_NAME", "redis.alerter_dlq", Kind::Text),
    ("MOOG_DLQ_NAME", "redis.moog_dlq", Kind::Text),
    ("METRICS_PREFIX", "redis.metrics_prefix", Kind::Text),
    ("DB_POOL_MAX_CONN", "database.pool_size", Kind::Int),
    ("SERVER_PORT_INGESTOR", "ingestor.port", Kind::Int),
    ("REQUIRED_FIELDS", "ingestor.required_fields", Kind::List),
    ("MAX_INGEST_QUEUE_SIZE", "ingestor.max_queue_size", Kind::Int),
    ("MAX_INGEST_BODY_BYTES", "ingestor.max_body_bytes", Kind::Int),
    ("RATE_LIMIT_ENABLED", "ingestor.rate_limit_enabled", Kind::Bool),
    ("INGEST_MAX_RATE", "ingestor.max_rate", Kind::Int),
    ("INGEST_RATE_WINDOW", "ingestor.rate_window_secs", Kind::Int),
    ("METRICS_PORT_ALERTER", "alerter.port", Kind::Int),
    ("ALERTER_MAX_RETRIES", "alerter.max_retries", Kind::Int),
    ("CACHE_RELOAD_INTERVAL", "alerter.cache_reload_interval_secs", Kind::Int),
    ("UNHANDLED_THRESHOLD", "alerter.unhandled_threshold", Kind::Int),
    ("UNHANDLED_EXPIRY_SECONDS", "alerter.unhandled_expiry_secs", Kind::Int),
    ("UNHANDLED_DEFAULT_TEAM", "alerter.unhandled_default_team", Kind::Text),
    ("METRICS_PORT_MOOG", "forwarder.port", Kind::Int),
    ("MOOG_WEBHOOK_URL", "forwarder.webhook_url", Kind::Text),
    ("MOOG_WEBHOOK_TIMEOUT", "forwarder.timeout_secs", Kind::Float),
    ("MOOG_MAX_RETRIES", "forwarder.max_retries", Kind::Int),
    ("MOOG_RETRY_BASE_DELAY", "forwarder.retry_base_secs", Kind::Float),
    ("MOOG_RETRY_MAX_DELAY", "forwarder.retry_max_secs", Kind::Float),
    ("MOOG_RATE_LIMIT", "forwarder.rate_limit", Kind::Int),
    ("MOOG_RATE_PERIOD", "forwarder.rate_period_secs", Kind::Int),
    ("CIRCUIT_BREAKER_ENABLED", "forwarder.circuit_breaker_enabled", Kind::Flag),
    ("CIRCUIT_BREAKER_THRESHOLD", "forwarder.circuit_breaker_threshold", Kind::Int),
    ("CIRCUIT_BREAKER_TIMEOUT", "forwarder.circuit_breaker_timeout_secs", Kind::Int),
    ("SERVER_PORT_WEBUI", "web.port", Kind::Int),
    ("ALERTER_HEARTBEAT_INTERVAL", "worker.heartbeat_interval_secs", Kind::Int),
    ("MOOG_HEARTBEAT_INTERVAL", "worker.heartbeat_interval_secs", Kind::Int),
    ("ALERTER_JANITOR_TIMEOUT", "worker.heartbeat_ttl_secs", Kind::Int),
    ("MOOG_JANITOR_TIMEOUT", "worker.heartbeat_ttl_secs", Kind::Int),
    ("BRPOPLPUSH_TIMEOUT", "worker.block_timeout_secs", Kind::Float),
    ("RETENTION_ENABLED", "retention.enabled", Kind::Bool),
    ("RETENTION_EVENT_AUDIT_DAYS", "retention.event_audit_days", Kind::Int),
    ("RETENTION_AUDIT_DAYS", "retention.config_audit_days", Kind::Int),
    ("CONFIG_AUDIT_RETENTION_DAYS", "retention.config_audit_days", Kind::Int),
    ("EVENT_RETENTION_DAYS", "retention.event_audit_days", Kind::Int),
    ("RETENTION_BATCH_SIZE", "retention.batch_size", Kind::Int),
];

/// Names of the legacy variables accepted (for `--help` and the README).
pub fn legacy_variable_names() -> impl Iterator<Item = &'static str> {
    LEGACY_VARS.iter().map(|(n, _, _)| *n).chain([
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
        "REDIS_TLS_ENABLED",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "ALERTER_PROCESSING_LIST_PREFIX",
        "MOOG_PROCESSING_LIST_PREFIX",
        "ALERTER_HEARTBEAT_PREFIX",
        "MOOG_HEARTBEAT_PREFIX",
    ])
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    /// `true` (any case) is true, as the original parsed most booleans.
    Bool,
    Int,
    Float,
    Flag,
    List,
}

fn parse_value(name: &str, raw: &str, kind: Kind) -> Result<Value, ConfigError> {
    let bad = |what: &str| ConfigError::Invalid(format!("{name}={raw:?} is not {what}"));
    Ok(match kind {
        Kind::Text => Value::from(raw),
        Kind::Bool => Value::from(raw.trim().eq_ignore_ascii_case("true")),
        Kind::Int => Value::from(raw.trim().parse::<u64>().map_err(|_| bad("a whole number"))?),
        Kind::Float => Value::from(raw.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        Kind::Flag => Value::from(matches!(raw.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")),
        Kind::List => Value::from(split_list(raw)),
    })
}

fn insert_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), value);
            return;
        }
        let next = cur.entry(p.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else { return };
        cur = m;
    }
}

fn legacy_overrides(env: &HashMap<String, String>) -> Result<Value, ConfigError> {
    let mut root = Map::new();
    for (name, path, kind) in LEGACY_VARS {
        if let Some(raw) = env.get(*name).filter(|v| !v.is_empty()) {
            insert_path(&mut root, path, parse_value(name, raw, *kind)?);
        }
    }
    // Redis: host/port/db/TLS make a URL.
    if env.contains_key("REDIS_HOST") || env.contains_key("REDIS_PORT") {
        let host = env.get("REDIS_HOST").map(String::as_str).unwrap_or("localhost");
        let port = match env.get("REDIS_PORT") {
            Some(p) => {
                p.trim().parse::<u16>().map_err(|_| ConfigError::Invalid(format!("REDIS_PORT={p:?} is not a port")))?
            }
            None => 6379,
        };
        let db = match env.get("REDIS_DB") {
            Some(d) => {
                d.trim().parse::<u32>().map_err(|_| ConfigError::Invalid(format!("REDIS_DB={d:?} is not a number")))?
            }
            None => 0,
        };
        let tls = env.get("REDIS_TLS_ENABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let scheme = if tls { "rediss" } else { "redis" };
        insert_path(&mut root, "redis.url", Value::from(format!("{scheme}://{host}:{port}/{db}")));
    }
    for (var, role) in [("ALERTER_PROCESSING_LIST_PREFIX", "alerter"), ("MOOG_PROCESSING_LIST_PREFIX", "moog")] {
        if let Some(v) = env.get(var) {
            let prefix = v.strip_suffix(&format!(":{role}")).ok_or_else(|| {
                ConfigError::Invalid(format!("{var}={v:?} must end with \":{role}\" (lists are <prefix>:{role}:<pod>)"))
            })?;
            insert_path(&mut root, "redis.processing_prefix", Value::from(prefix));
        }
    }
    for (var, role) in [("ALERTER_HEARTBEAT_PREFIX", "alerter"), ("MOOG_HEARTBEAT_PREFIX", "moog")] {
        if let Some(v) = env.get(var) {
            let prefix = v.strip_suffix(&format!(":{role}")).ok_or_else(|| {
                ConfigError::Invalid(format!("{var}={v:?} must end with \":{role}\" (keys are <prefix>:{role}:<pod>)"))
            })?;
            insert_path(&mut root, "redis.heartbeat_prefix", Value::from(prefix));
        }
    }
    // PostgreSQL: host/port/name/user make a URL (the password stays a secret).
    if env.contains_key("DB_HOST") || env.contains_key("DB_NAME") {
        let host = env.get("DB_HOST").map(String::as_str).unwrap_or("localhost");
        let port = match env.get("DB_PORT") {
            Some(p) => {
                p.trim().parse::<u16>().map_err(|_| ConfigError::Invalid(format!("DB_PORT={p:?} is not a port")))?
            }
            None => 5432,
        };
        let name = env.get("DB_NAME").map(String::as_str).unwrap_or("mutt_db");
        let user = env.get("DB_USER").map(String::as_str).unwrap_or("mutt_user");
        let tls = env.get("DB_TLS_ENABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if tls {
            return Err(ConfigError::Invalid(
                "DB_TLS_ENABLED=true: TLS to PostgreSQL is not supported yet; terminate TLS in a local proxy or set DB_TLS_ENABLED=false".into(),
            ));
        }
        insert_path(&mut root, "database.url", Value::from(format!("postgres://{user}@{host}:{port}/{name}")));
    }
    Ok(Value::Object(root))
}

/// `MUTT_SECTION__KEY=value` → `section.key`. Values that read as numbers or booleans are
/// taken as such (serde then checks the type against the field).
fn mutt_overrides(env: &HashMap<String, String>) -> Value {
    let mut root = Map::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("MUTT_") else {
            continue;
        };
        if rest.starts_with("TEST_") || rest == "CONFIG" || rest.ends_with("_FILE") || is_secret_name(rest) {
            continue;
        }
        let path = rest.to_ascii_lowercase().replace("__", ".");
        let value = if let Ok(n) = raw.parse::<u64>() {
            Value::from(n)
        } else if let Ok(f) = raw.parse::<f64>() {
            Value::from(f)
        } else if let Ok(b) = raw.parse::<bool>() {
            Value::from(b)
        } else {
            Value::from(raw.as_str())
        };
        insert_path(&mut root, &path, value);
    }
    Value::Object(root)
}

fn is_secret_name(name: &str) -> bool {
    crate::secrets::SECRET_NAMES.contains(&name)
}

/// Loads the configuration from an optional TOML file and the given environment.
pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Invalid(format!("config file {} does not exist", path.display())));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(Serialized::defaults(legacy_overrides(env)?)).merge(Serialized::defaults(mutt_overrides(env)));
    let config: Config = fig.extract().map_err(Box::new)?;
    config.validate()?;
    Ok(config)
}

impl Config {
    /// The embedded backend's data file.
    pub fn embedded_path(&self) -> std::path::PathBuf {
        self.embedded.path.clone().unwrap_or_else(|| self.data_dir.join("mutt.db"))
    }

    /// Where alerts go when no webhook is configured.
    pub fn alerts_file(&self) -> std::path::PathBuf {
        self.forwarder.alerts_file.clone().unwrap_or_else(|| self.data_dir.join("alerts.jsonl"))
    }

    /// Checks values that serde's types cannot (before any connection is made).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = &self.pod_name {
            mutt_core::PodName::parse(p.clone()).map_err(|e| ConfigError::Invalid(format!("pod_name: {e}")))?;
        }
        if self.alerter.batch_size.is_some_and(|b| b == 0 || b > 1000) {
            return Err(ConfigError::Invalid("alerter.batch_size must be between 1 and 1000".into()));
        }
        if self.forwarder.batch_size.is_some_and(|b| b == 0 || b > 1000) {
            return Err(ConfigError::Invalid("forwarder.batch_size must be between 1 and 1000".into()));
        }
        if self.worker.heartbeat_ttl_secs <= self.worker.heartbeat_interval_secs {
            return Err(ConfigError::Invalid(
                "worker.heartbeat_ttl_secs must be longer than worker.heartbeat_interval_secs".into(),
            ));
        }
        for (name, v) in [
            ("forwarder.timeout_secs", self.forwarder.timeout_secs),
            ("forwarder.retry_base_secs", self.forwarder.retry_base_secs),
            ("forwarder.retry_max_secs", self.forwarder.retry_max_secs),
            ("worker.block_timeout_secs", self.worker.block_timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
                return Err(ConfigError::Invalid(format!("{name} must be a positive number of seconds")));
            }
        }
        if !matches!(self.forwarder.lam_auth.as_str(), "token" | "basic" | "none") {
            return Err(ConfigError::Invalid("forwarder.lam_auth must be token, basic or none".into()));
        }
        if self.forwarder.severity_map.iter().chain([&self.forwarder.default_severity]).any(|s| *s > 5) {
            return Err(ConfigError::Invalid("forwarder severities are Moog's 0 (clear) … 5 (critical)".into()));
        }
        if self.ingestor.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("ingestor.max_body_bytes must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_originals() {
        let c = load(None, &HashMap::new()).unwrap();
        assert_eq!(c.ingestor.port, 8080);
        assert_eq!(c.alerter.max_retries, 3);
        assert_eq!(c.forwarder.max_retries, 5);
        assert_eq!(c.redis.keys().ingest_queue, "mutt:ingest_queue");
        assert_eq!(c.redis.keys().processing_list(mutt_queue::WorkerRole::Forwarder, "p"), "mutt:processing:moog:p");
    }

    #[test]
    fn original_env_file_works() {
        let c = load(
            None,
            &env(&[
                ("REDIS_HOST", "redis.internal"),
                ("REDIS_PORT", "6380"),
                ("REDIS_TLS_ENABLED", "true"),
                ("DB_HOST", "pg"),
                ("DB_NAME", "mutt"),
                ("DB_TLS_ENABLED", "false"),
                ("MOOG_WEBHOOK_URL", "https://moog/api"),
                ("INGEST_QUEUE_NAME", "custom:ingest"),
                ("REQUIRED_FIELDS", " hostname , message,"),
                ("POD_NAME", "alerter-0"),
                ("ALERTER_PROCESSING_LIST_PREFIX", "x:proc:alerter"),
                ("LOG_JSON_ENABLED", "yes"),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("rediss://redis.internal:6380/0"));
        assert_eq!(c.database.url.as_deref(), Some("postgres://mutt_user@pg:5432/mutt"));
        assert_eq!(c.forwarder.webhook_url.as_deref(), Some("https://moog/api"));
        assert_eq!(c.redis.keys().ingest_queue, "custom:ingest");
        assert_eq!(c.redis.keys().processing_prefix, "x:proc");
        assert_eq!(c.ingestor.required_fields, vec!["hostname", "message"]);
        assert_eq!(c.pod_name.as_deref(), Some("alerter-0"));
        assert!(c.log.json);
    }

    #[test]
    fn mutt_variables_win_over_legacy_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mutt.toml");
        std::fs::write(&path, "[alerter]\nbatch_size = 50\n[ingestor]\nport = 9000\n").unwrap();
        let c = load(
            Some(&path),
            &env(&[
                ("SERVER_PORT_INGESTOR", "9100"),
                ("MUTT_INGESTOR__PORT", "9200"),
                ("MUTT_REDIS__KEY_PREFIX", "{mutt}:"),
            ]),
        )
        .unwrap();
        assert_eq!(c.alerter.batch_size, Some(50));
        assert_eq!(c.ingestor.port, 9200);
        assert_eq!(c.redis.keys().alert_queue, "{mutt}:alert_queue");
    }

    #[test]
    fn redis_topologies() {
        use mutt_queue::redis::Topology;
        let c = load(None, &env(&[("MUTT_REDIS__CLUSTER_NODES", "x")])).unwrap_err().to_string();
        assert!(c.contains("cluster_nodes") || c.contains("sequence"), "{c}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[redis]\ncluster_nodes = [\"redis://a:1\"]\n").unwrap();
        let c = load(Some(&path), &HashMap::new()).unwrap();
        assert!(c.redis.topology().unwrap_err().to_string().contains("{mutt}:"), "cluster needs a hash tag");
        std::fs::write(&path, "[redis]\nkey_prefix = \"{mutt}:\"\ncluster_nodes = [\"redis://a:1\"]\n").unwrap();
        let c = load(Some(&path), &HashMap::new()).unwrap();
        assert_eq!(c.redis.topology().unwrap(), Topology::Cluster { nodes: vec!["redis://a:1".into()] });
        std::fs::write(&path, "[redis]\nsentinel_master = \"mymaster\"\nsentinel_urls = [\"redis://s:26379\"]\n")
            .unwrap();
        let c = load(Some(&path), &HashMap::new()).unwrap();
        assert!(matches!(c.redis.topology().unwrap(), Topology::Sentinel { .. }));
        assert_eq!(RedisSection::default().topology().unwrap(), Topology::Single);
    }

    #[test]
    fn bad_values_are_named() {
        let e = load(None, &env(&[("SERVER_PORT_INGESTOR", "eighty")])).unwrap_err().to_string();
        assert!(e.contains("SERVER_PORT_INGESTOR"), "{e}");
        let e = load(None, &env(&[("POD_NAME", "a:b")])).unwrap_err().to_string();
        assert!(e.contains("':'"), "{e}");
        let e = load(None, &env(&[("MUTT_ALERTER__BATCH_SIZE", "many")])).unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[alerter]\nbatch_sise = 5\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("batch_sise"), "{e}");
    }
}

//! Configuration: defaults, then a TOML file, then the original MUTT's environment variables
//! (so an existing deployment's env file works), then `MUTT_*` variables (`MUTT_ALERTER__BATCH_SIZE`:
//! `__` separates sections). Later sources win. Secrets are not configuration: see `secrets`.
//!
//! Each role section takes its defaults from its role crate's `Default` and turns into that
//! crate's config in one method (`to_ingest_config`, `to_alerter_config`, …). Values the roles
//! cannot use (a zero rate, window or threshold) are refused at load, naming the setting as the
//! user wrote it ([`error`]). `MUTT_*` variables that name no setting are refused too: a typo
//! silently ignored would leave the default in force.
//!
//! Loading takes the environment as a map so that tests are hermetic.

mod env;
mod error;
mod http;
pub mod listener;
mod moog_key;
mod remediation;
mod slo;
pub mod tls;

pub use env::legacy_variable_names;
pub use error::ConfigError;
pub use http::HttpSection;
pub use remediation::RemediationSection;
pub use slo::SloSection;

use error::Namer;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use mutt_alerter::AlerterConfig;
use mutt_core::{PodName, Secret};
use mutt_forwarder::{Destination, ForwarderConfig, LamAuth};
use mutt_ingest::IngestConfig;
use mutt_queue::redis::KeySpace;
use mutt_queue::{ConsumerConfig, QueueMetrics, WorkerRole};
use mutt_store::retention::RetentionConfig;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Events the alerter leases per batch on the embedded backend when `batch_size` is unset:
/// every batch waits for a few commits of the one data file, and each commit writes whole
/// pages (an audit batch touches about one page of the hostname index per host), so bigger
/// batches carry more per page written. 1000 drained a backlog ~20 % faster than 500 (issue
/// 21, docs/benchmarks.md). On Redis the role crate's default applies.
pub const EMBEDDED_ALERTER_BATCH_SIZE: usize = 1000;
/// Alerts the forwarder leases per batch on the embedded backend when `batch_size` is unset.
/// Under load a batch takes about as long whatever its size (it waits for the busy writer
/// twice: lease, then settle), so the larger batch delivers about twice as many alerts while
/// the load runs (issue 21, docs/benchmarks.md). On Redis the role crate's default applies.
pub const EMBEDDED_FORWARDER_BATCH_SIZE: usize = 1000;
/// Alerter batch loops on the embedded backend when `alerter.concurrency` is unset. One loop
/// waits for the one writer four times a batch (lease, audit, counts, settle) and decides
/// nothing meanwhile (its phase times summed to the wall clock); with two, one decides while
/// the other's rows commit, and their commits share the writer's groups and fsyncs. Same
/// CPU; single events 28-68 % faster end to end, the batched backlog drained in 12 s instead
/// of 21 (issue 21, docs/benchmarks.md). On Redis the role crate's default (1) applies.
pub const EMBEDDED_ALERTER_CONCURRENCY: usize = 2;

/// A role setting: as configured, else the embedded backend's default (when embedded), else
/// the role crate's.
fn role_setting(configured: Option<usize>, role_default: usize, embedded: Option<usize>) -> usize {
    configured.or(embedded).unwrap_or(role_default)
}

/// `Debug` with URL passwords redacted ([`tls::redacted`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    pub secrets: crate::secrets::SecretsSection,
    pub slo: SloSection,
    pub http: HttpSection,
    pub remediation: RemediationSection,
}

tls::redacted_debug!(Config, RedisSection, DatabaseSection, ForwarderSection);

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
            secrets: crate::secrets::SecretsSection::default(),
            slo: SloSection::default(),
            http: HttpSection::default(),
            remediation: RemediationSection::default(),
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

/// `Debug` with URL passwords redacted ([`tls::redacted`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// Parked poison (`DEAD_LETTER_QUEUE`), default `<key_prefix>dlq:dead`.
    pub dead_dlq: Option<String>,
    pub metrics_prefix: Option<String>,
    pub processing_prefix: Option<String>,
    pub heartbeat_prefix: Option<String>,
    /// The most events one queue element carries (the batch envelope: one element per ingest
    /// request and per alerter batch); 1: one event per element, as the original MUTT. Readers
    /// take both forms whatever this says.
    pub batch_envelope: usize,
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
            dead_dlq: None,
            metrics_prefix: None,
            processing_prefix: None,
            heartbeat_prefix: None,
            batch_envelope: 100,
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
                if ![&k.ingest_queue, &k.alert_queue, &k.processing_prefix, &k.alerter_dlq, &k.moog_dlq, &k.dead_dlq]
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
        set(&mut k.dead_dlq, &self.dead_dlq);
        set(&mut k.metrics_prefix, &self.metrics_prefix);
        set(&mut k.processing_prefix, &self.processing_prefix);
        set(&mut k.heartbeat_prefix, &self.heartbeat_prefix);
        k
    }
}

/// The longest `embedded.commit_delay_us`: every write waits for it, the ingest's reply included.
const MAX_COMMIT_DELAY_US: u64 = 100_000;

/// The embedded backend, used when neither Redis nor PostgreSQL is configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedSection {
    /// The SQLite data file; default `<data_dir>/mutt.db`.
    pub path: Option<std::path::PathBuf>,
    /// `full` (default): a commit is on disk before the event is acknowledged; `normal`:
    /// survives a crash of muttd, but the last commits may be lost if the machine loses power.
    pub durability: Durability,
    /// The most events one queue row carries (the batch envelope, as `redis.batch_envelope`);
    /// 1: one row per event. Readers take both forms whatever this says.
    pub batch_envelope: usize,
    /// Microseconds the writer waits after a write for more to commit with it (0: commits at
    /// once). Fewer commits and less CPU under a light steady load, for that much latency.
    pub commit_delay_us: u64,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        Self { path: None, durability: Durability::default(), batch_envelope: 100, commit_delay_us: 0 }
    }
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

/// `Debug` with URL passwords redacted ([`tls::redacted`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://user@host:port/dbname`. The password comes from the secrets (`DB_PASS_CURRENT`).
    pub url: Option<String>,
    pub pool_size: usize,
    /// The original's minimum pool size (`DB_POOL_MIN_CONN`): checked against `pool_size` at
    /// start so that an env file the original refused is refused here too; muttd's pool opens
    /// connections on demand.
    pub pool_min: Option<usize>,
    /// PEM file of the CA that signed the server's certificate (libpq's `sslrootcert`; the
    /// original's `DB_TLS_CA_CERT_PATH`). TLS itself: `sslmode` in `url` ([`tls`]).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for a server that asks for one (`sslcert`, `sslkey`).
    pub client_cert_file: Option<std::path::PathBuf>,
    pub client_key_file: Option<std::path::PathBuf>,
    /// Seconds to wait for a connection (unless `url` sets `connect_timeout`).
    pub connect_timeout_secs: u64,
    /// A statement running longer is cancelled (0: the server's setting); migrations are exempt.
    pub statement_timeout_secs: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 10,
            pool_min: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            connect_timeout_secs: 5,
            statement_timeout_secs: 60,
        }
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
    /// Largest event as queued (its JSON with the fields MUTT adds): alone 413, in a batch a
    /// 400 naming it. Bounds what one worker batch carries through Redis.
    pub max_event_bytes: usize,
    /// Shared rate limit across ingestors, in requests per window.
    pub rate_limit_enabled: bool,
    pub max_rate: u64,
    pub rate_window_secs: u64,
    /// Textual severities → `syslog_severity`, timestamps → RFC 3339 UTC, wrong types refused.
    pub normalize: bool,
    /// SNMP trap/inform listeners (`[[ingestor.traps]]`); none by default.
    pub traps: Vec<TrapSection>,
    /// Where `muttd run` listens for SNMP traps (community `public`) when `traps` is empty;
    /// "" turns it off. `muttd ingestor` listens only where `traps` says.
    pub run_traps_address: String,
    /// Syslog listeners (`[[ingestor.syslog]]`); none by default.
    pub syslog: Vec<SyslogSection>,
    /// Where `muttd run` listens for syslog over UDP and TCP when `syslog` is empty; "" turns
    /// it off. `muttd ingestor` listens only where `syslog` says.
    pub run_syslog_address: String,
    /// Per-key request limits, `name:rate` (`INGEST_API_KEY=name:key`): requests per
    /// `rate_window_secs`, across ingestors; keys not listed have none.
    #[serde(deserialize_with = "list_or_comma_string")]
    pub key_rate_limits: Vec<String>,
    /// HTTPS on `port`: certificate chain and private key (PEM); off unless both are set.
    /// Reloaded on SIGHUP (new connections get the new certificate).
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) client certificates must chain to (with tls_client_auth).
    pub tls_client_ca_file: Option<std::path::PathBuf>,
    /// `none`, `optional` (checked when presented) or `required`.
    pub tls_client_auth: listener::ClientAuthSetting,
}

impl Default for IngestorSection {
    fn default() -> Self {
        let d = IngestConfig::default();
        let (rate_limit_enabled, max_rate, rate_window) = limit_parts(d.rate_limit.map(|r| (r.limit, r.window)));
        Self {
            port: 8080,
            required_fields: d.required_fields,
            max_queue_size: d.max_queue_size,
            max_body_bytes: d.max_body_bytes,
            auth_disabled: d.auth_disabled,
            max_batch_events: d.max_batch_events,
            max_event_bytes: d.max_event_bytes,
            rate_limit_enabled,
            max_rate,
            rate_window_secs: rate_window.as_secs(),
            normalize: d.normalize,
            traps: Vec::new(),
            run_traps_address: RUN_TRAPS_ADDRESS.into(),
            syslog: Vec::new(),
            run_syslog_address: RUN_SYSLOG_ADDRESS.into(),
            key_rate_limits: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: Default::default(),
        }
    }
}

impl IngestorSection {
    /// The ingest API's settings, with the keys it accepts.
    pub fn to_ingest_config(&self, api_keys: Vec<mutt_ingest::ApiKey>) -> IngestConfig {
        IngestConfig {
            api_keys,
            key_rate_limits: listener::key_rate_limits(&self.key_rate_limits, self.rate_window_secs),
            auth_disabled: self.auth_disabled,
            required_fields: self.required_fields.clone(),
            max_queue_size: self.max_queue_size,
            max_body_bytes: self.max_body_bytes,
            max_batch_events: self.max_batch_events,
            max_event_bytes: self.max_event_bytes,
            rate_limit: self.rate_limit_enabled.then(|| mutt_ingest::RateLimit {
                limit: self.max_rate,
                window: Duration::from_secs(self.rate_window_secs),
            }),
            normalize: self.normalize,
        }
    }
}

/// `muttd run`'s SNMP trap listener (1162: 162 needs privileges).
pub const RUN_TRAPS_ADDRESS: &str = "127.0.0.1:1162";

/// One SNMP trap listener (`[[ingestor.traps]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrapSection {
    /// The `listener` label of its metrics.
    pub name: String,
    /// Default: `bind_address`.
    pub address: Option<String>,
    pub port: u16,
    /// v1/v2c communities accepted; none: v1/v2c refused. Never copied into events or logs.
    pub communities: Vec<String>,
    /// SNMPv3 USM users; passwords are secrets named here (env or `<NAME>_FILE`).
    pub users: Vec<TrapUserSection>,
    /// The local engine id in hex; default: generated once, kept in `<data_dir>/snmp-engine-<name>`
    /// with the boots counter.
    pub engine_id: Option<String>,
    /// Notifications per second at most; over it traps are dropped, informs unanswered. 0: off.
    pub max_messages_per_second: u32,
}

impl Default for TrapSection {
    fn default() -> Self {
        Self {
            name: "snmp".into(),
            address: None,
            port: 162,
            communities: Vec::new(),
            users: Vec::new(),
            engine_id: None,
            max_messages_per_second: 0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrapUserSection {
    pub name: String,
    /// `MD5`, `SHA`, `SHA-224`, `SHA-256`, `SHA-384`, `SHA-512`; unset: noAuthNoPriv.
    pub auth_protocol: Option<String>,
    /// The secret holding the authentication password, e.g. `SNMP_TRAPUSER_AUTH`.
    pub auth_password_secret: Option<String>,
    /// `DES`, `3DES`, `AES` (128), `AES-192`, `AES-256`; unset: no privacy.
    pub priv_protocol: Option<String>,
    pub priv_password_secret: Option<String>,
}

impl IngestorSection {
    /// The trap listeners to start: `traps`, or for `muttd run` (`run`) with none configured
    /// the one at `run_traps_address` (community `public`).
    pub fn trap_listeners(&self, run: bool) -> Vec<TrapSection> {
        if !self.traps.is_empty() || !run || self.run_traps_address.is_empty() {
            return self.traps.clone();
        }
        let (address, port) = match self.run_traps_address.rsplit_once(':') {
            Some((a, p)) => (a.to_owned(), p.parse().unwrap_or(1162)),
            None => (self.run_traps_address.clone(), 1162),
        };
        vec![TrapSection { address: Some(address), port, communities: vec!["public".into()], ..TrapSection::default() }]
    }
}

// --- Syslog listeners ------------------------------------------------------------------

/// `muttd run`'s syslog listeners, UDP and TCP (5514: 514 needs privileges).
pub const RUN_SYSLOG_ADDRESS: &str = "127.0.0.1:5514";

/// One syslog listener (`[[ingestor.syslog]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSection {
    /// Default: `bind_address`.
    pub address: Option<String>,
    pub port: u16,
    /// `udp`, `tcp` (RFC 6587: octet counting or newline framing) or `tls` (RFC 5425).
    pub protocol: SyslogProtocol,
    /// PEM certificate chain and key (`tls` only).
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) senders' certificates must chain to (`tls` only, with tls_client_auth).
    pub tls_client_ca_file: Option<std::path::PathBuf>,
    /// `none`, `optional` (checked when presented) or `required`.
    pub tls_client_auth: listener::ClientAuthSetting,
    /// Largest message (frame or datagram); larger ones are dropped (TCP/TLS: connection closed).
    pub max_frame_bytes: usize,
    /// UDP `SO_RCVBUF`; unset: the system default (capped by `net.core.rmem_max`).
    pub recv_buffer_bytes: Option<usize>,
    /// Open TCP/TLS connections at most (0: no limit); more are closed at once and counted.
    pub max_connections: usize,
    /// A TCP/TLS connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// Messages per second at most (0: off): UDP drops the rest, TCP/TLS slow the sender down.
    pub max_messages_per_second: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Default for SyslogSection {
    fn default() -> Self {
        Self {
            address: None,
            port: 514,
            protocol: SyslogProtocol::Udp,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: listener::ClientAuthSetting::None,
            max_frame_bytes: 65_536,
            recv_buffer_bytes: None,
            max_connections: 1000,
            idle_timeout_secs: 600,
            max_messages_per_second: 0,
        }
    }
}

impl IngestorSection {
    /// The syslog listeners to start: `syslog`, or for `muttd run` (`run`) with none configured
    /// UDP and TCP at `run_syslog_address`.
    pub fn syslog_listeners(&self, run: bool) -> Vec<SyslogSection> {
        if !self.syslog.is_empty() || !run || self.run_syslog_address.is_empty() {
            return self.syslog.clone();
        }
        let (address, port) = match self.run_syslog_address.rsplit_once(':') {
            Some((a, p)) => (a.to_owned(), p.parse().unwrap_or(5514)),
            None => (self.run_syslog_address.clone(), 5514),
        };
        [SyslogProtocol::Udp, SyslogProtocol::Tcp]
            .into_iter()
            .map(|protocol| SyslogSection {
                address: Some(address.clone()),
                port,
                protocol,
                ..SyslogSection::default()
            })
            .collect()
    }
}

/// A role crate's default limit as a section's `enabled` flag and numbers. Were a crate's
/// default off, the numbers would only matter once a user turns it on, so 1 per second stands in
/// (a test checks that today's crates have theirs on).
fn limit_parts(limit: Option<(u64, Duration)>) -> (bool, u64, Duration) {
    match limit {
        Some((n, per)) => (true, n, per),
        None => (false, 1, Duration::from_secs(1)),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterSection {
    /// `/health`, `/live` and `/metrics`.
    pub port: u16,
    /// Also `/health` and `/live` on this port (the original's separate health port).
    pub health_port: Option<u16>,
    /// Events leased and processed per batch; default 100 on Redis, 1000 embedded (each batch
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
    /// Batch loops in one alerter process, each a consumer of its own (pod name suffixed
    /// `-1`, `-2`, … after the first): while one waits for its audit commit, the others
    /// work. The loops after the first lease only while there is a backlog (a lease at least
    /// half full). Unset: 1, or [`EMBEDDED_ALERTER_CONCURRENCY`] on the embedded backend.
    pub concurrency: Option<usize>,
}

impl Default for AlerterSection {
    fn default() -> Self {
        let d = AlerterConfig::default();
        Self {
            port: 8081,
            health_port: None,
            batch_size: None,
            max_retries: d.max_retries,
            cache_reload_interval_secs: d.cache_reload_interval.as_secs(),
            unhandled_threshold: d.dynamic.unhandled_threshold,
            unhandled_expiry_secs: d.dynamic.unhandled_expiry.as_secs(),
            unhandled_default_team: d.unhandled_default_team,
            concurrency: None,
        }
    }
}

impl AlerterSection {
    /// The alerter's settings; `embedded` picks the default batch size and loops.
    pub fn to_alerter_config(&self, worker: &WorkerSection, embedded: bool) -> AlerterConfig {
        let d = AlerterConfig::default();
        let mut dynamic = d.dynamic.clone();
        dynamic.unhandled_threshold = self.unhandled_threshold;
        dynamic.unhandled_expiry = Duration::from_secs(self.unhandled_expiry_secs);
        AlerterConfig {
            batch_size: role_setting(self.batch_size, d.batch_size, embedded.then_some(EMBEDDED_ALERTER_BATCH_SIZE)),
            block_timeout: worker.block_timeout(),
            max_retries: self.max_retries,
            cache_reload_interval: Duration::from_secs(self.cache_reload_interval_secs),
            unhandled_default_team: self.unhandled_default_team.clone(),
            dynamic,
            concurrency: role_setting(
                self.concurrency,
                d.concurrency,
                embedded.then_some(EMBEDDED_ALERTER_CONCURRENCY),
            ),
            ..d
        }
    }
}

/// `Debug` with URL passwords redacted ([`tls::redacted`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwarderSection {
    /// `/health`, `/live` and `/metrics`.
    pub port: u16,
    /// Also `/health` and `/live` on this port (the original's separate health port).
    pub health_port: Option<u16>,
    /// Where alerts are POSTed (Moogsoft or any webhook). Unset: alerts go to `alerts_file`.
    pub webhook_url: Option<String>,
    /// JSON-lines file for alerts when no webhook is set; default `<data_dir>/alerts.jsonl`.
    pub alerts_file: Option<std::path::PathBuf>,
    /// `moog-rest-lam` (Moogsoft REST LAM, batched), `legacy` (the original's payload, one per
    /// request, `Authorization: Bearer MOOG_API_KEY`) or `generic` (the alert as JSON).
    pub format: mutt_forwarder::OutputFormat,
    /// REST LAM authentication with the MOOG_API_KEY secret: `token` (`auth_token` in the
    /// body), `basic` (user `lam_user`, password MOOG_API_KEY) or `none`.
    pub lam_auth: LamAuthMode,
    pub lam_user: String,
    /// Alerts per REST LAM request.
    pub lam_batch_size: usize,
    /// Moog severity (0 clear … 5 critical) for syslog severities 0 (emerg) … 7 (debug).
    pub severity_map: [u8; 8],
    /// Moog severity of events without a syslog severity.
    pub default_severity: u8,
    pub timeout_secs: f64,
    /// Alerts leased per batch; default 100 on Redis, 1000 embedded.
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

/// How the `moog-rest-lam` format authenticates with the MOOG_API_KEY secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LamAuthMode {
    /// `auth_token` in the body (nothing when MOOG_API_KEY is unset).
    #[default]
    Token,
    /// HTTP basic authentication: user `lam_user`, password MOOG_API_KEY (required).
    Basic,
    None,
}

impl Default for ForwarderSection {
    fn default() -> Self {
        let d = ForwarderConfig::default();
        let (rate_limit_enabled, rate_limit, rate_period) = limit_parts(d.rate_limit);
        let (circuit_breaker_enabled, circuit_breaker_threshold, circuit_breaker_timeout) = limit_parts(d.breaker);
        Self {
            port: 8083,
            health_port: None,
            webhook_url: None,
            alerts_file: None,
            format: d.format,
            lam_auth: LamAuthMode::default(),
            lam_user: "mutt".into(),
            lam_batch_size: d.lam_batch_size,
            severity_map: d.severity_map,
            default_severity: d.default_severity,
            timeout_secs: d.timeout.as_secs_f64(),
            batch_size: None,
            max_retries: d.max_retries,
            retry_base_secs: d.retry_base.as_secs_f64(),
            retry_max_secs: d.retry_max.as_secs_f64(),
            rate_limit_enabled,
            rate_limit,
            rate_period_secs: rate_period.as_secs(),
            circuit_breaker_enabled,
            circuit_breaker_threshold,
            circuit_breaker_timeout_secs: circuit_breaker_timeout.as_secs(),
            dedup_ttl_secs: d.dedup_ttl.as_secs(),
            ca_file: d.ca_file,
            client_identity_file: d.client_identity_file,
        }
    }
}

impl ForwarderSection {
    /// The forwarder's settings. `moog_key` is the MOOG_API_KEY secret; `embedded` picks the
    /// default batch size. Refuses `lam_auth = basic` without a key.
    pub fn to_forwarder_config(
        &self,
        worker: &WorkerSection,
        destination: Destination,
        embedded: bool,
        moog_key: Option<Secret>,
    ) -> Result<ForwarderConfig, ConfigError> {
        moog_key::check(self, &destination, moog_key.as_ref())?;
        let lam_auth = match (self.lam_auth, &moog_key) {
            (LamAuthMode::Token, Some(k)) => LamAuth::Token(k.clone()),
            (LamAuthMode::Basic, Some(k)) => LamAuth::Basic { user: self.lam_user.clone(), password: k.clone() },
            (LamAuthMode::Basic, None) => {
                return Err(ConfigError::Invalid("forwarder.lam_auth = basic needs the MOOG_API_KEY secret".into()));
            }
            (LamAuthMode::Token | LamAuthMode::None, _) => LamAuth::None,
        };
        let d = ForwarderConfig::default();
        Ok(ForwarderConfig {
            destination,
            api_key: moog_key,
            format: self.format,
            lam_auth,
            lam_batch_size: self.lam_batch_size,
            severity_map: self.severity_map,
            default_severity: self.default_severity,
            timeout: Duration::from_secs_f64(self.timeout_secs),
            batch_size: role_setting(self.batch_size, d.batch_size, embedded.then_some(EMBEDDED_FORWARDER_BATCH_SIZE)),
            block_timeout: worker.block_timeout(),
            max_retries: self.max_retries,
            retry_base: Duration::from_secs_f64(self.retry_base_secs),
            retry_max: Duration::from_secs_f64(self.retry_max_secs),
            rate_limit: self.rate_limit_enabled.then(|| (self.rate_limit, Duration::from_secs(self.rate_period_secs))),
            breaker: self
                .circuit_breaker_enabled
                .then(|| (self.circuit_breaker_threshold, Duration::from_secs(self.circuit_breaker_timeout_secs))),
            dedup_ttl: Duration::from_secs(self.dedup_ttl_secs),
            ca_file: self.ca_file.clone(),
            client_identity_file: self.client_identity_file.clone(),
            alerts_file_sync: d.alerts_file_sync,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    pub port: u16,
    /// HTTPS on `port`: certificate chain and private key (PEM); off unless both are set.
    /// Reloaded on SIGHUP (new connections get the new certificate).
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) client certificates must chain to (with tls_client_auth).
    pub tls_client_ca_file: Option<std::path::PathBuf>,
    /// `none`, `optional` (checked when presented) or `required`.
    pub tls_client_auth: listener::ClientAuthSetting,
    /// Timestamps in API answers: `rfc3339` (UTC) or the original's `rfc1123` (GMT).
    pub timestamp_format: mutt_web::TimestampFormat,
    /// Seconds `/api/v*/metrics` answers from its cache (`METRICS_CACHE_TTL`); 0: no cache.
    pub metrics_cache_ttl_secs: u64,
}

impl Default for WebSection {
    fn default() -> Self {
        Self {
            port: 8090,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: Default::default(),
            timestamp_format: Default::default(),
            metrics_cache_ttl_secs: 5,
        }
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
    /// Seconds between runs (the first five minutes after start).
    pub interval_secs: u64,
    /// Keep expired audit rows in `event_audit_log_archive` this many years instead of
    /// deleting them (`EVENT_ARCHIVE_RETENTION_YEARS`); unset: no archive.
    pub archive_years: Option<u32>,
    /// Log what would be removed, remove nothing (`RETENTION_DRY_RUN`).
    pub dry_run: bool,
    /// Monthly audit partitions kept ready beyond the current month
    /// (`RETENTION_PRECREATE_MONTHS`); created at migrate and daily by the alerter, whether or
    /// not retention is enabled.
    pub precreate_months: u32,
}

impl Default for RetentionSection {
    fn default() -> Self {
        let d = RetentionConfig::default();
        Self {
            enabled: true,
            event_audit_days: d.event_audit_days,
            config_audit_days: d.config_audit_days,
            batch_size: d.batch_size,
            interval_secs: d.interval.as_secs(),
            archive_years: d.archive_years,
            dry_run: d.dry_run,
            precreate_months: 3,
        }
    }
}

impl RetentionSection {
    pub fn to_retention_config(&self) -> RetentionConfig {
        RetentionConfig {
            event_audit_days: self.event_audit_days,
            config_audit_days: self.config_audit_days,
            batch_size: self.batch_size,
            interval: Duration::from_secs(self.interval_secs),
            archive_years: self.archive_years,
            dry_run: self.dry_run,
        }
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
    /// A worker loop that finishes no batch (nor an empty lease) for this long makes its role's
    /// `/health` unhealthy (503), so an orchestrator restarts it.
    pub stall_timeout_secs: u64,
    /// The async runtime's worker threads; 0: one for a process that runs one role (scaled out
    /// by running more of them, as the original's workers were), one per CPU for `muttd run`.
    pub threads: usize,
}

impl Default for WorkerSection {
    fn default() -> Self {
        let c = ConsumerConfig::new(WorkerRole::Alerter, PodName::random("default"));
        Self {
            heartbeat_interval_secs: c.heartbeat_interval.as_secs(),
            heartbeat_ttl_secs: c.heartbeat_ttl.as_secs(),
            janitor_interval_secs: c.janitor_interval.as_secs(),
            block_timeout_secs: AlerterConfig::default().block_timeout.as_secs_f64(),
            stall_timeout_secs: mutt_service::Watchdog::DEFAULT_STALL_TIMEOUT.as_secs(),
            threads: 0,
        }
    }
}

impl WorkerSection {
    /// The runtime's worker threads for a process that runs every role (`all_roles`, `muttd
    /// run`) or one: `worker.threads` when set; else `None` (tokio's default, one per CPU or
    /// `TOKIO_WORKER_THREADS`) for every role in one process or when `TOKIO_WORKER_THREADS` is
    /// set; else 1. One thread for one role: on two busy cores the bench measured less CPU per
    /// batched event (alerter 0.8–1.0 µs, ingestor 0.3–0.5, forwarder up to 0.4) and a shorter
    /// tail after a backlog than with two (docs/benchmarks.md, thirteenth session).
    pub fn runtime_threads(&self, all_roles: bool, tokio_env: Option<&str>) -> Option<usize> {
        if self.threads > 0 {
            Some(self.threads)
        } else if all_roles || tokio_env.is_some() {
            None
        } else {
            Some(1)
        }
    }

    /// How long one blocking lease waits for the first message.
    pub fn block_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.block_timeout_secs)
    }

    /// The watchdog of one worker loop, shared with its role's `/health`.
    pub fn watchdog(&self) -> mutt_service::Watchdog {
        mutt_service::Watchdog::new(Duration::from_secs(self.stall_timeout_secs))
    }

    /// The queue consumer's settings for one worker.
    pub fn consumer_config(&self, role: WorkerRole, pod: PodName, metrics: &QueueMetrics) -> ConsumerConfig {
        let mut c = ConsumerConfig::new(role, pod);
        c.metrics = metrics.clone();
        c.heartbeat_interval = Duration::from_secs(self.heartbeat_interval_secs);
        c.heartbeat_ttl = Duration::from_secs(self.heartbeat_ttl_secs);
        c.janitor_interval = Duration::from_secs(self.janitor_interval_secs);
        c
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

/// Loads the configuration from an optional TOML file and the given environment.
pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Invalid(format!("config file {} does not exist", path.display())));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    // MUTT_* after the original's variables: a key both set is named by the MUTT_ variable.
    let mut origins = env::EnvOrigins::new();
    let legacy = env::legacy_overrides(env, &mut origins)?;
    let mutt = env::mutt_overrides(env, &mut origins);
    fig = fig.merge(Serialized::defaults(legacy)).merge(Serialized::defaults(mutt));
    let namer = Namer { env: Some(&origins), figment: Some(&fig) };
    let config: Config = fig.extract().map_err(|e| namer.figment_error(e))?;
    config.check(&namer)?;
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

    /// On Redis (production) a forwarder needs a webhook, or an alerts file set on purpose: a
    /// default file inside a container is alerts lost. The embedded backend (first run) writes
    /// the default alerts file.
    pub fn check_forwarder_destination(&self, embedded: bool) -> Result<(), ConfigError> {
        if embedded || self.forwarder.webhook_url.is_some() || self.forwarder.alerts_file.is_some() {
            return Ok(());
        }
        Err(ConfigError::Invalid(
            "MOOG_WEBHOOK_URL is not set (forwarder.webhook_url): the forwarder on Redis delivers to a webhook; \
             set it, or set forwarder.alerts_file to write alerts to a local file"
                .into(),
        ))
    }

    /// Where the forwarder delivers: the webhook, else the alerts file.
    pub fn forwarder_destination(&self) -> Destination {
        match &self.forwarder.webhook_url {
            Some(url) => Destination::Webhook(url.clone()),
            None => Destination::File(self.alerts_file()),
        }
    }

    /// Checks values that serde's types cannot (before any connection is made); errors name
    /// settings by their keys (`load` names them as the user wrote them).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(&Namer::PLAIN)
    }

    fn check(&self, n: &Namer<'_>) -> Result<(), ConfigError> {
        if let Some(p) = &self.pod_name {
            PodName::parse(p.clone()).map_err(|e| n.refuse("pod_name", e.to_string()))?;
        }
        for (key, size) in
            [("alerter.batch_size", self.alerter.batch_size), ("forwarder.batch_size", self.forwarder.batch_size)]
        {
            if size.is_some_and(|b| b == 0 || b > 1000) {
                return Err(n.refuse(key, "must be between 1 and 1000"));
            }
        }
        for (key, envelope) in [
            ("redis.batch_envelope", self.redis.batch_envelope),
            ("embedded.batch_envelope", self.embedded.batch_envelope),
        ] {
            if envelope > 1000 {
                return Err(n.refuse(key, "must be between 1 and 1000 (a lease takes at least one element)"));
            }
        }
        if self.embedded.commit_delay_us > MAX_COMMIT_DELAY_US {
            return Err(n.refuse("embedded.commit_delay_us", format!("must be at most {MAX_COMMIT_DELAY_US} (0.1 s)")));
        }
        self.check_positive(n)?;
        if !self.http.head_limit_ok() {
            let (min, max) = (http::MIN_HEAD_BYTES, http::MAX_HEAD_BYTES);
            return Err(n.refuse("http.max_head_bytes", format!("must be between {min} and {max} bytes")));
        }
        self.check_ports(n)?;
        tls::check(self, n)?;
        listener::check(self, n)?;
        if self.worker.heartbeat_ttl_secs <= self.worker.heartbeat_interval_secs {
            let interval = n.name("worker.heartbeat_interval_secs");
            return Err(n.refuse("worker.heartbeat_ttl_secs", format!("must be longer than {interval}")));
        }
        if self.worker.stall_timeout_secs as f64 <= self.worker.block_timeout_secs {
            let wait = n.name("worker.block_timeout_secs");
            return Err(n.refuse("worker.stall_timeout_secs", format!("must be longer than {wait}")));
        }
        for (key, v) in [
            ("forwarder.timeout_secs", self.forwarder.timeout_secs),
            ("forwarder.retry_base_secs", self.forwarder.retry_base_secs),
            ("forwarder.retry_max_secs", self.forwarder.retry_max_secs),
            ("worker.block_timeout_secs", self.worker.block_timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
                return Err(n.refuse(key, "must be a positive number of seconds (under a day)"));
            }
        }
        let moog = "must be a Moog severity: 0 (clear) … 5 (critical)";
        if self.forwarder.severity_map.iter().any(|s| *s > 5) {
            return Err(n.refuse("forwarder.severity_map", moog));
        }
        if self.forwarder.default_severity > 5 {
            return Err(n.refuse("forwarder.default_severity", moog));
        }
        Ok(())
    }

    /// Counts, periods and thresholds the roles divide by or wait on: zero is refused (a zero
    /// window or threshold would spin or never fire; limits are turned off with their
    /// `*_enabled` switch).
    fn check_positive(&self, n: &Namer<'_>) -> Result<(), ConfigError> {
        let (i, a, f, w) = (&self.ingestor, &self.alerter, &self.forwarder, &self.worker);
        for (key, zero) in [
            ("database.pool_size", self.database.pool_size == 0),
            ("database.pool_min", self.database.pool_min == Some(0)),
            ("ingestor.max_body_bytes", i.max_body_bytes == 0),
            ("ingestor.max_rate", i.max_rate == 0),
            ("ingestor.rate_window_secs", i.rate_window_secs == 0),
            ("alerter.cache_reload_interval_secs", a.cache_reload_interval_secs == 0),
            ("alerter.unhandled_threshold", a.unhandled_threshold == 0),
            ("alerter.unhandled_expiry_secs", a.unhandled_expiry_secs == 0),
            ("alerter.concurrency", a.concurrency == Some(0)),
            ("forwarder.lam_batch_size", f.lam_batch_size == 0),
            ("forwarder.rate_limit", f.rate_limit == 0),
            ("forwarder.rate_period_secs", f.rate_period_secs == 0),
            ("forwarder.circuit_breaker_threshold", f.circuit_breaker_threshold == 0),
            ("forwarder.circuit_breaker_timeout_secs", f.circuit_breaker_timeout_secs == 0),
            ("forwarder.dedup_ttl_secs", f.dedup_ttl_secs == 0),
            ("worker.heartbeat_interval_secs", w.heartbeat_interval_secs == 0),
            ("worker.janitor_interval_secs", w.janitor_interval_secs == 0),
            ("ingestor.max_event_bytes", i.max_event_bytes == 0),
        ]
        .into_iter()
        .chain(self.http.zeros())
        .chain(self.remediation.zeros())
        {
            if zero {
                return Err(n.refuse(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The health port must differ from the role's own port; the pool's minimum must not
    /// exceed its size (the original refused both at start).
    fn check_ports(&self, n: &Namer<'_>) -> Result<(), ConfigError> {
        for (section, port, health) in [
            ("alerter", self.alerter.port, self.alerter.health_port),
            ("forwarder", self.forwarder.port, self.forwarder.health_port),
            ("remediation", self.remediation.port, self.remediation.health_port),
        ] {
            if health.is_some_and(|h| h != 0 && h == port) {
                let other = n.name(&format!("{section}.port"));
                return Err(n.refuse(&format!("{section}.health_port"), format!("must differ from {other}")));
            }
        }
        if self.database.pool_min.is_some_and(|min| min > self.database.pool_size) {
            let max = match n.name("database.pool_size") {
                key if key == "database.pool_size" => format!("{key} ({})", self.database.pool_size),
                written => written,
            };
            return Err(n.refuse("database.pool_min", format!("must not be above {max}")));
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
        // The README's table, now that the numbers come from the role crates.
        let (i, a, f, w) = (&c.ingestor, &c.alerter, &c.forwarder, &c.worker);
        assert_eq!((i.max_queue_size, i.max_body_bytes, i.max_batch_events), (1_000_000, 5_242_880, 10_000));
        assert_eq!((i.rate_limit_enabled, i.max_rate, i.rate_window_secs, i.normalize), (true, 1000, 60, true));
        assert_eq!(i.required_fields, ["hostname", "message", "timestamp"]);
        assert_eq!(
            (a.port, a.cache_reload_interval_secs, a.unhandled_threshold, a.unhandled_expiry_secs),
            (8081, 300, 100, 86_400)
        );
        assert_eq!(a.unhandled_default_team, "NETO");
        assert_eq!(a.to_alerter_config(w, false).concurrency, 1);
        let loops =
            |n, embedded| AlerterSection { concurrency: n, ..a.clone() }.to_alerter_config(w, embedded).concurrency;
        assert_eq!(loops(Some(4), false), 4, "alerter.concurrency (0 is refused by validation)");
        assert_eq!(loops(None, true), EMBEDDED_ALERTER_CONCURRENCY, "embedded, unset");
        assert_eq!((loops(Some(1), true), loops(Some(3), true)), (1, 3), "embedded, a set one is kept");
        assert_eq!(
            (f.port, f.lam_auth, f.lam_user.as_str(), f.lam_batch_size),
            (8083, LamAuthMode::Token, "mutt", 100)
        );
        assert_eq!((f.severity_map, f.default_severity), ([5, 5, 5, 4, 2, 1, 1, 1], 2));
        assert_eq!((f.timeout_secs, f.retry_base_secs, f.retry_max_secs), (10.0, 1.0, 60.0));
        assert_eq!((f.rate_limit_enabled, f.rate_limit, f.rate_period_secs), (true, 50, 1));
        assert_eq!(
            (f.circuit_breaker_enabled, f.circuit_breaker_threshold, f.circuit_breaker_timeout_secs),
            (true, 10, 300)
        );
        assert_eq!(f.dedup_ttl_secs, 3600);
        assert_eq!((c.web.port, c.database.pool_size), (8090, 10));
        assert_eq!((w.heartbeat_interval_secs, w.heartbeat_ttl_secs, w.janitor_interval_secs), (10, 30, 60));
        assert_eq!(w.block_timeout_secs, 2.0);
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
        assert_eq!(c.database.url.as_deref(), Some("postgres://mutt_user@pg:5432/mutt?sslmode=disable"));
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
        assert!(e.contains("':'") && e.starts_with("POD_NAME=\"a:b\": "), "{e}");
        let e = load(None, &env(&[("MUTT_ALERTER__BATCH_SIZE", "many")])).unwrap_err().to_string();
        assert!(e.starts_with("MUTT_ALERTER__BATCH_SIZE=\"many\": "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[alerter]\nbatch_sise = 5\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("batch_sise"), "{e}");
    }

    /// No figment key (`default.…`) and no source-code location in a message.
    fn assert_user_words(e: &str) {
        assert!(!e.contains("default.") && !e.contains(".rs") && !e.contains("serde_json"), "{e}");
    }

    #[test]
    fn the_build_commit_variable_is_not_a_setting() {
        // A packager's or the Dockerfile's build input, possibly still in the environment.
        assert!(load(None, &env(&[("MUTT_GIT_COMMIT", "9a3d8ea")])).is_ok());
        // What build.rs compiles in; `cargo run` puts it into the program's environment.
        assert!(!env!("MUTTD_BUILD_COMMIT").is_empty());
        assert!(load(None, &env(&[("MUTTD_BUILD_COMMIT", env!("MUTTD_BUILD_COMMIT"))])).is_ok());
    }

    #[test]
    fn an_unknown_mutt_variable_is_refused_by_name() {
        let e = load(None, &env(&[("MUTT_FOO", "1")])).unwrap_err().to_string();
        assert!(e.starts_with("MUTT_FOO=\"1\": no such setting"), "{e}");
        assert!(e.contains("bind_address") && e.contains("ingestor"), "lists the settings: {e}");
        assert_user_words(&e);
        let e = load(None, &env(&[("MUTT_INGESTOR__PROT", "9000")])).unwrap_err().to_string();
        assert!(e.starts_with("MUTT_INGESTOR__PROT=\"9000\": no such setting") && e.contains("port"), "{e}");
        assert_user_words(&e);
    }

    #[test]
    fn a_wrong_type_names_the_variable() {
        let e = load(None, &env(&[("MAX_INGEST_QUEUE_SIZE", "abc")])).unwrap_err().to_string();
        assert_eq!(e, "MAX_INGEST_QUEUE_SIZE=\"abc\" is not a whole number");
        // Parsed as a number, refused by the field's type: still the original's variable.
        let e = load(None, &env(&[("MUTT_INGESTOR__PORT", "70000")])).unwrap_err().to_string();
        assert!(e.starts_with("MUTT_INGESTOR__PORT=\"70000\": expected u16"), "{e}");
        assert_user_words(&e);
        let e = load(None, &env(&[("MUTT_INGESTOR__NORMALIZE", "maybe")])).unwrap_err().to_string();
        assert!(e.starts_with("MUTT_INGESTOR__NORMALIZE=\"maybe\": expected a boolean"), "{e}");
        assert_user_words(&e);
    }

    #[test]
    fn a_file_error_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mutt.toml");
        let shown = path.display().to_string();
        std::fs::write(&path, "[alerter]\nbatch_sise = 5\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("alerter.batch_sise in {shown}: no such setting")), "{e}");
        assert!(e.contains("batch_size"), "lists the alerter's settings: {e}");
        assert_user_words(&e);
        std::fs::write(&path, "[ingestor]\nport = \"http\"\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("ingestor.port in {shown}: expected u16")), "{e}");
        std::fs::write(&path, "[ingestor\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{shown}: TOML parse error at line 1")), "{e}");
        // The environment wins over the file, and so is what the message names.
        std::fs::write(&path, "[ingestor]\nmax_rate = 0\n").unwrap();
        let e = load(Some(&path), &HashMap::new()).unwrap_err().to_string();
        assert_eq!(e, format!("ingestor.max_rate in {shown}: must be at least 1"));
        let e = load(Some(&path), &env(&[("INGEST_MAX_RATE", "0")])).unwrap_err().to_string();
        assert_eq!(e, "INGEST_MAX_RATE=\"0\": must be at least 1");
        assert_eq!(load(Some(&path), &env(&[("INGEST_MAX_RATE", "5")])).unwrap().ingestor.max_rate, 5);
    }

    /// Every setting the roles used to clamp with `.max(1)`, and the original's variable if any.
    const MUST_BE_POSITIVE: &[(&str, Option<&str>)] = &[
        ("ingestor.max_body_bytes", Some("MAX_INGEST_BODY_BYTES")),
        ("ingestor.max_rate", Some("INGEST_MAX_RATE")),
        ("ingestor.rate_window_secs", Some("INGEST_RATE_WINDOW")),
        ("alerter.cache_reload_interval_secs", Some("CACHE_RELOAD_INTERVAL")),
        ("alerter.unhandled_threshold", Some("UNHANDLED_THRESHOLD")),
        ("alerter.unhandled_expiry_secs", Some("UNHANDLED_EXPIRY_SECONDS")),
        ("alerter.concurrency", None),
        ("forwarder.lam_batch_size", None),
        ("forwarder.rate_limit", Some("MOOG_RATE_LIMIT")),
        ("forwarder.rate_period_secs", Some("MOOG_RATE_PERIOD")),
        ("forwarder.circuit_breaker_threshold", Some("CIRCUIT_BREAKER_THRESHOLD")),
        ("forwarder.circuit_breaker_timeout_secs", Some("CIRCUIT_BREAKER_TIMEOUT")),
        ("forwarder.dedup_ttl_secs", None),
        ("worker.heartbeat_interval_secs", Some("ALERTER_HEARTBEAT_INTERVAL")),
        ("worker.janitor_interval_secs", None),
    ];

    #[test]
    fn zero_is_refused_naming_the_setting_as_written() {
        for (key, legacy) in MUST_BE_POSITIVE {
            let var = format!("MUTT_{}", key.to_ascii_uppercase().replace('.', "__"));
            let e = load(None, &env(&[(&var, "0")])).unwrap_err().to_string();
            assert_eq!(e, format!("{var}=\"0\": must be at least 1"));
            if let Some(legacy) = legacy {
                let e = load(None, &env(&[(legacy, "0")])).unwrap_err().to_string();
                assert_eq!(e, format!("{legacy}=\"0\": must be at least 1"));
            }
            assert!(load(None, &env(&[(&var, "1")])).is_ok(), "{var}=1");
        }
        // Built in code (tests, embedding): the key.
        let mut c = Config::default();
        c.forwarder.rate_limit = 0;
        assert_eq!(c.validate().unwrap_err().to_string(), "forwarder.rate_limit: must be at least 1");
    }

    #[test]
    fn the_originals_ports_are_1_to_65535() {
        let vars = [
            ("SERVER_PORT_INGESTOR", "ingestor.port"),
            ("METRICS_PORT_ALERTER", "alerter.port"),
            ("HEALTH_PORT_ALERTER", "alerter.health_port"),
            ("METRICS_PORT_MOOG", "forwarder.port"),
            ("HEALTH_PORT_MOOG", "forwarder.health_port"),
            ("SERVER_PORT_WEBUI", "web.port"),
        ];
        for (var, _) in vars {
            for bad in ["0", "65536", "-1", "http"] {
                let e = load(None, &env(&[(var, bad)])).unwrap_err().to_string();
                assert_eq!(e, format!("{var}={bad:?} is not a port (1-65535)"));
            }
        }
        let c = load(None, &env(&[("HEALTH_PORT_ALERTER", "8082"), ("HEALTH_PORT_MOOG", "65535")])).unwrap();
        assert_eq!((c.alerter.health_port, c.forwarder.health_port), (Some(8082), Some(65535)));
        assert_eq!((Config::default().alerter.health_port, Config::default().forwarder.health_port), (None, None));
        // muttd's own settings keep 0 (any free port), as tests and benchmarks use it.
        assert_eq!(load(None, &env(&[("MUTT_INGESTOR__PORT", "0")])).unwrap().ingestor.port, 0);
        let e = load(None, &env(&[("HEALTH_PORT_MOOG", "8083")])).unwrap_err().to_string();
        assert_eq!(e, "HEALTH_PORT_MOOG=\"8083\": must differ from forwarder.port");
        let e = load(None, &env(&[("HEALTH_PORT_ALERTER", "9000"), ("METRICS_PORT_ALERTER", "9000")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "HEALTH_PORT_ALERTER=\"9000\": must differ from METRICS_PORT_ALERTER=\"9000\"");
    }

    #[test]
    fn the_pools_minimum_is_not_above_its_size() {
        let e = load(None, &env(&[("DB_POOL_MIN_CONN", "5"), ("DB_POOL_MAX_CONN", "2")])).unwrap_err().to_string();
        assert_eq!(e, "DB_POOL_MIN_CONN=\"5\": must not be above DB_POOL_MAX_CONN=\"2\"");
        let e = load(None, &env(&[("DB_POOL_MIN_CONN", "11")])).unwrap_err().to_string();
        assert_eq!(e, "DB_POOL_MIN_CONN=\"11\": must not be above database.pool_size (10)");
        for var in ["DB_POOL_MIN_CONN", "DB_POOL_MAX_CONN"] {
            let e = load(None, &env(&[(var, "0")])).unwrap_err().to_string();
            assert_eq!(e, format!("{var}=\"0\": must be at least 1"));
        }
        let c = load(None, &env(&[("DB_POOL_MIN_CONN", "2"), ("DB_POOL_MAX_CONN", "2")])).unwrap();
        assert_eq!((c.database.pool_min, c.database.pool_size), (Some(2), 2));
    }

    #[test]
    fn a_forwarder_on_redis_needs_a_webhook_or_a_chosen_file() {
        let c = Config::default();
        assert!(c.check_forwarder_destination(true).is_ok(), "embedded: the default alerts file");
        let e = c.check_forwarder_destination(false).unwrap_err().to_string();
        assert!(e.starts_with("MOOG_WEBHOOK_URL is not set") && e.contains("forwarder.alerts_file"), "{e}");
        let hook = load(None, &env(&[("MOOG_WEBHOOK_URL", "http://moog/")])).unwrap();
        assert!(hook.check_forwarder_destination(false).is_ok());
        let file = load(None, &env(&[("MUTT_FORWARDER__ALERTS_FILE", "/var/lib/mutt/alerts.jsonl")])).unwrap();
        assert!(file.check_forwarder_destination(false).is_ok());
    }

    #[test]
    fn heartbeat_ttl_names_both_variables() {
        let e = load(None, &env(&[("MOOG_JANITOR_TIMEOUT", "5"), ("MUTT_WORKER__HEARTBEAT_INTERVAL_SECS", "5")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "MOOG_JANITOR_TIMEOUT=\"5\": must be longer than MUTT_WORKER__HEARTBEAT_INTERVAL_SECS=\"5\"");
    }

    #[test]
    fn the_embedded_commit_delay_is_bounded() {
        let c = load(None, &env(&[("MUTT_EMBEDDED__COMMIT_DELAY_US", "250")])).unwrap();
        assert_eq!(c.embedded.commit_delay_us, 250);
        assert_eq!(load(None, &env(&[])).unwrap().embedded.commit_delay_us, 0, "commits at once by default");
        let e = load(None, &env(&[("MUTT_EMBEDDED__COMMIT_DELAY_US", "100001")])).unwrap_err().to_string();
        assert_eq!(e, "MUTT_EMBEDDED__COMMIT_DELAY_US=\"100001\": must be at most 100000 (0.1 s)");
    }

    #[test]
    fn a_stall_timeout_shorter_than_the_lease_wait_is_refused() {
        let e = load(None, &env(&[("MUTT_WORKER__STALL_TIMEOUT_SECS", "2"), ("BRPOPLPUSH_TIMEOUT", "5")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "MUTT_WORKER__STALL_TIMEOUT_SECS=\"2\": must be longer than BRPOPLPUSH_TIMEOUT=\"5\"");
        let c = load(None, &env(&[("MUTT_WORKER__STALL_TIMEOUT_SECS", "30")])).unwrap();
        assert_eq!(c.worker.watchdog().stall_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn one_runtime_thread_for_one_role_unless_told_otherwise() {
        let w = load(None, &env(&[])).unwrap().worker;
        assert_eq!(w.runtime_threads(false, None), Some(1), "one role: one thread");
        assert_eq!(w.runtime_threads(true, None), None, "muttd run: one per CPU");
        assert_eq!(w.runtime_threads(false, Some("3")), None, "TOKIO_WORKER_THREADS is tokio's to read");
        let w = load(None, &env(&[("MUTT_WORKER__THREADS", "4")])).unwrap().worker;
        assert_eq!((w.runtime_threads(false, None), w.runtime_threads(true, Some("2"))), (Some(4), Some(4)));
        assert!(load(None, &env(&[("MUTT_WORKER__THREADS", "many")])).is_err());
    }

    #[test]
    fn lam_auth_is_one_of_three() {
        let e = load(None, &env(&[("MUTT_FORWARDER__LAM_AUTH", "bearer")])).unwrap_err().to_string();
        assert_eq!(e, "MUTT_FORWARDER__LAM_AUTH=\"bearer\": \"bearer\" is not one of token, basic, none");
        let c = load(None, &env(&[("MUTT_FORWARDER__LAM_AUTH", "basic")])).unwrap();
        assert_eq!(c.forwarder.lam_auth, LamAuthMode::Basic);
        let dest = c.forwarder_destination();
        let refused = c.forwarder.to_forwarder_config(&c.worker, dest.clone(), false, None).unwrap_err();
        assert!(refused.to_string().contains("MOOG_API_KEY"), "{refused}");
        let key = Some(Secret::new("k"));
        let f = c.forwarder.to_forwarder_config(&c.worker, dest.clone(), false, key.clone()).unwrap();
        assert!(matches!(f.lam_auth, LamAuth::Basic { ref user, .. } if user == "mutt"));
        let token = Config::default().forwarder.to_forwarder_config(&c.worker, dest.clone(), false, key).unwrap();
        assert!(matches!(token.lam_auth, LamAuth::Token(_)));
        let keyless = Config::default().forwarder.to_forwarder_config(&c.worker, dest, false, None).unwrap();
        assert!(matches!(keyless.lam_auth, LamAuth::None), "token without a key sends none");
    }

    /// The sections' defaults are the role crates' defaults: a default `Config` gives exactly
    /// the role configs the crates would use on their own.
    #[test]
    fn default_config_gives_the_role_crates_defaults() {
        let c = Config::default();
        let debug = |v: &dyn std::fmt::Debug| format!("{v:?}");
        assert_eq!(debug(&c.ingestor.to_ingest_config(Vec::new())), debug(&IngestConfig::default()));
        assert!(IngestConfig::default().rate_limit.is_some(), "limit_parts' stand-in numbers are unused");
        assert_eq!(debug(&c.alerter.to_alerter_config(&c.worker, false)), debug(&AlerterConfig::default()));
        let d = ForwarderConfig::default();
        assert!(d.rate_limit.is_some() && d.breaker.is_some(), "limit_parts' stand-in numbers are unused");
        let f = c.forwarder.to_forwarder_config(&c.worker, d.destination.clone(), false, None).unwrap();
        assert_eq!(debug(&f), debug(&d));
        assert_eq!(f.block_timeout, d.block_timeout, "worker.block_timeout_secs is both roles' default");
        let pod = PodName::random("t");
        let consumer = c.worker.consumer_config(WorkerRole::Forwarder, pod.clone(), &QueueMetrics::default());
        let d = ConsumerConfig::new(WorkerRole::Forwarder, pod);
        assert_eq!(
            (consumer.heartbeat_interval, consumer.heartbeat_ttl, consumer.janitor_interval),
            (d.heartbeat_interval, d.heartbeat_ttl, d.janitor_interval)
        );
        // Embedded, an unset batch size is bigger; a set one is kept.
        assert_eq!(c.alerter.to_alerter_config(&c.worker, true).batch_size, EMBEDDED_ALERTER_BATCH_SIZE);
        let f = c.forwarder.to_forwarder_config(&c.worker, ForwarderConfig::default().destination, true, None).unwrap();
        assert_eq!(f.batch_size, EMBEDDED_FORWARDER_BATCH_SIZE);
        let mut set = c.forwarder.clone();
        set.batch_size = Some(7);
        let f = set.to_forwarder_config(&c.worker, ForwarderConfig::default().destination, true, None).unwrap();
        assert_eq!(f.batch_size, 7);
    }

    #[test]
    fn muttd_run_listens_for_syslog_on_udp_and_tcp_unless_configured_or_off() {
        let mut i = IngestorSection::default();
        assert!(i.syslog_listeners(false).is_empty(), "muttd ingestor: off by default");
        let run = i.syslog_listeners(true);
        let got: Vec<_> = run.iter().map(|s| (s.address.as_deref(), s.port, s.protocol)).collect();
        assert_eq!(
            got,
            [(Some("127.0.0.1"), 5514, SyslogProtocol::Udp), (Some("127.0.0.1"), 5514, SyslogProtocol::Tcp)]
        );
        i.syslog = vec![SyslogSection { protocol: SyslogProtocol::Tls, ..SyslogSection::default() }];
        assert_eq!(i.syslog_listeners(true), i.syslog, "configured listeners replace the default ones");
        i.syslog.clear();
        i.run_syslog_address.clear();
        assert!(i.syslog_listeners(true).is_empty(), "\"\" turns muttd run's listeners off");
    }
}

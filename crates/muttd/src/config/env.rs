//! The environment's two layers: the original MUTT's variables (so an existing deployment's env
//! file works) and `MUTT_SECTION__KEY` variables. Each layer is a nested map for figment, and
//! every key it sets is recorded with the variable that set it, so that an error names the
//! variable the user wrote instead of the key it became.

use super::{ConfigError, split_list};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Dotted key (`ingestor.max_rate`) → the variable that set it, as `NAME="value"`.
pub(super) type EnvOrigins = HashMap<String, String>;

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
    ("DEAD_LETTER_QUEUE", "redis.dead_dlq", Kind::Text),
    ("METRICS_PREFIX", "redis.metrics_prefix", Kind::Text),
    ("DB_POOL_MAX_CONN", "database.pool_size", Kind::Int),
    ("DB_POOL_MIN_CONN", "database.pool_min", Kind::Int),
    ("DB_TLS_CA_CERT_PATH", "database.ca_file", Kind::Text),
    ("REDIS_CA_CERT_PATH", "redis.ca_file", Kind::Text),
    ("SERVER_PORT_INGESTOR", "ingestor.port", Kind::Port),
    ("REQUIRED_FIELDS", "ingestor.required_fields", Kind::List),
    ("MAX_INGEST_QUEUE_SIZE", "ingestor.max_queue_size", Kind::Int),
    ("MAX_INGEST_BODY_BYTES", "ingestor.max_body_bytes", Kind::Int),
    ("RATE_LIMIT_ENABLED", "ingestor.rate_limit_enabled", Kind::Bool),
    ("INGEST_MAX_RATE", "ingestor.max_rate", Kind::Int),
    ("INGEST_RATE_WINDOW", "ingestor.rate_window_secs", Kind::Int),
    ("METRICS_PORT_ALERTER", "alerter.port", Kind::Port),
    ("HEALTH_PORT_ALERTER", "alerter.health_port", Kind::Port),
    ("ALERTER_MAX_RETRIES", "alerter.max_retries", Kind::Int),
    ("CACHE_RELOAD_INTERVAL", "alerter.cache_reload_interval_secs", Kind::Int),
    ("UNHANDLED_THRESHOLD", "alerter.unhandled_threshold", Kind::Int),
    ("UNHANDLED_EXPIRY_SECONDS", "alerter.unhandled_expiry_secs", Kind::Int),
    ("UNHANDLED_DEFAULT_TEAM", "alerter.unhandled_default_team", Kind::Text),
    ("METRICS_PORT_MOOG", "forwarder.port", Kind::Port),
    ("HEALTH_PORT_MOOG", "forwarder.health_port", Kind::Port),
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
    ("SERVER_PORT_WEBUI", "web.port", Kind::Port),
    ("METRICS_CACHE_TTL", "web.metrics_cache_ttl_secs", Kind::Int),
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
    ("RETENTION_ENFORCEMENT_ENABLED", "retention.enabled", Kind::Bool),
    ("RETENTION_DRY_RUN", "retention.dry_run", Kind::Bool),
    ("EVENT_ARCHIVE_RETENTION_YEARS", "retention.archive_years", Kind::Int),
    ("RETENTION_PRECREATE_MONTHS", "retention.precreate_months", Kind::Int),
    ("PROMETHEUS_URL", "slo.prometheus_url", Kind::Text),
    ("REMEDIATION_ENABLED", "remediation.enabled", Kind::Bool),
    ("REMEDIATION_INTERVAL", "remediation.interval_secs", Kind::Int),
    ("REMEDIATION_BATCH_SIZE", "remediation.batch_size", Kind::Int),
    ("MAX_POISON_RETRIES", "remediation.max_poison_retries", Kind::Int),
    ("MOOG_HEALTH_CHECK_ENABLED", "remediation.health_check_enabled", Kind::Bool),
    ("MOOG_HEALTH_TIMEOUT", "remediation.health_timeout_secs", Kind::Float),
    ("METRICS_PORT_REMEDIATION", "remediation.port", Kind::Port),
    ("HEALTH_PORT_REMEDIATION", "remediation.health_port", Kind::Port),
    ("RETENTION_DLQ_DAYS", "remediation.dlq_retention_days", Kind::Int),
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
        "DB_TLS_ENABLED",
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
    /// 1–65535, as the original validated its ports (0, "any free port", is muttd's own
    /// settings' business: `MUTT_INGESTOR__PORT=0`).
    Port,
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
        Kind::Port => {
            Value::from(raw.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("a port (1-65535)"))?)
        }
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

/// The original's variables as a nested map; records in `origins` which variable set each key.
pub(super) fn legacy_overrides(env: &HashMap<String, String>, origins: &mut EnvOrigins) -> Result<Value, ConfigError> {
    let mut root = Map::new();
    for (name, path, kind) in LEGACY_VARS {
        if let Some(raw) = env.get(*name).filter(|v| !v.is_empty()) {
            insert_path(&mut root, path, parse_value(name, raw, *kind)?);
            origins.insert((*path).to_owned(), shown(name, raw));
        }
    }
    redis_url(env, &mut root)?;
    // The original named each role's full prefix; muttd keeps one prefix and adds the role.
    let per_role = [
        ("ALERTER_PROCESSING_LIST_PREFIX", "alerter", "redis.processing_prefix"),
        ("MOOG_PROCESSING_LIST_PREFIX", "moog", "redis.processing_prefix"),
        ("ALERTER_HEARTBEAT_PREFIX", "alerter", "redis.heartbeat_prefix"),
        ("MOOG_HEARTBEAT_PREFIX", "moog", "redis.heartbeat_prefix"),
    ];
    for (var, role, path) in per_role {
        if let Some(v) = env.get(var) {
            let prefix = v.strip_suffix(&format!(":{role}")).ok_or_else(|| {
                ConfigError::Invalid(format!("{var}={v:?} must end with \":{role}\" (keys are <prefix>:{role}:<pod>)"))
            })?;
            insert_path(&mut root, path, Value::from(prefix));
            origins.insert(path.into(), format!("{var}={v:?}"));
        }
    }
    database_url(env, &mut root)?;
    Ok(Value::Object(root))
}

/// Redis: host/port/db/TLS make a URL (`REDIS_TLS_ENABLED` is true unless set otherwise, as in
/// the original).
fn redis_url(env: &HashMap<String, String>, root: &mut Map<String, Value>) -> Result<(), ConfigError> {
    if !(env.contains_key("REDIS_HOST") || env.contains_key("REDIS_PORT")) {
        return Ok(());
    }
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
    let tls = super::tls::legacy_tls_enabled(env, "REDIS_TLS_ENABLED");
    let scheme = if tls { "rediss" } else { "redis" };
    insert_path(root, "redis.url", Value::from(format!("{scheme}://{host}:{port}/{db}")));
    Ok(())
}

/// PostgreSQL: host/port/name/user make a URL (the password stays a secret); `DB_TLS_ENABLED`
/// (true unless set otherwise, as in the original) its `sslmode`.
fn database_url(env: &HashMap<String, String>, root: &mut Map<String, Value>) -> Result<(), ConfigError> {
    if !(env.contains_key("DB_HOST") || env.contains_key("DB_NAME")) {
        return Ok(());
    }
    let host = env.get("DB_HOST").map(String::as_str).unwrap_or("localhost");
    let port = match env.get("DB_PORT") {
        Some(p) => p.trim().parse::<u16>().map_err(|_| ConfigError::Invalid(format!("DB_PORT={p:?} is not a port")))?,
        None => 5432,
    };
    let name = env.get("DB_NAME").map(String::as_str).unwrap_or("mutt_db");
    let user = env.get("DB_USER").map(String::as_str).unwrap_or("mutt_user");
    let sslmode = super::tls::legacy_sslmode(env);
    insert_path(root, "database.url", Value::from(format!("postgres://{user}@{host}:{port}/{name}?sslmode={sslmode}")));
    Ok(())
}

/// `MUTT_SECTION__KEY=value` → `section.key`. Values that read as numbers or booleans are
/// taken as such (serde then checks the type against the field). Keys that are no setting
/// are kept, so that deserialising refuses them, naming the variable.
pub(super) fn mutt_overrides(env: &HashMap<String, String>, origins: &mut EnvOrigins) -> Value {
    let mut root = Map::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("MUTT_") else {
            continue;
        };
        // `<NAME>_FILE` names a secret's file, but `MUTT_FORWARDER__ALERTS_FILE` is a setting.
        let secret_file = rest.ends_with("_FILE") && !rest.contains("__");
        // `MUTT_GIT_COMMIT` is a build input (build.rs, the Dockerfile's ARG), not a setting.
        if rest.starts_with("TEST_") || rest == "CONFIG" || rest == "GIT_COMMIT" || secret_file || is_secret_name(rest)
        {
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
        origins.insert(path, shown(name, raw));
    }
    Value::Object(root)
}

/// `NAME="value"` for an error message, without a password the value's URL may carry.
fn shown(name: &str, raw: &str) -> String {
    format!("{name}={:?}", mutt_core::secret::redact_url(raw))
}

fn is_secret_name(name: &str) -> bool {
    crate::secrets::SECRET_NAMES.contains(&name)
}

//! Which backend this process uses (DESIGN.md §3) and the few things that differ between them:
//! the embedded SQLite file when neither Redis nor PostgreSQL is configured, Redis +
//! PostgreSQL otherwise.

use crate::config::{Config, tls};
use crate::secrets::{SecretSource, first_of};
use anyhow::{Context, Result, anyhow, bail};
use mutt_queue::Backend;
use mutt_queue::redis::{RedisConfig, RedisQueue};
use mutt_queue::sqlite::SqliteQueue;
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::sqlite::SqliteStore;
use std::sync::Arc;

/// The queue and coordination side of this process: Redis, or the embedded file.
pub type QueueBackend = Arc<dyn Backend>;

/// The store side of this process.
#[derive(Clone)]
pub enum StoreBackend {
    Postgres(Box<PgStore>),
    Embedded(SqliteStore),
}

impl StoreBackend {
    pub fn as_dyn(&self) -> Arc<dyn Store> {
        match self {
            StoreBackend::Postgres(s) => Arc::new(s.as_ref().clone()),
            StoreBackend::Embedded(s) => Arc::new(s.clone()),
        }
    }

    pub async fn migrate(&self) -> Result<Vec<String>> {
        Ok(match self {
            StoreBackend::Postgres(s) => s.migrate().await?,
            StoreBackend::Embedded(s) => s.migrate().await?,
        })
    }
}

/// Whether this configuration names no Redis and no PostgreSQL: then everything lives in the
/// embedded data file.
pub fn is_embedded(config: &Config) -> bool {
    let r = &config.redis;
    r.url.is_none() && r.sentinel_urls.is_empty() && r.cluster_nodes.is_empty() && config.database.url.is_none()
}

fn open_database(config: &Config) -> Result<mutt_sqlite::Database> {
    let path = config.embedded_path();
    let options = mutt_sqlite::DbOptions {
        durability: config.embedded.durability(),
        commit_delay: std::time::Duration::from_micros(config.embedded.commit_delay_us),
        ..Default::default()
    };
    mutt_sqlite::Database::open(&path, options).with_context(|| format!("opening the data file {}", path.display()))
}

/// Opens the embedded backend as the file's owner (the `muttd run` process): migrates, and
/// takes back what a crashed previous run left leased.
pub async fn open_embedded(config: &Config) -> Result<(QueueBackend, StoreBackend)> {
    let db = open_database(config)?;
    let store = SqliteStore::new(db.clone());
    let applied = store.migrate().await.context("migrating the data file")?;
    if !applied.is_empty() {
        tracing::info!(file = %db.path().display(), applied = applied.len(), "data file created or migrated");
    }
    let queue = SqliteQueue::open(db, config.redis.keys()).await?.with_batch_envelope(config.embedded.batch_envelope);
    Ok((Arc::new(queue), StoreBackend::Embedded(store)))
}

/// The queue for looking (`muttd status`, `muttd rules import`'s reload): Redis, or a
/// read-only view of the embedded file while `muttd run` owns it.
pub async fn connect_queue_view(config: &Config, secrets: &dyn SecretSource) -> Result<QueueBackend> {
    if !is_embedded(config) {
        return Ok(Arc::new(connect_redis(config, secrets).await?.with_deep_status()));
    }
    let path = config.embedded_path();
    if !path.exists() {
        bail!("no data file at {} yet: start MUTT with `muttd run` first", path.display());
    }
    Ok(Arc::new(SqliteQueue::attach(open_database(config)?, config.redis.keys()).await?))
}

/// The store for operator commands (`rules …`, `config …`): PostgreSQL, or the embedded file
/// (created and migrated if needed, so rules can be imported before the first run).
pub async fn connect_store_admin(config: &Config, secrets: &dyn SecretSource) -> Result<StoreBackend> {
    let store = connect_store_unmigrated(config, secrets).await?;
    if let StoreBackend::Embedded(s) = &store {
        s.migrate().await.context("migrating the data file")?;
    }
    Ok(store)
}

/// The store as it is, for `muttd migrate`.
pub async fn connect_store_unmigrated(config: &Config, secrets: &dyn SecretSource) -> Result<StoreBackend> {
    if !is_embedded(config) {
        return Ok(StoreBackend::Postgres(Box::new(connect_postgres(config, secrets).await?)));
    }
    Ok(StoreBackend::Embedded(SqliteStore::new(open_database(config)?)))
}

pub async fn connect_redis(config: &Config, secrets: &dyn SecretSource) -> Result<RedisQueue> {
    let url = match (&config.redis.url, config.redis.sentinel_urls.is_empty() && config.redis.cluster_nodes.is_empty())
    {
        (Some(u), _) => u.clone(),
        (None, false) => String::new(),
        (None, true) => bail!(
            "no Redis configured: set redis.url (MUTT_REDIS__URL) or REDIS_HOST/REDIS_PORT \
             (or neither Redis nor PostgreSQL, for the embedded backend)"
        ),
    };
    let password = first_of(secrets, &["REDIS_PASS_CURRENT", "REDIS_PASS"])?;
    let redis = RedisConfig {
        url,
        password,
        keys: config.redis.keys(),
        topology: config.redis.topology()?,
        ca_file: config.redis.ca_file.clone(),
    };
    tls::check_files(config, false)?;
    tracing::info!(tls = %config.redis.tls_description(), "Redis connection");
    // A single server tries CURRENT, then NEXT, on every new connection while running (and
    // follows the values when Vault's change); Sentinel and Cluster choose at start, below.
    let credentials =
        crate::secrets::vault::rotating_credentials(secrets, &["REDIS_PASS_CURRENT", "REDIS_PASS"], "REDIS_PASS_NEXT")?;
    let envelope = config.redis.batch_envelope;
    let queue = match RedisQueue::connect_with_credentials(&redis, credentials).await {
        Ok(q) => q,
        // Dual-password rotation (spec §11.4): try the next password before giving up.
        Err(e) => match first_of(secrets, &["REDIS_PASS_NEXT"])? {
            Some(next) => RedisQueue::connect(&RedisConfig { password: Some(next), ..redis })
                .await
                .context("connecting to Redis (with REDIS_PASS_NEXT after the current password failed)")
                .map_err(|e| {
                    let hint = tls::redis_hint(&config.redis, &format!("{e:#}"));
                    with_hint(e, hint)
                })?,
            None => {
                let hint = tls::redis_hint(&config.redis, &e.to_string());
                return Err(with_hint(anyhow::Error::from(e).context("connecting to Redis"), hint));
            }
        },
    };
    Ok(queue.with_batch_envelope(envelope))
}

/// Adds what to change to a connection error, when the configuration suggests it.
fn with_hint(e: anyhow::Error, hint: Option<&'static str>) -> anyhow::Error {
    match hint {
        Some(h) => e.context(h),
        None => e,
    }
}

/// A failed PostgreSQL connection, with the setting to change when the error points at TLS.
fn postgres_error(e: mutt_store::StoreError, what: &'static str) -> anyhow::Error {
    let hint = tls::postgres_hint(&e.to_string());
    with_hint(anyhow::Error::from(e).context(what), hint)
}

pub async fn connect_postgres(config: &Config, secrets: &dyn SecretSource) -> Result<PgStore> {
    let url = config.database.connection_url().ok_or_else(|| {
        anyhow!(
            "no PostgreSQL configured: set database.url (MUTT_DATABASE__URL) or DB_HOST/DB_NAME \
             (or neither Redis nor PostgreSQL, for the embedded backend)"
        )
    })?;
    let password = first_of(secrets, &["DB_PASS_CURRENT", "DB_PASS"])?;
    let pg = PostgresConfig { url, password, pool_size: config.database.pool_size };
    tls::check_files(config, true)?;
    if let Some(key) = &config.database.client_key_file {
        crate::secrets::check_file_mode(key, "the client key", config.secrets.file_permissions)?;
    }
    let timeouts = config.database.timeouts();
    // Every new connection tries DB_PASS_CURRENT, then DB_PASS_NEXT (spec §11.4), at start and
    // while running, with the values Vault has now.
    let credentials =
        crate::secrets::vault::rotating_credentials(secrets, &["DB_PASS_CURRENT", "DB_PASS"], "DB_PASS_NEXT")?;
    let store = PgStore::with_credentials(&pg, &timeouts, credentials)?;
    tracing::info!(tls = %store.tls_settings().describe(), "PostgreSQL connection");
    if let Err(e) = store.ping().await {
        return Err(postgres_error(e, "connecting to PostgreSQL"));
    }
    Ok(store)
}

/// Reads the API key kept in `<data_dir>/<file>`, creating a random one (mode 0600) the first
/// time: the embedded first run needs no setup and still never accepts unauthenticated events.
pub fn data_dir_key(config: &Config, file: &str) -> Result<mutt_core::Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = config.data_dir.join(file);
    if path.exists() {
        crate::secrets::check_file_mode(&path, file, config.secrets.file_permissions)?;
    }
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim();
        if !key.is_empty() {
            return Ok(mutt_core::Secret::new(key));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    // 122 random bits from the OS generator.
    let key = uuid::Uuid::new_v4().simple().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{key}").with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(file = %path.display(), "created an API key (send it as X-API-KEY)");
    Ok(mutt_core::Secret::new(key))
}

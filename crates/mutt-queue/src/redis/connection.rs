//! Reaching Redis in its three deployments: one server (`redis://`, `rediss://` for TLS),
//! Sentinel (the master is looked up through the sentinels and followed across failovers),
//! and Cluster (every multi-key command and script needs its keys in one slot, which the
//! hash-tagged key prefix `{mutt}:` gives).
//!
//! Deadlines: every connection has a connect timeout, TCP keepalive and a TCP user timeout
//! (a peer that vanished without a reset is noticed by the kernel too); the shared connection
//! has a response timeout and is replaced after one fires ([`Healing`]); the blocking
//! connection's calls are bounded by the consumer (the wait plus a margin).

use super::rotation::{Rotating, is_refused};
use mutt_core::Secret;
use mutt_core::credentials::Credentials;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisFuture, RedisResult, TlsCertificates, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a non-blocking command may take before the call fails (and the shared
/// connection is replaced).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Keepalive probes after 15 s idle, every 5 s, 3 of them; unacknowledged data for 30 s ends
/// the connection (TCP_USER_TIMEOUT). Without these a connection whose peer vanished without
/// a reset (a dropped NAT entry, a dead host) looks open forever.
fn tcp_settings() -> TcpSettings {
    let keepalive =
        TcpKeepalive::new().with_time(Duration::from_secs(15)).with_interval(Duration::from_secs(5)).with_retries(3);
    TcpSettings::default().set_nodelay(true).set_keepalive(keepalive).set_user_timeout(Duration::from_secs(30))
}

/// Which kind of Redis deployment to talk to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// One server at [`super::RedisConfig::url`].
    #[default]
    Single,
    /// The master named `master_name`, found through these sentinels (`redis://host:26379`).
    Sentinel { master_name: String, sentinels: Vec<String> },
    /// A Redis Cluster reached through any of these nodes.
    Cluster { nodes: Vec<String> },
}

/// Any of the connection kinds, usable wherever redis-rs wants a connection.
#[derive(Clone)]
pub enum AnyConnection {
    Managed(Arc<Healing>),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for AnyConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            AnyConnection::Managed(h) => h.command(cmd),
            AnyConnection::Multiplexed(c) => c.req_packed_command(cmd),
            AnyConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConnection::Managed(h) => h.pipeline(pipeline, offset, count),
            AnyConnection::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConnection::Managed(h) => h.get().get_db(),
            AnyConnection::Multiplexed(c) => c.get_db(),
            AnyConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// The shared connection: a [`ConnectionManager`] that is replaced by a fresh one when a
/// request times out. redis-rs reconnects a manager only when its connection reports being
/// dropped; a path that went silent without a reset would time out every request forever.
pub struct Healing {
    current: std::sync::RwLock<ConnectionManager>,
    client: Client,
    config: ConnectionManagerConfig,
    /// A replacement is being connected (one at a time).
    replacing: AtomicBool,
    /// A single server's password pair: replacements try each (see `rotation`).
    rotating: Option<Arc<Rotating>>,
}

impl Healing {
    fn get(&self) -> ConnectionManager {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn command<'a>(self: &'a Arc<Self>, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        let mut c = self.get();
        Box::pin(async move {
            let r = c.req_packed_command(cmd).await;
            self.after(&r);
            r
        })
    }

    fn pipeline<'a>(
        self: &'a Arc<Self>,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut c = self.get();
        Box::pin(async move {
            let r = c.req_packed_commands(pipeline, offset, count).await;
            self.after(&r);
            r
        })
    }

    fn after<T>(self: &Arc<Self>, result: &RedisResult<T>) {
        // A refused password leaves the manager failing every request with it (it reconnects
        // by itself only after I/O errors): replace it, trying the other password.
        if let Err(e) = result
            && (e.is_timeout() || is_refused(e))
        {
            self.replace();
        }
    }

    /// Connects a replacement in the background; requests keep using the old one until then.
    fn replace(self: &Arc<Self>) {
        if self.replacing.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let fresh = match &me.rotating {
                Some(r) => r
                    .open(|c| {
                        let config = me.config.clone();
                        async move { c.get_connection_manager_with_config(config).await }
                    })
                    .await
                    .map(|(m, _)| m),
                None => me.client.get_connection_manager_with_config(me.config.clone()).await,
            };
            match fresh {
                Ok(fresh) => {
                    *me.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    tracing::warn!("redis: a request timed out or was refused; the shared connection was replaced");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis: replacing the shared connection failed");
                    // Every request fails meanwhile; without a pause each would start another try.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            me.replacing.store(false, Ordering::SeqCst);
        });
    }
}

/// Opens connections of the right kind.
// One per process, behind an Arc: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Connector {
    Single(Arc<Rotating>),
    Sentinel { sentinel: tokio::sync::Mutex<SentinelClient> },
    Cluster { client: ClusterClient, blocking: ClusterClient, pubsub: Client },
}

fn tls_certs(ca_file: &Option<PathBuf>) -> RedisResult<Option<TlsCertificates>> {
    match ca_file {
        None => Ok(None),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read the Redis CA file",
                    format!("{}: {e}", path.display()),
                ))
            })?;
            Ok(Some(TlsCertificates { client_tls: None, root_cert: Some(pem) }))
        }
    }
}

fn with_password(url: &str, password: &Option<Secret>) -> RedisResult<redis::ConnectionInfo> {
    let mut info = url.into_connection_info()?.set_tcp_settings(tcp_settings());
    if let Some(p) = password {
        let settings = info.redis_settings().clone().set_password(p.expose());
        info = info.set_redis_settings(settings);
    }
    Ok(info)
}

pub(crate) fn client(url: &str, password: &Option<Secret>, ca_file: &Option<PathBuf>) -> RedisResult<Client> {
    let info = with_password(url, password)?;
    match tls_certs(ca_file)? {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    }
}

impl Connector {
    /// `credentials`: a single server tries each on every new connection; Sentinel and Cluster
    /// use the first.
    pub(crate) fn new(
        topology: &Topology,
        url: &str,
        credentials: Arc<Credentials>,
        ca_file: &Option<PathBuf>,
    ) -> RedisResult<Self> {
        let password = &credentials.candidates().into_iter().next().map(|c| c.password);
        Ok(match topology {
            Topology::Single => {
                // Checks the URL now, as the other topologies do.
                client(url, &None, ca_file)?;
                Connector::Single(Arc::new(Rotating { url: url.to_owned(), ca_file: ca_file.clone(), credentials }))
            }
            Topology::Sentinel { master_name, sentinels } => {
                let addrs: Vec<redis::ConnectionAddr> = sentinels
                    .iter()
                    .map(|s| s.as_str().into_connection_info().map(|i| i.addr().clone()))
                    .collect::<RedisResult<_>>()?;
                let mut builder = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)?
                    .set_client_to_redis_tcp_settings(tcp_settings())
                    .set_client_to_sentinel_tcp_settings(tcp_settings());
                if let Some(p) = password {
                    builder = builder.set_client_to_redis_password(p.expose());
                }
                if let Some(certs) = tls_certs(ca_file)? {
                    builder = builder
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_redis_certificates(certs);
                }
                Connector::Sentinel { sentinel: tokio::sync::Mutex::new(builder.build()?) }
            }
            Topology::Cluster { nodes } => {
                let infos: Vec<redis::ConnectionInfo> =
                    nodes.iter().map(|n| with_password(n, password)).collect::<RedisResult<_>>()?;
                let first = nodes.first().ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no cluster nodes given"))
                })?;
                let build = |response: Duration| {
                    let mut b = ClusterClient::builder(infos.clone())
                        .connection_timeout(CONNECT_TIMEOUT)
                        .response_timeout(response);
                    if let Some(p) = password {
                        b = b.password(p.expose());
                    }
                    if let Some(certs) = tls_certs(ca_file)? {
                        b = b.certs(certs);
                    }
                    b.build()
                };
                Connector::Cluster {
                    client: build(RESPONSE_TIMEOUT)?,
                    // Blocking calls are bounded by the consumer (the wait plus a margin).
                    blocking: build(Duration::from_secs(24 * 3600))?,
                    pubsub: client(first, password, ca_file)?,
                }
            }
        })
    }

    /// The client of the current master (single server, or Sentinel's answer now).
    async fn master(&self) -> RedisResult<Client> {
        match self {
            Connector::Single(r) => r.preferred(),
            Connector::Sentinel { sentinel, .. } => sentinel.lock().await.async_get_client().await,
            Connector::Cluster { pubsub, .. } => Ok(pubsub.clone()),
        }
    }

    /// The master's address as text (for noticing a Sentinel failover).
    pub(crate) async fn master_address(&self) -> RedisResult<String> {
        Ok(self.master().await?.get_connection_info().addr().to_string())
    }

    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self, Connector::Sentinel { .. })
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connector::Cluster { .. })
    }

    /// The shared, non-blocking connection (reconnects by itself).
    pub(crate) async fn shared(&self) -> RedisResult<AnyConnection> {
        if let Connector::Cluster { client, .. } = self {
            return Ok(AnyConnection::Cluster(client.get_async_connection().await?));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let (manager, client, rotating) = match self {
            Connector::Single(r) => {
                let (manager, client) = r
                    .open(|c| {
                        let config = config.clone();
                        async move { c.get_connection_manager_with_config(config).await }
                    })
                    .await?;
                (manager, client, Some(r.clone()))
            }
            _ => {
                let client = self.master().await?;
                (client.get_connection_manager_with_config(config.clone()).await?, client, None)
            }
        };
        Ok(AnyConnection::Managed(Arc::new(Healing {
            current: std::sync::RwLock::new(manager),
            client,
            config,
            replacing: AtomicBool::new(false),
            rotating,
        })))
    }

    /// A connection of its own for blocking commands: no response timeout of its own, so BLMOVE
    /// is never cut short by it (the consumer bounds each call by its wait plus a margin), and
    /// nothing else waits behind it.
    pub(crate) async fn blocking(&self) -> RedisResult<AnyConnection> {
        if let Connector::Cluster { blocking, .. } = self {
            return Ok(AnyConnection::Cluster(blocking.get_async_connection().await?));
        }
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(None);
        let conn = match self {
            Connector::Single(r) => {
                r.open(|c| {
                    let config = config.clone();
                    async move { c.get_multiplexed_async_connection_with_config(&config).await }
                })
                .await?
                .0
            }
            _ => self.master().await?.get_multiplexed_async_connection_with_config(&config).await?,
        };
        Ok(AnyConnection::Multiplexed(conn))
    }

    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match self {
            Connector::Single(r) => Ok(r.open(|c| async move { c.get_async_pubsub().await }).await?.0),
            _ => self.master().await?.get_async_pubsub().await,
        }
    }
}

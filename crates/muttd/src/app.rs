//! Starting roles: connect the backends once, bind each role's listener, spawn its tasks.

use crate::backend::{self, QueueBackend, StoreBackend};
use crate::config::Config;
use crate::secrets::{SecretSource, key_list};
use anyhow::{Context, Result, anyhow, bail};
use mutt_alerter::{Alerter, AlerterConfig, AlerterHealth, AlerterMetrics};
use mutt_core::PodName;
use mutt_forwarder::{Forwarder, ForwarderConfig, ForwarderHealth, ForwarderMetrics};
use mutt_ingest::IngestConfig;
use mutt_queue::{ConsumerConfig, Coordination, Queue, QueueMetrics, WorkerRole};
use mutt_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Role {
    Ingestor,
    Alerter,
    Forwarder,
    Web,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingestor, Role::Alerter, Role::Forwarder, Role::Web];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingestor => "ingestor",
            Role::Alerter => "alerter",
            Role::Forwarder => "forwarder",
            Role::Web => "web",
        }
    }

    fn port(self, c: &Config) -> u16 {
        match self {
            Role::Ingestor => c.ingestor.port,
            Role::Alerter => c.alerter.port,
            Role::Forwarder => c.forwarder.port,
            Role::Web => c.web.port,
        }
    }

    fn needs_store(self) -> bool {
        matches!(self, Role::Alerter | Role::Web)
    }
}

/// Roles started in this process.
pub struct App {
    pub shutdown: CancellationToken,
    pub addresses: Vec<(Role, SocketAddr)>,
    tasks: Vec<(Role, JoinHandle<Result<()>>)>,
    pub queue: Arc<dyn Queue>,
    pub coordination: Arc<dyn Coordination>,
    pub store: Option<Arc<dyn Store>>,
    /// Whether the embedded data file backs this process.
    pub embedded: bool,
    pub alerter_rules: Option<mutt_alerter::RuleCache>,
}

impl App {
    pub fn address(&self, role: Role) -> Option<SocketAddr> {
        self.addresses.iter().find(|(r, _)| *r == role).map(|(_, a)| *a)
    }

    /// Waits until every role has stopped (after `shutdown` is cancelled, or a role failed:
    /// then the others are asked to stop too). Returns the first failure.
    pub async fn wait(self) -> Result<()> {
        let mut first_error = None;
        let shutdown = self.shutdown.clone();
        let mut pending: Vec<_> =
            self.tasks.into_iter().map(|(role, task)| Box::pin(async move { (role, task.await) })).collect();
        while !pending.is_empty() {
            let ((role, result), _, rest) = futures_util::future::select_all(pending).await;
            pending = rest;
            match result {
                Ok(Ok(())) => tracing::info!(role = role.as_str(), "role stopped"),
                Ok(Err(e)) => {
                    tracing::error!(role = role.as_str(), error = %format!("{e:#}"), "role failed");
                    first_error.get_or_insert(e.context(format!("{} failed", role.as_str())));
                    shutdown.cancel();
                }
                Err(join) => {
                    tracing::error!(role = role.as_str(), error = %join, "role panicked");
                    first_error.get_or_insert(anyhow!("{} panicked: {join}", role.as_str()));
                    shutdown.cancel();
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Asks every role to stop and waits for them.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn consumer_config(config: &Config, role: WorkerRole, pod: &PodName, metrics: &QueueMetrics) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(role, pod.clone());
    c.metrics = metrics.clone();
    c.heartbeat_interval = Duration::from_secs(config.worker.heartbeat_interval_secs);
    c.heartbeat_ttl = Duration::from_secs(config.worker.heartbeat_ttl_secs);
    c.janitor_interval = Duration::from_secs(config.worker.janitor_interval_secs);
    c
}

/// Options for [`start`].
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Run database migrations before starting.
    pub migrate: bool,
}

/// Connects the backends and starts the given roles; returns once every listener is bound.
pub async fn start(config: &Config, secrets: &dyn SecretSource, roles: &[Role], opts: StartOptions) -> Result<App> {
    if roles.is_empty() {
        bail!("no roles to start");
    }
    let embedded = backend::is_embedded(config);
    let (queue_backend, store_backend) = if embedded {
        let (q, s) = backend::open_embedded(config).await?;
        tracing::info!(file = %config.embedded_path().display(), "embedded backend (no Redis or PostgreSQL configured)");
        (q, Some(s))
    } else {
        let q: QueueBackend = Arc::new(backend::connect_redis(config, secrets).await?);
        let s = if roles.iter().any(|r| r.needs_store()) || opts.migrate {
            let s = StoreBackend::Postgres(Box::new(backend::connect_postgres(config, secrets).await?));
            if opts.migrate {
                let applied = s.migrate().await.context("running migrations")?;
                tracing::info!(applied = applied.len(), "migrations applied");
            }
            Some(s)
        } else {
            None
        };
        (q, s)
    };
    // Embedded, every batch waits for a few commits of the one data file: bigger batches.
    let default_batch = if embedded { 500 } else { 100 };
    let queue: Arc<dyn Queue> = queue_backend.clone();
    let coordination: Arc<dyn Coordination> = queue_backend.clone();
    let store = store_backend.as_ref().map(StoreBackend::as_dyn);
    if let (true, Some(s)) = (embedded, &store)
        && s.list_rules().await.map(|r| r.is_empty()).unwrap_or(false)
    {
        println!(
            "muttd: no rules yet, so no event raises an alert; add rules with `muttd rules import FILE` \
             (example: examples/rules.yaml)"
        );
    }
    let metrics = mutt_service::Metrics::new();
    let shutdown = CancellationToken::new();
    let mut app = App {
        shutdown: shutdown.clone(),
        addresses: Vec::new(),
        tasks: Vec::new(),
        queue: queue.clone(),
        coordination: coordination.clone(),
        store: store.clone(),
        embedded,
        alerter_rules: None,
    };
    let dyn_queue: Arc<dyn Queue> = queue.clone();
    // Queue depths for every role's /metrics, sampled every 5 s.
    let queue_metrics = QueueMetrics::default();
    metrics.register(|r| queue_metrics.register(r));
    let sampler = queue_metrics.spawn_sampler(dyn_queue.clone(), Duration::from_secs(5));
    let sd = shutdown.clone();
    tokio::spawn(async move {
        sd.cancelled().await;
        sampler.abort();
    });

    for &role in roles {
        let bind = format!("{}:{}", config.bind_address, role.port(config));
        let listener =
            TcpListener::bind(&bind).await.with_context(|| format!("{}: cannot listen on {bind}", role.as_str()))?;
        let addr = listener.local_addr()?;
        let pod = match &config.pod_name {
            Some(p) => PodName::parse(p.clone())?,
            None => PodName::random(role.as_str()),
        };
        let task: JoinHandle<Result<()>> = match role {
            Role::Ingestor => {
                let ingest = IngestConfig {
                    api_keys: api_keys(
                        secrets,
                        "INGEST_API_KEY",
                        (embedded && !config.ingestor.auth_disabled).then_some((config, "ingest-api-key")),
                    )?,
                    auth_disabled: config.ingestor.auth_disabled,
                    required_fields: config.ingestor.required_fields.clone(),
                    max_queue_size: config.ingestor.max_queue_size,
                    max_body_bytes: config.ingestor.max_body_bytes,
                    max_batch_events: config.ingestor.max_batch_events,
                    rate_limit: config.ingestor.rate_limit_enabled.then(|| mutt_ingest::RateLimit {
                        limit: config.ingestor.max_rate.max(1),
                        window: Duration::from_secs(config.ingestor.rate_window_secs.max(1)),
                    }),
                    normalize: config.ingestor.normalize,
                };
                let router = mutt_ingest::router(dyn_queue.clone(), coordination.clone(), ingest, metrics.clone())?;
                let sd = shutdown.clone();
                tokio::spawn(async move { Ok(mutt_service::serve(listener, router, sd).await?) })
            }
            Role::Alerter => {
                let store: Arc<dyn Store> = store.clone().ok_or_else(|| anyhow!("alerter needs a store"))?;
                let alerter_metrics = AlerterMetrics::register(&metrics);
                let cfg = AlerterConfig {
                    batch_size: config.alerter.batch_size.unwrap_or(default_batch),
                    block_timeout: secs(config.worker.block_timeout_secs),
                    max_retries: config.alerter.max_retries,
                    cache_reload_interval: Duration::from_secs(config.alerter.cache_reload_interval_secs.max(1)),
                    unhandled_default_team: config.alerter.unhandled_default_team.clone(),
                    dynamic: mutt_alerter::dynamic::DynamicSettings {
                        unhandled_threshold: config.alerter.unhandled_threshold.max(1),
                        unhandled_expiry: Duration::from_secs(config.alerter.unhandled_expiry_secs.max(1)),
                        ..Default::default()
                    },
                    ..AlerterConfig::default()
                };
                let alerter = Alerter::start(
                    dyn_queue.clone(),
                    coordination.clone(),
                    store.clone(),
                    consumer_config(config, WorkerRole::Alerter, &pod, &queue_metrics),
                    cfg,
                    alerter_metrics,
                )
                .await?;
                let rules = alerter.rules().clone();
                app.alerter_rules = Some(rules.clone());
                // Rule edits elsewhere (pub/sub, or the embedded file's rules version): reload.
                let (watcher, sd) = (coordination.clone(), shutdown.clone());
                tokio::spawn(async move {
                    watcher.watch_rules_changed(Box::new(move || rules.request_reload()), sd).await;
                });
                if config.retention.enabled {
                    crate::retention::spawn(store.clone(), config.retention.clone(), &metrics, shutdown.clone());
                }
                let health = Arc::new(AlerterHealth { queue: dyn_queue.clone(), store, pod: pod.to_string() });
                let router = mutt_service::ops::routes(metrics.clone(), health);
                let sd = shutdown.clone();
                tokio::spawn(async move {
                    let server = tokio::spawn(mutt_service::serve(listener, router, sd.clone()));
                    alerter.run(sd).await?;
                    server.await??;
                    Ok(())
                })
            }
            Role::Forwarder => {
                let destination = match &config.forwarder.webhook_url {
                    Some(url) => mutt_forwarder::Destination::Webhook(url.clone()),
                    None => {
                        let file = config.alerts_file();
                        tracing::warn!(
                            file = %file.display(),
                            "no webhook configured (forwarder.webhook_url / MOOG_WEBHOOK_URL): alerts are written to a file"
                        );
                        mutt_forwarder::Destination::File(file)
                    }
                };
                let webhook_url = config.forwarder.webhook_url.clone().unwrap_or_default();
                let fwd_metrics = ForwarderMetrics::register(&metrics);
                let f = &config.forwarder;
                let moog_key = secrets.get("MOOG_API_KEY")?;
                use crate::config::LamAuthMode;
                let lam_auth = match (f.lam_auth, &moog_key) {
                    (LamAuthMode::Token, Some(k)) => mutt_forwarder::LamAuth::Token(k.clone()),
                    (LamAuthMode::Basic, Some(k)) => {
                        mutt_forwarder::LamAuth::Basic { user: f.lam_user.clone(), password: k.clone() }
                    }
                    (LamAuthMode::Basic, None) => bail!("forwarder.lam_auth = basic needs the MOOG_API_KEY secret"),
                    _ => mutt_forwarder::LamAuth::None,
                };
                let cfg = ForwarderConfig {
                    destination,
                    api_key: moog_key,
                    format: f.format,
                    lam_auth,
                    lam_batch_size: f.lam_batch_size.max(1),
                    severity_map: f.severity_map,
                    default_severity: f.default_severity,
                    timeout: secs(f.timeout_secs),
                    batch_size: f.batch_size.unwrap_or(default_batch),
                    block_timeout: secs(config.worker.block_timeout_secs),
                    max_retries: f.max_retries,
                    retry_base: secs(f.retry_base_secs),
                    retry_max: secs(f.retry_max_secs),
                    rate_limit: f
                        .rate_limit_enabled
                        .then(|| (f.rate_limit.max(1), Duration::from_secs(f.rate_period_secs.max(1)))),
                    breaker: f.circuit_breaker_enabled.then(|| {
                        (f.circuit_breaker_threshold.max(1), Duration::from_secs(f.circuit_breaker_timeout_secs.max(1)))
                    }),
                    dedup_ttl: Duration::from_secs(f.dedup_ttl_secs.max(1)),
                    ca_file: f.ca_file.clone(),
                    client_identity_file: f.client_identity_file.clone(),
                };
                let forwarder = Forwarder::start(
                    dyn_queue.clone(),
                    coordination.clone(),
                    consumer_config(config, WorkerRole::Forwarder, &pod, &queue_metrics),
                    cfg,
                    fwd_metrics,
                )
                .await?;
                let health = Arc::new(ForwarderHealth::new(dyn_queue.clone(), webhook_url, pod.to_string()));
                let router = mutt_service::ops::routes(metrics.clone(), health);
                let sd = shutdown.clone();
                tokio::spawn(async move {
                    let server = tokio::spawn(mutt_service::serve(listener, router, sd.clone()));
                    forwarder.run(sd).await;
                    server.await??;
                    Ok(())
                })
            }
            Role::Web => {
                let store: Arc<dyn Store> = store.clone().ok_or_else(|| anyhow!("web needs a store"))?;
                let web = mutt_web::WebConfig {
                    api_keys: api_keys(secrets, "WEBUI_API_KEY", embedded.then_some((config, "webui-api-key")))?,
                };
                let router = mutt_web::router(dyn_queue.clone(), store, web, metrics.clone())?;
                let sd = shutdown.clone();
                tokio::spawn(async move { Ok(mutt_service::serve(listener, router, sd).await?) })
            }
        };
        tracing::info!(role = role.as_str(), address = %addr, pod = %pod, "role started");
        app.addresses.push((role, addr));
        app.tasks.push((role, task));
    }
    Ok(app)
}

/// The keys of `secret`; when none is configured and `generated` names the data-dir file
/// (embedded backend, auth required), the key kept in that file, generated on first use.
fn api_keys(
    secrets: &dyn SecretSource,
    secret: &str,
    generated: Option<(&Config, &str)>,
) -> Result<Vec<mutt_core::Secret>> {
    let keys = key_list(secrets, secret)?;
    let Some((config, file)) = generated.filter(|_| keys.is_empty()) else {
        return Ok(keys);
    };
    let key = backend::data_dir_key(config, file)?;
    println!(
        "muttd: {secret} not set; using the key in {} (send it as X-API-KEY)",
        config.data_dir.join(file).display()
    );
    Ok(vec![key])
}

//! Starting roles: connect the backends once, bind each role's listener, then start the role
//! with its own function (`app/ingestor.rs`, `alerter.rs`, `forwarder.rs`, `web.rs`); each
//! builds its role's config from its config section (`config.rs`) and spawns its tasks.
//!
//! Every role has its own metrics registry, so a Prometheus scraping every port of `muttd run`
//! counts each series once; the process-wide queue metrics go to one role's registry
//! ([`App::process_metrics`]).

mod alerter;
mod forwarder;
mod ingestor;
mod listener;
mod maintenance;
mod remediation;
mod web;

use crate::backend::{self, QueueBackend, StoreBackend};
use crate::config::Config;
use crate::secrets::{SecretSource, key_list};
use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::future::BoxFuture;
use mutt_core::PodName;
use mutt_queue::{Coordination, Queue, QueueMetrics};
use mutt_store::Store;
use std::future::Future;
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
    /// Dead-letter replay and poison parking: `muttd remediation`, and part of `muttd run`
    /// (there without a port of its own).
    Remediation,
}

impl Role {
    /// The roles with a port of their own in `muttd run`.
    pub const ALL: [Role; 4] = [Role::Ingestor, Role::Alerter, Role::Forwarder, Role::Web];

    /// What `muttd run` starts: [`Role::ALL`] and the remediation.
    pub const RUN: [Role; 5] = [Role::Ingestor, Role::Alerter, Role::Forwarder, Role::Web, Role::Remediation];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingestor => "ingestor",
            Role::Alerter => "alerter",
            Role::Forwarder => "forwarder",
            Role::Web => "web",
            Role::Remediation => "remediation",
        }
    }

    fn port(self, c: &Config) -> u16 {
        match self {
            Role::Ingestor => c.ingestor.port,
            Role::Alerter => c.alerter.port,
            Role::Forwarder => c.forwarder.port,
            Role::Web => c.web.port,
            Role::Remediation => c.remediation.port,
        }
    }

    fn needs_store(self) -> bool {
        matches!(self, Role::Alerter | Role::Web | Role::Remediation)
    }

    /// The role whose `/metrics` also carries the process-wide queue metrics: the alerter
    /// (the original exported the alert-queue and DLQ depths there) when it runs, else the
    /// first role started.
    pub fn process_metrics(roles: &[Role]) -> Option<Role> {
        let served = |r: &&Role| roles.len() == 1 || **r != Role::Remediation;
        roles.iter().find(|r| **r == Role::Alerter).or_else(|| roles.iter().find(served)).copied()
    }

    /// Whether the role runs without a port of its own: the remediation among other roles.
    fn inside(self, roles: &[Role]) -> bool {
        self == Role::Remediation && roles.len() > 1
    }
}

/// Roles started in this process.
pub struct App {
    pub shutdown: CancellationToken,
    pub addresses: Vec<(Role, SocketAddr)>,
    /// The original's separate probe ports (`/health`, `/live`) where configured.
    pub probes: Vec<(Role, SocketAddr)>,
    /// The role whose `/metrics` also has the process-wide queue metrics.
    pub process_metrics: Role,
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

/// Options for [`start`].
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Run database migrations before starting.
    pub migrate: bool,
}

/// Connects the backends and starts the given roles; returns once every listener is bound.
pub async fn start(config: &Config, secrets: &dyn SecretSource, roles: &[Role], opts: StartOptions) -> Result<App> {
    let Some(process_metrics) = Role::process_metrics(roles) else {
        bail!("no roles to start");
    };
    // A configuration built in code gets the checks a loaded one had.
    config.validate()?;
    if roles.contains(&Role::Forwarder) {
        config.check_forwarder_destination(backend::is_embedded(config))?;
    }
    let backends = connect(config, secrets, roles, &opts).await?;
    let cx = Context::new(config, secrets, backends);
    let mut app = App {
        shutdown: cx.shutdown.clone(),
        addresses: Vec::new(),
        probes: Vec::new(),
        process_metrics,
        tasks: Vec::new(),
        queue: cx.queue.clone(),
        coordination: cx.coordination.clone(),
        store: cx.store.clone(),
        embedded: cx.embedded,
        alerter_rules: None,
    };
    let process_registry = mutt_service::Metrics::new();
    for &role in roles {
        if role.inside(roles) {
            if config.remediation.enabled {
                app.tasks.push((role, remediation::start_inside(&cx, &process_registry)?));
            }
            continue;
        }
        let bind = format!("{}:{}", config.bind_address, role.port(config));
        let listener =
            TcpListener::bind(&bind).await.with_context(|| format!("{}: cannot listen on {bind}", role.as_str()))?;
        let addr = listener.local_addr()?;
        let pod = match &config.pod_name {
            Some(p) => PodName::parse(p.clone())?,
            None => PodName::random(role.as_str()),
        };
        let metrics = if role == process_metrics { process_registry.clone() } else { mutt_service::Metrics::new() };
        if role == process_metrics {
            metrics.register(|r| {
                cx.queue_metrics.register(r);
                // CPU and memory belong to the process, so once per process too.
                r.register_collector(Box::new(mutt_service::process::ProcessCollector::new()));
            });
        }
        let slot = Slot { listener, pod: pod.clone(), metrics };
        let started = match role {
            Role::Ingestor => ingestor::start(&cx, slot).await?,
            Role::Alerter => alerter::start(&cx, slot).await?,
            Role::Forwarder => forwarder::start(&cx, slot).await?,
            Role::Web => web::start(&cx, slot).await?,
            Role::Remediation => remediation::start(&cx, slot).await?,
        };
        tracing::info!(role = role.as_str(), address = %addr, pod = %pod, "role started");
        app.addresses.push((role, addr));
        app.probes.extend(started.probe.map(|p| (role, p)));
        app.tasks.push((role, started.task));
        app.alerter_rules = app.alerter_rules.take().or(started.rules);
    }
    Ok(app)
}

/// The connected backends.
struct Backends {
    queue: QueueBackend,
    store: Option<StoreBackend>,
    embedded: bool,
}

/// Opens the embedded file, or connects Redis and (for the roles that need it, or to migrate)
/// PostgreSQL.
async fn connect(config: &Config, secrets: &dyn SecretSource, roles: &[Role], opts: &StartOptions) -> Result<Backends> {
    if backend::is_embedded(config) {
        let (queue, store) = backend::open_embedded(config).await?;
        tracing::info!(file = %config.embedded_path().display(), "embedded backend (no Redis or PostgreSQL configured)");
        if store.as_dyn().list_rules().await.map(|r| r.is_empty()).unwrap_or(false) {
            println!(
                "muttd: no rules yet, so no event raises an alert; add rules with `muttd rules import FILE` \
                 (example: examples/rules.yaml)"
            );
        }
        return Ok(Backends { queue, store: Some(store), embedded: true });
    }
    let queue: QueueBackend = Arc::new(backend::connect_redis(config, secrets).await?);
    if !(roles.iter().any(|r| r.needs_store()) || opts.migrate) {
        return Ok(Backends { queue, store: None, embedded: false });
    }
    let store = StoreBackend::Postgres(Box::new(backend::connect_postgres(config, secrets).await?));
    if opts.migrate {
        let applied = store.migrate().await.context("running migrations")?;
        tracing::info!(applied = applied.len(), "migrations applied");
    }
    Ok(Backends { queue, store: Some(store), embedded: false })
}

/// What every role's start function gets: the configuration and secrets, the backends, the
/// process's queue metrics and shutdown signal.
struct Context<'a> {
    config: &'a Config,
    secrets: &'a dyn SecretSource,
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    store: Option<Arc<dyn Store>>,
    embedded: bool,
    /// Queue depths (sampled; exported by one role, [`Role::process_metrics`]) and janitor
    /// recoveries.
    queue_metrics: QueueMetrics,
    shutdown: CancellationToken,
}

impl<'a> Context<'a> {
    /// Serves a role's router within the `[http]` limits until shutdown.
    fn serve(
        &self,
        listener: TcpListener,
        router: mutt_service::http::Router,
    ) -> impl Future<Output = std::io::Result<()>> + use<> {
        mutt_service::serve_with(listener, router, self.shutdown.clone(), self.config.http.limits())
    }

    /// Also starts sampling the queue depths every 5 s, until shutdown.
    fn new(config: &'a Config, secrets: &'a dyn SecretSource, backends: Backends) -> Self {
        let queue: Arc<dyn Queue> = backends.queue.clone();
        let queue_metrics = QueueMetrics::default();
        let sampler = queue_metrics.spawn_sampler(queue.clone(), Duration::from_secs(5));
        let shutdown = CancellationToken::new();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            sd.cancelled().await;
            sampler.abort();
        });
        Self {
            config,
            secrets,
            queue,
            coordination: backends.queue,
            store: backends.store.as_ref().map(StoreBackend::as_dyn),
            embedded: backends.embedded,
            queue_metrics,
            shutdown,
        }
    }
}

/// What one role starts with: its bound listener, its worker name and its own metrics
/// registry.
struct Slot {
    listener: TcpListener,
    pod: PodName,
    metrics: mutt_service::Metrics,
}

/// A started role: its task, the alerter's rule cache, the address of its probe port.
struct Started {
    task: JoinHandle<Result<()>>,
    rules: Option<mutt_alerter::RuleCache>,
    probe: Option<SocketAddr>,
}

impl Started {
    fn task(task: JoinHandle<Result<()>>) -> Self {
        Self { task, rules: None, probe: None }
    }
}

/// An HTTP server of a role (`mutt_service::serve`), not yet running.
type Server = BoxFuture<'static, std::io::Result<()>>;

/// A worker role's servers: its ops server (health, metrics) on `listener`, and, when `port` is
/// set (`HEALTH_PORT_ALERTER`, `HEALTH_PORT_MOOG`), `/health` and `/live` alone on that port as
/// the original served them. Returns the servers and the probe port's address.
async fn ops_servers(
    cx: &Context<'_>,
    slot: Slot,
    health: Arc<dyn mutt_service::HealthCheck>,
    port: Option<(&str, u16)>,
) -> Result<(Vec<Server>, Option<SocketAddr>)> {
    let router = mutt_service::ops::routes(slot.metrics, health.clone());
    let mut servers: Vec<Server> = vec![Box::pin(cx.serve(slot.listener, router))];
    let Some((setting, port)) = port else {
        return Ok((servers, None));
    };
    let bind = format!("{}:{port}", cx.config.bind_address);
    let listener = TcpListener::bind(&bind).await.with_context(|| format!("{setting}: cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    let router = mutt_service::ops::probe_routes(health);
    servers.push(Box::pin(cx.serve(listener, router)));
    Ok((servers, Some(addr)))
}

/// A role's HTTP server (`mutt_service::serve`) as its task.
fn spawn_server<S>(server: S) -> JoinHandle<Result<()>>
where
    S: Future<Output = std::io::Result<()>> + Send + 'static,
{
    tokio::spawn(async move { Ok(server.await?) })
}

/// Runs a role's worker until shutdown with its ops servers (health, metrics) beside it; the
/// task ends when all have stopped.
fn spawn_worker<W, F>(servers: Vec<Server>, shutdown: CancellationToken, worker: W) -> JoinHandle<Result<()>>
where
    W: FnOnce(CancellationToken) -> F + Send + 'static,
    F: Future<Output = Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let servers = tokio::spawn(futures_util::future::try_join_all(servers));
        worker(shutdown).await?;
        servers.await??;
        Ok(())
    })
}

/// The keys of `secret`; when none is configured and `generated` names the data-dir file
/// (embedded backend, auth required), the key kept in that file, generated on first use.
fn api_keys(cx: &Context<'_>, secret: &str, generated: Option<&str>) -> Result<Vec<mutt_service::auth::ApiKey>> {
    let keys = key_list(cx.secrets, secret)?;
    let Some(file) = generated.filter(|_| keys.is_empty()) else {
        return Ok(listener::named_keys(secret, keys));
    };
    let key = backend::data_dir_key(cx.config, file)?;
    println!(
        "muttd: {secret} not set; using the key in {} (send it as X-API-KEY)",
        cx.config.data_dir.join(file).display()
    );
    Ok(vec![mutt_service::auth::ApiKey::new(mutt_service::auth::DEFAULT_KEY_NAME, key.expose())])
}

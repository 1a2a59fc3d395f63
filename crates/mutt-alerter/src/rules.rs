//! The rule cache: compiled rules plus lookups, swapped atomically on reload.
//!
//! Besides the periodic and requested reloads, the worker calls
//! [`RuleCache::refresh_if_changed`] before deciding each batch: one small read of the store's
//! rules version, and a reload only when it moved. So an event leased after a rule change has
//! committed is decided with the new rules (`muttd rules import` then `muttd send` at once).

use crate::AlerterMetrics;
use mutt_core::RuleSet;
use mutt_store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The current rule set, shared by the worker and the reloader.
#[derive(Clone)]
pub struct RuleCache {
    current: Arc<RwLock<Loaded>>,
    /// Wakes the reloader ahead of its timer.
    requested: Arc<tokio::sync::Notify>,
    /// Whether the last version check failed (logged once per failure streak, not per batch).
    version_failing: Arc<AtomicBool>,
}

/// A rule set and the store's rules version read just before it was loaded (so the set is at
/// least as new as the version); `None` if the version could not be read.
struct Loaded {
    set: Arc<RuleSet>,
    version: Option<i64>,
}

impl RuleCache {
    pub async fn load(store: &dyn Store, metrics: &AlerterMetrics) -> Result<Self, StoreError> {
        let version = store.rules_version().await.ok();
        let set = Arc::new(load_set(store, metrics).await?);
        Ok(Self {
            current: Arc::new(RwLock::new(Loaded { set, version })),
            requested: Arc::new(tokio::sync::Notify::new()),
            version_failing: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The rule set in force now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).set.clone()
    }

    /// Reloads from the store; on failure the previous rules stay in force.
    pub async fn reload(&self, store: &dyn Store, metrics: &AlerterMetrics) -> Result<(), StoreError> {
        let version = store.rules_version().await.ok();
        self.load_at(store, metrics, version).await
    }

    async fn load_at(
        &self,
        store: &dyn Store,
        metrics: &AlerterMetrics,
        version: Option<i64>,
    ) -> Result<(), StoreError> {
        let set = Arc::new(load_set(store, metrics).await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { set, version };
        Ok(())
    }

    /// Reloads if the store's rules version differs from the one the current set was loaded
    /// at; returns whether it reloaded. Failures keep the current rules (the batch goes on;
    /// the timer and reload requests still apply) and are logged once until the next success.
    pub async fn refresh_if_changed(&self, store: &dyn Store, metrics: &AlerterMetrics) -> bool {
        let outcome = match store.rules_version().await {
            Ok(v) if Some(v) == self.current.read().unwrap_or_else(|p| p.into_inner()).version => Ok(false),
            Ok(v) => self.load_at(store, metrics, Some(v)).await.map(|()| true),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(reloaded) => {
                if self.version_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rules version readable again");
                }
                if reloaded {
                    tracing::info!("rules changed in the store; reloaded before this batch");
                }
                reloaded
            }
            Err(e) => {
                if !self.version_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot check the rules version before a batch; keeping the cached rules");
                }
                false
            }
        }
    }

    /// Reloads every `every`, or every `cache_reload_interval` seconds when dynamic
    /// configuration holds a valid one (read before each wait, as the original did).
    pub(crate) fn spawn_reloader(
        &self,
        store: Arc<dyn Store>,
        coordination: Arc<dyn mutt_queue::Coordination>,
        every: Duration,
        metrics: AlerterMetrics,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                let every = reload_interval(coordination.as_ref(), every).await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                    _ = cache.requested.notified() => tracing::info!("rule reload requested"),
                }
                if let Err(e) = cache.reload(store.as_ref(), &metrics).await {
                    tracing::error!(error = %e, "rule reload failed; keeping the previous rules");
                }
            }
        })
    }

    /// Asks the running alerter to reload soon (SIGHUP, pub/sub `mutt:config:reload`).
    pub fn request_reload(&self) {
        self.requested.notify_one();
    }
}

/// `cache_reload_interval` from dynamic configuration, else `default`.
async fn reload_interval(coordination: &dyn mutt_queue::Coordination, default: Duration) -> Duration {
    let key = mutt_core::config_catalogue::CACHE_RELOAD_INTERVAL;
    match coordination.config_values(&[key.key]).await {
        Ok(v) => mutt_queue::settings::int(&v, 0, &key).map(Duration::from_secs).unwrap_or(default),
        Err(_) => default,
    }
}

async fn load_set(store: &dyn Store, metrics: &AlerterMetrics) -> Result<RuleSet, StoreError> {
    let started = Instant::now();
    metrics.cache_reloads.inc();
    let snapshot = match store.load_rules().await {
        Ok(s) => s,
        Err(e) => {
            metrics.cache_reload_failures.inc();
            return Err(e);
        }
    };
    let set = RuleSet::compile(snapshot);
    for excluded in set.excluded() {
        tracing::error!(error = %excluded, "rule excluded from the cache");
    }
    metrics.rules.set(set.len() as i64);
    metrics.dev_hosts.set(set.development_hosts().len() as i64);
    metrics.teams.set(set.device_teams().len() as i64);
    metrics.cache_reload_latency.observe(started.elapsed().as_secs_f64());
    tracing::info!(rules = set.len(), "rules loaded");
    Ok(set)
}

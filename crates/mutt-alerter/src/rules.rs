//! The rule cache: compiled rules plus lookups, swapped atomically on reload.

use crate::AlerterMetrics;
use mutt_core::RuleSet;
use mutt_store::{Store, StoreError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The current rule set, shared by the worker and the reloader.
#[derive(Clone)]
pub struct RuleCache {
    current: Arc<RwLock<Arc<RuleSet>>>,
    /// Wakes the reloader ahead of its timer.
    requested: Arc<tokio::sync::Notify>,
}

impl RuleCache {
    pub async fn load(store: &dyn Store, metrics: &AlerterMetrics) -> Result<Self, StoreError> {
        let set = load_set(store, metrics).await?;
        Ok(Self { current: Arc::new(RwLock::new(Arc::new(set))), requested: Arc::new(tokio::sync::Notify::new()) })
    }

    /// The rule set in force now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reloads from the store; on failure the previous rules stay in force.
    pub async fn reload(&self, store: &dyn Store, metrics: &AlerterMetrics) -> Result<(), StoreError> {
        let set = load_set(store, metrics).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }

    pub(crate) fn spawn_reloader(
        &self,
        store: Arc<dyn Store>,
        every: Duration,
        metrics: AlerterMetrics,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
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

//! Silences and maintenance windows in the alerter: a handled event that would be forwarded
//! and that a silence in effect matches is audited as usual, with `silenced_by` naming the
//! silence, and produces no alert (see [`mutt_core::silence`]).
//!
//! The silences not yet ended are cached ([`SilenceCache`]) and reloaded every
//! [`REFRESH_EVERY`] and whenever the management API announces a change (the rule-reload
//! notification it publishes after every mutation). Pending silences are cached too and every
//! event is checked against the clock, so a silence starts and ends on time whatever the
//! refresh; the refresh only brings new and early-expired silences.

use chrono::{DateTime, Utc};
use mutt_core::silence::SilenceSet;
use mutt_core::{EventFields, Rule};
use mutt_queue::Coordination;
use mutt_store::Store;
use mutt_store::silences::SilenceFilter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the cache is reloaded without an announcement.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The time silences are evaluated at (the wall clock; a test clock in tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule_id: i32,
}

/// `mutt_alerter_events_silenced_total{rule_id}` and `mutt_alerter_silences_active`.
#[derive(Clone, Default)]
pub struct SilenceMetrics {
    pub events_silenced: Family<RuleLabel, Counter>,
    /// Silences (one-off and maintenance windows) in effect now.
    pub active: Gauge,
}

impl SilenceMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self::default();
        metrics.register(|r| {
            r.register(
                "mutt_alerter_events_silenced",
                "Handled events held back by a silence or maintenance window, by rule",
                m.events_silenced.clone(),
            );
            r.register("mutt_alerter_silences_active", "Silences and maintenance windows in effect", m.active.clone());
        });
        m
    }
}

/// The silences in force, shared by the worker and the refresher.
#[derive(Clone)]
pub struct SilenceCache {
    current: Arc<RwLock<Arc<SilenceSet>>>,
    requested: Arc<tokio::sync::Notify>,
    clock: Clock,
    /// Whether the last load failed (logged once per failure streak).
    failing: Arc<AtomicBool>,
    metrics: SilenceMetrics,
}

impl SilenceCache {
    /// An empty cache on the wall clock; [`SilenceCache::reload`] fills it.
    pub fn new(metrics: SilenceMetrics) -> Self {
        Self {
            current: Arc::default(),
            requested: Arc::new(tokio::sync::Notify::new()),
            clock: Arc::new(Utc::now),
            failing: Arc::default(),
            metrics,
        }
    }

    /// The same cache evaluated at `clock`'s time (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn current(&self) -> Arc<SilenceSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Loads the silences not ended at the clock's time. On failure the previous set stays in
    /// force (logged once until the next success).
    pub async fn reload(&self, store: &dyn Store) {
        let now = self.now();
        match store.list_silences(SilenceFilter::Active, now).await {
            Ok(silences) => {
                let set = SilenceSet::compile(silences, now);
                for (id, e) in set.excluded() {
                    tracing::error!(silence_id = id, error = %e, "silence left out: it no longer compiles");
                }
                self.metrics.active.set(set.in_effect_count(now) as i64);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("silences readable again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot load silences; keeping the cached ones");
                }
            }
        }
    }

    /// The silence that holds back the alert of `event`, handled by `rule`, now; counted.
    pub fn silenced_by(&self, event: &impl EventFields, rule: &Rule) -> Option<i64> {
        let set = self.current();
        if set.is_empty() {
            return None;
        }
        let id = set.silenced_by(event, rule, self.now())?;
        self.metrics.events_silenced.get_or_create(&RuleLabel { rule_id: rule.id }).inc();
        tracing::debug!(correlation_id = event.correlation_id(), event_id = %event.event_id(), rule_id = rule.id, silence_id = id, "alert silenced");
        Some(id)
    }

    /// Asks the refresher to reload soon.
    pub fn request_reload(&self) {
        self.requested.notify_one();
    }

    /// Reloads every [`REFRESH_EVERY`] and on every change announcement, until `shutdown`.
    pub(crate) fn spawn_refresher(
        &self,
        store: Arc<dyn Store>,
        coordination: Arc<dyn Coordination>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (cache, watched) = (self.clone(), self.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            coordination.watch_rules_changed(Box::new(move || watched.request_reload()), stop).await;
        });
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = cache.requested.notified() => {}
                }
                cache.reload(store.as_ref()).await;
            }
        })
    }
}

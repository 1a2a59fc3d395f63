//! The alerter's upkeep of the store, so that no cron job is needed (the original had two):
//! the daily task that creates the coming months' audit partitions (an alerter running for
//! months keeps its rows out of the DEFAULT partition), and the retention job
//! ([`mutt_store::retention`]), with the dynamic retention keys read at each run.

use super::{Context, Slot};
use crate::commands::partitions::DynamicRetention;
use mutt_store::Store;
use mutt_store::partitions::{self, AuditLifecycle};
use mutt_store::retention::{self, RetentionMetrics};
use std::sync::Arc;
use std::time::Duration;

/// Once a day: the month turns at most once between two runs, and each run creates
/// `precreate_months` ahead.
const PARTITIONS_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The first retention run, after the start: the alerter first works through what waited for
/// it (a backlog's events may be old enough to expire; they are audited before they go).
const RETENTION_DELAY: Duration = Duration::from_secs(300);

pub(super) fn spawn(cx: &Context<'_>, slot: &Slot, store: Arc<dyn Store>) {
    let cfg = &cx.config.retention;
    let lifecycle: Arc<dyn AuditLifecycle> = store.clone();
    partitions::spawn_daily(
        lifecycle,
        cfg.precreate_months,
        PARTITIONS_EVERY,
        Arc::new(chrono::Utc::now),
        cx.shutdown.clone(),
    );
    // Spawned whether or not retention.enabled is set: the dynamic retention_enforcement_enabled
    // (spec §7.3), read at each run, may switch it on or off.
    // The families the remediation's DLQ trimming counts in too (`type="dlq"`), once per registry.
    let (d, p) = (retention::DELETED_METRIC, retention::POLICY_DAYS_METRIC);
    let deleted = slot.metrics.shared(d.0, d.1).unwrap_or_default();
    let policy_days = slot.metrics.shared(p.0, p.1).unwrap_or_default();
    let metrics = RetentionMetrics::with_type_families(deleted, policy_days);
    slot.metrics.register(|r| metrics.register_own(r));
    let statics = DynamicRetention::from_static(cx.config);
    let coordination = cx.coordination.clone();
    let read: retention::ReadSettings = Arc::new(move || {
        let (statics, coordination) = (statics.clone(), coordination.clone());
        Box::pin(async move {
            let now = DynamicRetention::read(&statics, coordination.as_ref()).await;
            now.enabled.then_some(now.cfg)
        })
    });
    let every = Duration::from_secs(cfg.interval_secs);
    retention::spawn_reading(RETENTION_DELAY, store, every, read, metrics, cx.shutdown.clone());
}

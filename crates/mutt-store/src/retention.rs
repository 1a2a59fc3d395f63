//! Retention: trims the audit trail and the config audit to their configured age, in chunks,
//! from inside a long-running process (the original ran a separate daily job; a small site on
//! the embedded file has no cron job, and its disk would fill).
//!
//! Counts what it deletes in `mutt_retention_cleanup_records_deleted_total{type}` (the
//! original's metric), registered by [`RetentionMetrics::register`].

use crate::{RetainedTable, Store, StoreError};
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long each audit trail is kept, and how the trimming runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `event_audit_log` rows older than this (by event time) are deleted.
    pub event_audit_days: u32,
    /// `config_audit_log` rows older than this (by change time) are deleted.
    pub config_audit_days: u32,
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// Time between runs (the first runs at start); at least a minute.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { event_audit_days: 90, config_audit_days: 365, batch_size: 1000, interval: Duration::from_secs(3600) }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

/// `mutt_retention_cleanup_records_deleted_total{type="event_audit"|"config_audit"}`.
#[derive(Clone, Debug, Default)]
pub struct RetentionMetrics {
    deleted: Family<TypeLabel, Counter>,
}

impl RetentionMetrics {
    /// Adds the counter to `registry` (prometheus-client appends `_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mutt_retention_cleanup_records_deleted",
            "Rows deleted by retention, by table",
            self.deleted.clone(),
        );
    }

    /// Rows deleted from `table` so far.
    pub fn deleted(&self, table: RetainedTable) -> u64 {
        self.deleted.get_or_create(&TypeLabel { r#type: table.label() }).get()
    }
}

/// Runs retention now and then every `cfg.interval` until `stop`.
pub fn spawn(
    store: Arc<dyn Store>,
    cfg: RetentionConfig,
    metrics: RetentionMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = cfg.interval.max(Duration::from_secs(60));
        loop {
            for (table, days) in
                [(RetainedTable::EventAudit, cfg.event_audit_days), (RetainedTable::ConfigAudit, cfg.config_audit_days)]
            {
                // Created before the run: both series show from the first run on, at 0.
                let counter = metrics.deleted.get_or_create(&TypeLabel { r#type: table.label() }).clone();
                match run_once(store.as_ref(), table, days, cfg.batch_size, &stop).await {
                    Ok(0) => {}
                    Ok(n) => {
                        counter.inc_by(n);
                        tracing::info!(table = table.label(), deleted = n, days, "retention: old rows deleted");
                    }
                    Err(e) => {
                        tracing::warn!(table = table.label(), error = %e, "retention run failed; next run retries")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Deletes everything in `table` older than `days` (at least 1), `chunk` rows at a time;
/// returns how many.
pub async fn run_once(
    store: &dyn Store,
    table: RetainedTable,
    days: u32,
    chunk: u32,
    stop: &CancellationToken,
) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days.max(1)));
    let chunk = chunk.clamp(1, 100_000);
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = store.delete_older_than(table, cutoff, chunk).await?;
        total += n;
        if n < u64::from(chunk) {
            break;
        }
        // Let the pipeline's own writes through between chunks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(total)
}

//! Retention in `muttd run`: the job lives in [`mutt_store::retention`]; this maps the
//! `[retention]` section onto it and registers its metric on the process's registry.

use crate::config::RetentionSection;
use mutt_store::Store;
use mutt_store::retention::{RetentionConfig, RetentionMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs retention now and then every `interval_secs` until `stop`.
pub fn spawn(store: Arc<dyn Store>, cfg: RetentionSection, metrics: &mutt_service::Metrics, stop: CancellationToken) {
    let retention = RetentionMetrics::default();
    metrics.register(|r| retention.register(r));
    let cfg = RetentionConfig {
        event_audit_days: cfg.event_audit_days,
        config_audit_days: cfg.config_audit_days,
        batch_size: cfg.batch_size,
        interval: Duration::from_secs(cfg.interval_secs),
    };
    mutt_store::retention::spawn(store, cfg, retention, stop);
}

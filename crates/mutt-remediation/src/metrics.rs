//! The remediation role's metrics under the original's names (spec §10.1), plus the store
//! gate's health and the DLQ retention counters of the original's retention job (spec §9.3).

use mutt_store::retention::{DELETED_METRIC, POLICY_DAYS_METRIC};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlqNameLabel {
    pub dlq_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The retention job's label: the DLQ counts go into its families (see `register`).
pub use mutt_store::retention::TypeLabel;

#[derive(Clone)]
pub struct RemediationMetrics {
    pub loops: Counter,
    pub dlq_depth: Family<DlqNameLabel, Gauge>,
    pub replay_success: Counter,
    /// `processing_error` (an entry could not be rewritten), `redis_error` (the queue backend
    /// failed; the original's label, also on the embedded backend).
    pub replay_fail: Family<ReasonLabel, Counter>,
    pub poison: Counter,
    pub moog_health: Gauge,
    /// 1 while the store (PostgreSQL, or the embedded file) answers: the alerter DLQ's gate.
    pub store_health: Gauge,
    pub loop_duration: Histogram,
    /// `mutt_retention_cleanup_records_deleted_total{type="dlq"}`.
    pub dlq_trimmed: Family<TypeLabel, Counter>,
    /// `mutt_retention_policy_days{type="dlq"}`.
    pub dlq_policy_days: Family<TypeLabel, Gauge>,
}

impl RemediationMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let default_buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
        let m = Self {
            loops: Counter::default(),
            dlq_depth: Family::default(),
            replay_success: Counter::default(),
            replay_fail: Family::default(),
            poison: Counter::default(),
            moog_health: Gauge::default(),
            store_health: Gauge::default(),
            loop_duration: Histogram::new(default_buckets),
            // Shared with the alerter's retention when both run in one process (`muttd run`): one
            // registry must not hold a name twice.
            dlq_trimmed: metrics.shared(DELETED_METRIC.0, DELETED_METRIC.1).unwrap_or_default(),
            dlq_policy_days: metrics.shared(POLICY_DAYS_METRIC.0, POLICY_DAYS_METRIC.1).unwrap_or_default(),
        };
        // Every label value at 0 from the start, so rates and alert rules see the series.
        for reason in ["processing_error", "redis_error"] {
            let _ = m.replay_fail.get_or_create(&ReasonLabel { reason });
        }
        let _ = m.dlq_trimmed.get_or_create(&TypeLabel { r#type: "dlq" });
        metrics.register(|r| {
            r.register("mutt_remediation_loops", "Remediation cycles run", m.loops.clone());
            r.register("mutt_remediation_dlq_depth", "Entries in each dead-letter queue", m.dlq_depth.clone());
            r.register("mutt_remediation_replay_success", "Dead letters replayed", m.replay_success.clone());
            r.register("mutt_remediation_replay_fail", "Failed replays, by reason", m.replay_fail.clone());
            r.register("mutt_remediation_poison_messages", "Poison messages parked", m.poison.clone());
            r.register("mutt_remediation_moog_health", "Whether the webhook answered the probe", m.moog_health.clone());
            r.register("mutt_remediation_store_health", "Whether the store answered", m.store_health.clone());
            r.register(
                "mutt_remediation_loop_duration_seconds",
                "Time one remediation cycle took",
                m.loop_duration.clone(),
            );
        });
        m
    }
}

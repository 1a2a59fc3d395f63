//! The alerter's metrics, under the original's names (spec §10.1).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone)]
pub struct AlerterMetrics {
    pub events_processed: Family<StatusLabel, Counter>,
    pub alerts_forwarded: Counter,
    pub processing_latency: Histogram,
    pub db_write_latency_ms: Histogram,
    pub processing_list_depth: Gauge,
    /// `mutt_alerter_active_loops` (not in the original): batch loops leasing now; the loops
    /// after the first rest while the queue has no backlog.
    pub active_loops: Gauge,
    pub rules: Gauge,
    pub dev_hosts: Gauge,
    pub teams: Gauge,
    pub cache_reloads: Counter,
    pub cache_reload_failures: Counter,
    pub cache_reload_latency: Histogram,
    pub unhandled_meta_alerts: Counter,
    pub shed_events: Family<ModeLabel, Counter>,
    /// Events held back by their rule's flap limit (audited, not forwarded), by rule.
    pub events_suppressed: Family<SuppressedLabel, Counter>,
    /// Flap summary alerts queued.
    pub flap_summaries: Counter,
    pub silences: crate::silence::SilenceMetrics,
    /// `mutt_alerter_batch_phase_seconds_total{phase}` (not in the original).
    pub batch_phase_seconds: crate::timings::PhaseSeconds,
}

/// The rule of a flap-suppressed event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SuppressedLabel {
    pub rule_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

impl AlerterMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let default_buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
        let m = Self {
            events_processed: Family::default(),
            alerts_forwarded: Counter::default(),
            processing_latency: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            db_write_latency_ms: Histogram::new([
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ]),
            processing_list_depth: Gauge::default(),
            active_loops: Gauge::default(),
            rules: Gauge::default(),
            dev_hosts: Gauge::default(),
            teams: Gauge::default(),
            cache_reloads: Counter::default(),
            cache_reload_failures: Counter::default(),
            cache_reload_latency: Histogram::new(default_buckets),
            unhandled_meta_alerts: Counter::default(),
            shed_events: Family::default(),
            events_suppressed: Family::default(),
            flap_summaries: Counter::default(),
            silences: crate::silence::SilenceMetrics::register(metrics),
            batch_phase_seconds: Family::default(),
        };
        // Every label value at 0 from the start, so that `rate()` and alert rules see the
        // series before the first such event.
        for status in ["handled", "unhandled", "poison", "error"] {
            let _ = m.events_processed.get_or_create(&StatusLabel { status });
        }
        for mode in ["dlq", "defer"] {
            let _ = m.shed_events.get_or_create(&ModeLabel { mode });
        }
        for phase in crate::timings::Phase::ALL {
            let _ = m.batch_phase_seconds.get_or_create(&crate::timings::PhaseLabel { phase: phase.name() });
        }
        metrics.register(|r| {
            r.register("mutt_alerter_events_processed", "Events processed by outcome", m.events_processed.clone());
            r.register("mutt_alerter_alerts_forwarded", "Alerts pushed to the alert queue", m.alerts_forwarded.clone());
            r.register(
                "mutt_alerter_processing_latency_seconds",
                "Batch processing time per event",
                m.processing_latency.clone(),
            );
            r.register("mutt_db_write_latency_ms", "Audit batch write time in ms", m.db_write_latency_ms.clone());
            r.register(
                "mutt_alerter_processing_list_depth",
                "Events leased by this alerter",
                m.processing_list_depth.clone(),
            );
            r.register(
                "mutt_alerter_active_loops",
                "Batch loops leasing now (the loops after the first rest without a backlog)",
                m.active_loops.clone(),
            );
            r.register("mutt_alerter_cache_rules_count", "Active rules cached", m.rules.clone());
            r.register("mutt_alerter_cache_dev_hosts_count", "Development hosts cached", m.dev_hosts.clone());
            r.register("mutt_alerter_cache_teams_count", "Device teams cached", m.teams.clone());
            r.register("mutt_alerter_cache_reload", "Rule cache reload attempts", m.cache_reloads.clone());
            r.register(
                "mutt_alerter_cache_reload_failures",
                "Rule cache reload failures",
                m.cache_reload_failures.clone(),
            );
            r.register(
                "mutt_alerter_cache_reload_latency_seconds",
                "Rule cache reload time",
                m.cache_reload_latency.clone(),
            );
            r.register(
                "mutt_alerter_unhandled_meta_alerts",
                "Unhandled meta-alerts created",
                m.unhandled_meta_alerts.clone(),
            );
            r.register("mutt_alerter_shed_events", "Events shed or deferred by backpressure", m.shed_events.clone());
            r.register(
                "mutt_alerter_events_suppressed",
                "Events held back by their rule's flap limit",
                m.events_suppressed.clone(),
            );
            r.register("mutt_alerter_flap_summaries", "Flap summary alerts queued", m.flap_summaries.clone());
            r.register(
                "mutt_alerter_batch_phase_seconds",
                "Time the batch loops spent per phase (unhandled overlaps audit)",
                m.batch_phase_seconds.clone(),
            );
        });
        m
    }

    pub fn suppressed(&self, rule_id: i32) {
        self.events_suppressed.get_or_create(&SuppressedLabel { rule_id: rule_id.to_string() }).inc();
    }

    pub fn processed(&self, status: &'static str, n: u64) {
        if n > 0 {
            self.events_processed.get_or_create(&StatusLabel { status }).inc_by(n);
        }
    }
}

//! Queue metrics: depths (sampled) and janitor recoveries (counted as they happen).
//! Names follow the original (spec §10.1) and its ADR (`mutt_queue_depth`).

use crate::{Queue, QueueStatus, WorkerRole};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: &'static str,
}

#[derive(Clone, Default)]
pub struct QueueMetrics {
    /// `mutt_queue_depth{queue}`: every queue, DLQ and delayed-retry set.
    pub depth: Family<QueueLabel, Gauge>,
    /// `mutt_alerter_queue_depth`: the alert queue (what the alerter's backpressure watches).
    pub alert_queue_depth: Gauge,
    pub alerter_dlq_depth: Gauge,
    pub moog_dlq_depth: Gauge,
    /// `mutt_janitor_recovered_total{role}`: messages moved back from dead workers' lists.
    pub janitor_recovered: Family<RoleLabel, Counter>,
    /// `mutt_processing_lists_dead{role}`: processing lists whose owner has no heartbeat.
    pub dead_lists: Family<RoleLabel, Gauge>,
}

impl QueueMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register("mutt_queue_depth", "Messages in each queue, DLQ and delayed-retry set", self.depth.clone());
        r.register("mutt_alerter_queue_depth", "Alert queue depth", self.alert_queue_depth.clone());
        r.register("mutt_alerter_dlq_depth", "Alerter dead-letter queue depth", self.alerter_dlq_depth.clone());
        r.register("mutt_moog_dlq_depth", "Forwarder dead-letter queue depth", self.moog_dlq_depth.clone());
        r.register("mutt_janitor_recovered", "Messages recovered from dead workers", self.janitor_recovered.clone());
        // At 0 from the start, so that `increase()` sees the first recovery and alert rules
        // can name the series before a worker has ever died.
        for role in [WorkerRole::Alerter, WorkerRole::Forwarder] {
            let _ = self.janitor_recovered.get_or_create(&RoleLabel { role: role.key_tag() });
        }
        r.register("mutt_processing_lists_dead", "Processing lists without a live owner", self.dead_lists.clone());
    }

    pub fn recovered(&self, role: WorkerRole, n: u64) {
        if n > 0 {
            self.janitor_recovered.get_or_create(&RoleLabel { role: role.key_tag() }).inc_by(n);
        }
    }

    /// Sets the depth gauges from a status snapshot.
    pub fn observe(&self, s: &QueueStatus) {
        for d in s.queues.iter().chain(&s.dead_letter_queues).chain(&s.delayed_retries) {
            self.depth.get_or_create(&QueueLabel { queue: d.name.clone() }).set(d.depth as i64);
        }
        if let Some(a) = s.queues.get(1) {
            self.alert_queue_depth.set(a.depth as i64);
        }
        if let [alerter, moog, ..] = s.dead_letter_queues.as_slice() {
            self.alerter_dlq_depth.set(alerter.depth as i64);
            self.moog_dlq_depth.set(moog.depth as i64);
        }
        for role in [WorkerRole::Alerter, WorkerRole::Forwarder] {
            let dead = s.processing_lists.iter().filter(|p| p.role == role.key_tag() && !p.alive).count();
            self.dead_lists.get_or_create(&RoleLabel { role: role.key_tag() }).set(dead as i64);
        }
    }

    /// Samples the queue every `every` until the returned task is aborted.
    pub fn spawn_sampler(&self, queue: std::sync::Arc<dyn Queue>, every: Duration) -> tokio::task::JoinHandle<()> {
        let m = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match queue.status().await {
                    Ok(s) => m.observe(&s),
                    Err(e) => tracing::debug!(error = %e, "queue metrics sample failed"),
                }
            }
        })
    }
}

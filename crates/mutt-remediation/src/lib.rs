//! The remediation role (spec §8, with the ping-pong defect of §8.3 fixed): every cycle it
//! replays dead letters whose cause is gone and parks poison instead of looping.
//!
//! - The alerter DLQ is replayed while the store (PostgreSQL, or the embedded file) answers:
//!   the alerter's failures are about the database, not the webhook (the original gated on
//!   Moogsoft's health). Shed entries wait while the alert queue is still above the shed
//!   threshold (they would only be shed again).
//! - An entry is poison, and parked in `mutt:dlq:dead`, once it was replayed
//!   `max_poison_retries` times (`_replay_count`), when it carries `_moog_retry_count ≥
//!   max_poison_retries` (the original's test), or when it holds no JSON object. A replay
//!   removes the DLQ annotations and resets `_retry_count`/`_moog_retry_count` while raising
//!   `_replay_count`, so a poison message gets a bounded number of fresh lives.
//! - With `replay_moog` (off by default) the Moog DLQ is replayed too, while the webhook
//!   answers a probe that sends no event ([`probe`]) and the shared circuit breaker is closed.
//! - With `dlq_retention_days`, old dead letters are trimmed (`RETENTION_DLQ_DAYS`).
//!
//! The decisions are [`mutt_queue::dlq`]'s operations, so the CLI and the API move entries
//! the same way, atomically.

pub mod metrics;
pub mod probe;

use mutt_queue::dlq::{self, DeadLetterStore, Decision, Dlq, DlqEntry, MoveReport, Pass, Target};
use mutt_queue::settings::{Settings, SettingsCache};
use mutt_queue::{BreakerState, Coordination, Queue, QueueError, QueueId};
use mutt_store::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use metrics::RemediationMetrics;
pub use probe::{Probe, ProbeConfig};

use mutt_core::config_catalogue as catalogue;

/// The forwarder's shared circuit breaker (`mutt:circuit_breaker:moogsoft:*`).
const BREAKER: &str = "moogsoft";

/// Settings of the remediation role; the defaults are the original's.
#[derive(Clone, Debug)]
pub struct RemediationConfig {
    /// `REMEDIATION_INTERVAL`: time between cycles (dynamic `remediation_interval` wins).
    pub interval: Duration,
    /// `REMEDIATION_BATCH_SIZE`: entries replayed or parked per DLQ and cycle
    /// (`remediation_batch_size`).
    pub batch_size: u64,
    /// `MAX_POISON_RETRIES`: replays before an entry is parked (`max_poison_retries`).
    pub max_poison_retries: u64,
    pub probe: ProbeConfig,
    /// Also replay `mutt:dlq:moog` while the webhook is healthy and the breaker closed.
    pub replay_moog: bool,
    /// `RETENTION_DLQ_DAYS`: dead letters older than this are deleted; `None`: kept.
    pub dlq_retention_days: Option<u32>,
    /// How often the DLQs are trimmed (the first time at start).
    pub trim_interval: Duration,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(catalogue::REMEDIATION_INTERVAL.default),
            batch_size: catalogue::REMEDIATION_BATCH_SIZE.default,
            max_poison_retries: catalogue::MAX_POISON_RETRIES.default,
            probe: ProbeConfig::default(),
            replay_moog: false,
            dlq_retention_days: Some(30),
            trim_interval: Duration::from_secs(3600),
        }
    }
}

/// The dynamic settings read every cycle (spec §7.3), over the static ones.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dynamic {
    interval: Duration,
    batch_size: u64,
    max_poison_retries: u64,
    shed_threshold: u64,
}

impl Settings for Dynamic {
    const KEYS: &'static [&'static str] = &[
        catalogue::REMEDIATION_INTERVAL.key,
        catalogue::REMEDIATION_BATCH_SIZE.key,
        catalogue::MAX_POISON_RETRIES.key,
        catalogue::ALERTER_QUEUE_SHED_THRESHOLD.key,
    ];

    fn from_values(d: &Self, values: &[Option<String>]) -> Self {
        let get = |i: usize, key: &catalogue::IntKey| mutt_queue::settings::text(values, i).and_then(|t| key.parse(t));
        Self {
            interval: get(0, &catalogue::REMEDIATION_INTERVAL).map_or(d.interval, Duration::from_secs),
            batch_size: get(1, &catalogue::REMEDIATION_BATCH_SIZE).unwrap_or(d.batch_size),
            max_poison_retries: get(2, &catalogue::MAX_POISON_RETRIES).unwrap_or(d.max_poison_retries),
            shed_threshold: get(3, &catalogue::ALERTER_QUEUE_SHED_THRESHOLD).unwrap_or(d.shed_threshold),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one cycle saw and did (for logs and tests).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CycleReport {
    pub store_healthy: bool,
    /// `None` when there is nothing to probe.
    pub webhook_healthy: Option<bool>,
    /// Shed entries held back: the alert queue is still above the shed threshold.
    pub holding_shed: bool,
    pub alerter: Option<MoveReport>,
    pub moog: Option<MoveReport>,
    pub trimmed: Vec<MoveReport>,
}

impl CycleReport {
    /// Entries replayed and parked in this cycle.
    pub fn replayed_and_parked(&self) -> (u64, u64) {
        let mut out = (0, 0);
        for r in self.alerter.iter().chain(&self.moog) {
            let (replayed, parked) = split(r);
            out.0 += replayed;
            out.1 += parked;
        }
        out
    }
}

/// Replayed and parked counts of a report (parking is the move to the dead DLQ).
fn split(r: &MoveReport) -> (u64, u64) {
    let parked = r.moved.iter().filter(|(k, _)| k.ends_with("dlq:dead")).map(|(_, n)| *n).sum();
    (r.total() - parked, parked)
}

/// The remediation decision for one entry of `dlq` (pure, so it is tested alone).
pub fn decide(dlq: Dlq, entry: &DlqEntry, max_poison_retries: u64, hold_shed: bool) -> Decision {
    let i = &entry.info;
    let poison = if !i.replayable {
        Some("unreadable: no JSON object to replay".to_owned())
    } else if i.replay_count >= max_poison_retries {
        Some(format!("poison: replayed {} times", i.replay_count))
    } else if dlq == Dlq::Alerter && i.moog_retry_count.is_some_and(|n| n >= max_poison_retries) {
        Some(format!("poison: _moog_retry_count {}", i.moog_retry_count.unwrap_or(0)))
    } else {
        None
    };
    if let Some(reason) = poison {
        return Decision::Move { new: entry.parked(&reason, chrono::Utc::now()), target: Target::Dlq(Dlq::Dead) };
    }
    if hold_shed && i.reason.as_deref() == Some("shed") {
        return Decision::Keep;
    }
    match entry.replayed() {
        Some(new) => Decision::Move { new, target: Target::Queue(entry.home()) },
        None => Decision::Keep,
    }
}

/// The remediation worker.
pub struct Remediation {
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    dead_letters: Arc<dyn DeadLetterStore>,
    config: RemediationConfig,
    settings: SettingsCache<Dynamic>,
    probe: Probe,
    metrics: RemediationMetrics,
    last_trim: Option<Instant>,
}

impl Remediation {
    pub fn new(
        queue: Arc<dyn Queue>,
        coordination: Arc<dyn Coordination>,
        store: Arc<dyn Store>,
        config: RemediationConfig,
        metrics: RemediationMetrics,
    ) -> Self {
        let defaults = Dynamic {
            interval: config.interval,
            batch_size: config.batch_size,
            max_poison_retries: config.max_poison_retries,
            shed_threshold: catalogue::ALERTER_QUEUE_SHED_THRESHOLD.default,
        };
        if let Some(days) = config.dlq_retention_days {
            metrics.dlq_policy_days.get_or_create(&metrics::TypeLabel { r#type: "dlq" }).set(i64::from(days));
        }
        Self {
            dead_letters: queue.dead_letters(),
            settings: SettingsCache::new(defaults).watching(coordination.clone()),
            probe: Probe::new(config.probe.clone()),
            queue,
            coordination,
            store,
            config,
            metrics,
            last_trim: None,
        }
    }

    /// Runs a cycle at once, then one every interval, until shutdown.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            interval_secs = self.config.interval.as_secs(),
            replay_moog = self.config.replay_moog,
            "remediation started"
        );
        loop {
            let report = self.cycle().await;
            let (replayed, parked) = report.replayed_and_parked();
            if replayed + parked > 0 {
                tracing::info!(replayed, parked, "remediation cycle");
            }
            let interval = self.settings.get(self.coordination.as_ref()).await.interval;
            if !mutt_service::sleep_or_shutdown(interval, &shutdown).await {
                return;
            }
        }
    }

    /// One cycle: gauges, gates, replays and parking, trimming when due.
    pub async fn cycle(&mut self) -> CycleReport {
        let started = Instant::now();
        self.metrics.loops.inc();
        let settings = self.settings.get(self.coordination.as_ref()).await;
        let mut report = CycleReport { store_healthy: self.store.ping().await.is_ok(), ..Default::default() };
        self.metrics.store_health.set(i64::from(report.store_healthy));
        if self.probe.active() {
            let ok = self.probe.healthy().await;
            self.metrics.moog_health.set(i64::from(ok));
            report.webhook_healthy = Some(ok);
        } else {
            self.metrics.moog_health.set(1);
        }
        if report.store_healthy {
            report.holding_shed = self.alert_queue_above(settings.shed_threshold).await;
            report.alerter = self.remediate(Dlq::Alerter, &settings, report.holding_shed).await;
        }
        if self.config.replay_moog && report.webhook_healthy != Some(false) && self.breaker_closed().await {
            report.moog = self.remediate(Dlq::Moog, &settings, false).await;
        }
        report.trimmed = self.trim_if_due().await;
        self.sample_depths().await;
        self.metrics.loop_duration.observe(started.elapsed().as_secs_f64());
        report
    }

    /// Whether the alert queue is above the shed threshold (unknown counts as above).
    async fn alert_queue_above(&self, threshold: u64) -> bool {
        self.queue.depth(QueueId::Alert).await.map_or(true, |d| d > threshold)
    }

    async fn breaker_closed(&self) -> bool {
        matches!(self.coordination.breaker_state(BREAKER).await, Ok((BreakerState::Closed, _)))
    }

    /// Replays or parks up to `batch_size` entries of one DLQ, oldest first. Entries held
    /// back (shed ones while the alert queue is full) are stepped over, up to 100 batches'
    /// worth, so they do not block the ones behind them.
    async fn remediate(&self, dlq: Dlq, settings: &Dynamic, hold_shed: bool) -> Option<MoveReport> {
        let pass = Pass {
            max_moves: Some(settings.batch_size),
            max_examined: Some(settings.batch_size.saturating_mul(100)),
            dry_run: false,
        };
        let max = settings.max_poison_retries;
        let result = dlq::apply(self.dead_letters.as_ref(), dlq, "remediate", pass, &|_, _| {}, |e| {
            decide(dlq, e, max, hold_shed)
        })
        .await;
        match result {
            Ok(r) => {
                let (replayed, parked) = split(&r);
                self.metrics.replay_success.inc_by(replayed);
                self.metrics.poison.inc_by(parked);
                if parked > 0 {
                    tracing::warn!(dlq = %dlq, parked, "poison dead letters parked in the dead DLQ");
                }
                Some(r)
            }
            Err(e) => {
                tracing::warn!(dlq = %dlq, error = %e, "remediation could not replay");
                self.metrics.replay_fail.get_or_create(&metrics::ReasonLabel { reason: "redis_error" }).inc();
                None
            }
        }
    }

    /// Trims the DLQs by age every `trim_interval` (the first time at start).
    async fn trim_if_due(&mut self) -> Vec<MoveReport> {
        let Some(days) = self.config.dlq_retention_days else { return Vec::new() };
        if self.last_trim.is_some_and(|t| t.elapsed() < self.config.trim_interval) {
            return Vec::new();
        }
        self.last_trim = Some(Instant::now());
        match dlq::trim(self.dead_letters.as_ref(), days, false, &|_, _| {}).await {
            Ok(reports) => {
                let n: u64 = reports.iter().map(MoveReport::total).sum();
                self.metrics.dlq_trimmed.get_or_create(&metrics::TypeLabel { r#type: "dlq" }).inc_by(n);
                if n > 0 {
                    tracing::info!(deleted = n, days, "dead letters older than the retention deleted");
                }
                reports
            }
            Err(e) => {
                tracing::warn!(error = %e, "trimming the DLQs failed");
                Vec::new()
            }
        }
    }

    async fn sample_depths(&self) {
        for d in Dlq::ALL {
            if let Ok(depth) = self.dead_letters.dlq_depth(d).await {
                let label = metrics::DlqNameLabel { dlq_name: self.dead_letters.dlq_name(d) };
                self.metrics.dlq_depth.get_or_create(&label).set(depth as i64);
            }
        }
    }
}

/// The role's `/health`: the queue backend and the store.
pub fn health(queue: Arc<dyn Queue>, store: Arc<dyn Store>, pod: String) -> mutt_service::Health {
    mutt_service::Health::new("mutt-remediation")
        .pod(pod)
        .check("Redis", queue, |q| async move { q.ping().await })
        .check("PostgreSQL", store, |s| async move { s.ping().await })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(v: serde_json::Value) -> DlqEntry {
        DlqEntry::read(Dlq::Alerter, v.to_string().as_bytes(), chrono::Utc::now())
    }

    fn target(d: Decision) -> Option<Target> {
        match d {
            Decision::Move { target, .. } => Some(target),
            _ => None,
        }
    }

    #[test]
    fn poison_is_parked_after_the_configured_replays_and_never_loops() {
        let dead = Some(Target::Dlq(Dlq::Dead));
        let home = Some(Target::Queue(QueueId::Ingest));
        let spent = |replays: u64| {
            entry(json!({"h": 1, "_retry_count": 4, "_dlq_reason": "retries_exhausted", "_replay_count": replays}))
        };
        assert_eq!(target(decide(Dlq::Alerter, &spent(0), 3, false)), home);
        assert_eq!(target(decide(Dlq::Alerter, &spent(2), 3, false)), home);
        assert_eq!(target(decide(Dlq::Alerter, &spent(3), 3, false)), dead);
        // The original's own test, kept.
        assert_eq!(target(decide(Dlq::Alerter, &entry(json!({"_moog_retry_count": 3})), 3, false)), dead);
        assert_eq!(
            target(decide(Dlq::Alerter, &entry(json!({"raw": "x", "_dlq_reason": "invalid_json"})), 3, false)),
            dead
        );
        // A Moog DLQ entry's retry count is spent by definition: only replays count there.
        let moog = DlqEntry::read(
            Dlq::Moog,
            br#"{"message_body":"m","raw_json":{},"_moog_retry_count":6}"#,
            chrono::Utc::now(),
        );
        assert_eq!(target(decide(Dlq::Moog, &moog, 3, false)), Some(Target::Queue(QueueId::Alert)));
    }

    #[test]
    fn shed_entries_wait_while_the_alert_queue_is_above_the_threshold() {
        let shed = entry(json!({"h": 1, "_dlq_reason": "shed", "_dlq_error": "queue_depth_exceeded:5>2"}));
        assert!(matches!(decide(Dlq::Alerter, &shed, 3, true), Decision::Keep));
        assert_eq!(target(decide(Dlq::Alerter, &shed, 3, false)), Some(Target::Queue(QueueId::Ingest)));
        let old_style = entry(json!({"h": 1, "shedding_reason": "queue_depth_exceeded:5>2"}));
        assert!(matches!(decide(Dlq::Alerter, &old_style, 3, true), Decision::Keep));
    }
}

//! Where a batch's time goes, phase by phase: a handful of clock reads per batch, summed over
//! the alerter's life, for the benchmark (`mutt-alerter-bench`) and for profiling.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds spent per batch phase, summed over the alerter's loops: where a slow drain's time
/// goes (waiting for the queue, the audit's commit, the settle), without a profiler.
pub type PhaseSeconds = Family<PhaseLabel, Counter<f64, AtomicU64>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: &'static str,
}

/// The phases of one batch, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Dynamic settings and the alert-queue backpressure check.
    Checks,
    /// The lease call (including any wait for the first event).
    Lease,
    /// The rules-version check (and a reload when it moved).
    Rules,
    /// Parsing, rule matching, building audit rows and alerts.
    Decide,
    /// Flap counting (only for rules with a flap limit).
    Flaps,
    /// The audit write and its commit.
    Audit,
    /// Counting unhandled events, keeping samples, building meta-alerts. Runs concurrently
    /// with the audit write, so its time is also inside `Audit` and not in [`BatchTimings::total`].
    Unhandled,
    /// Building the settlement and settling it.
    Settle,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Checks,
        Phase::Lease,
        Phase::Rules,
        Phase::Decide,
        Phase::Flaps,
        Phase::Audit,
        Phase::Unhandled,
        Phase::Settle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Checks => "checks",
            Phase::Lease => "lease",
            Phase::Rules => "rules",
            Phase::Decide => "decide",
            Phase::Flaps => "flaps",
            Phase::Audit => "audit",
            Phase::Unhandled => "unhandled",
            Phase::Settle => "settle",
        }
    }
}

/// Time spent per phase over the batches processed (empty leases included in `Lease`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchTimings {
    /// Batches that leased something.
    pub batches: u64,
    pub events: u64,
    spent: [Duration; 8],
}

impl BatchTimings {
    pub fn spent(&self, phase: Phase) -> Duration {
        self.spent[phase as usize]
    }

    pub fn add(&mut self, phase: Phase, d: Duration) {
        self.spent[phase as usize] += d;
    }

    /// All phases together (wall time: `Unhandled` overlaps `Audit` and is left out).
    pub fn total(&self) -> Duration {
        Phase::ALL.iter().filter(|p| **p != Phase::Unhandled).map(|p| self.spent(*p)).sum()
    }

    /// Adds another alerter loop's timings (one process running several loops).
    pub fn merge(&mut self, other: &BatchTimings) {
        self.batches += other.batches;
        self.events += other.events;
        for (a, b) in self.spent.iter_mut().zip(other.spent) {
            *a += b;
        }
    }
}

/// The timings of every batch loop of one alerter, summed (a lock taken a few times a batch),
/// and reported as `mutt_alerter_batch_phase_seconds_total{phase}` when given the metric.
#[derive(Clone, Debug, Default)]
pub struct SharedTimings {
    sums: Arc<Mutex<BatchTimings>>,
    metric: Option<PhaseSeconds>,
}

impl SharedTimings {
    /// Timings that also feed the per-phase counter of the alerter's metrics.
    pub fn reporting_to(metric: PhaseSeconds) -> Self {
        Self { sums: Arc::default(), metric: Some(metric) }
    }

    pub fn snapshot(&self) -> BatchTimings {
        self.sums.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn add(&self, phase: Phase, d: Duration) {
        self.sums.lock().unwrap_or_else(|p| p.into_inner()).add(phase, d);
        if let Some(metric) = &self.metric {
            metric.get_or_create(&PhaseLabel { phase: phase.name() }).inc_by(d.as_secs_f64());
        }
    }

    /// Counts a leased batch of `events`.
    pub(crate) fn batch(&self, events: usize) {
        let mut t = self.sums.lock().unwrap_or_else(|p| p.into_inner());
        t.batches += 1;
        t.events += events as u64;
    }
}

/// Charges the time since the last lap to a phase.
pub(crate) struct Stopwatch(Instant);

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn lap(&mut self, timings: &SharedTimings, phase: Phase) {
        let now = Instant::now();
        timings.add(phase, now - self.0);
        self.0 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_per_phase_and_merge() {
        let shared = SharedTimings::default();
        shared.add(Phase::Audit, Duration::from_millis(3));
        shared.add(Phase::Audit, Duration::from_millis(2));
        shared.add(Phase::Lease, Duration::from_millis(1));
        shared.add(Phase::Unhandled, Duration::from_secs(9));
        let mut sw = Stopwatch::start();
        sw.lap(&shared, Phase::Settle);
        shared.batch(7);
        let t = shared.snapshot();
        assert_eq!(t.spent(Phase::Audit), Duration::from_millis(5));
        assert!(t.total() < Duration::from_secs(1), "unhandled overlaps audit: not in the total");
        assert_eq!((t.batches, t.events), (1, 7));
        let mut all = BatchTimings { batches: 1, events: 10, ..BatchTimings::default() };
        all.merge(&t);
        assert!(all.total() >= Duration::from_millis(6));
        assert_eq!((all.batches, all.events), (2, 17));
        assert_eq!(Phase::ALL.map(Phase::name)[5], "audit");
    }

    #[test]
    fn laps_feed_the_per_phase_counter() {
        let metric = PhaseSeconds::default();
        let shared = SharedTimings::reporting_to(metric.clone());
        shared.add(Phase::Audit, Duration::from_millis(250));
        shared.add(Phase::Audit, Duration::from_millis(500));
        shared.add(Phase::Lease, Duration::from_secs(2));
        let value = |phase: Phase| metric.get_or_create(&PhaseLabel { phase: phase.name() }).get();
        assert!((value(Phase::Audit) - 0.75).abs() < 1e-9, "{}", value(Phase::Audit));
        assert!((value(Phase::Lease) - 2.0).abs() < 1e-9);
        assert_eq!(value(Phase::Settle), 0.0);
        assert_eq!(shared.snapshot().spent(Phase::Audit), Duration::from_millis(750), "the sums still add up");
    }
}

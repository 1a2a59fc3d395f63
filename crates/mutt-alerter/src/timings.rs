//! Where a batch's time goes, phase by phase: a handful of clock reads per batch, summed over
//! the alerter's life, for the benchmark (`mutt-alerter-bench`) and for profiling.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The timings of every batch loop of one alerter, summed (a lock taken a few times a batch).
#[derive(Clone, Debug, Default)]
pub struct SharedTimings(Arc<Mutex<BatchTimings>>);

impl SharedTimings {
    pub fn snapshot(&self) -> BatchTimings {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn add(&self, phase: Phase, d: Duration) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).add(phase, d);
    }

    /// Counts a leased batch of `events`.
    pub(crate) fn batch(&self, events: usize) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
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
}

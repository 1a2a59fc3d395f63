//! Capped exponential backoff with full jitter (AWS architecture blog's "full jitter"): the
//! n-th wait is uniform in [0, min(cap, base · 2ⁿ)], so many workers that lost the same
//! dependency do not come back in lock-step.

use rand::Rng;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    /// The ceiling of the n-th wait (no jitter): min(cap, base · 2ⁿ).
    pub fn ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(30));
        base.saturating_mul(factor).min(cap)
    }

    /// A full-jitter wait for attempt `attempt` (0-based).
    pub fn jittered(base: Duration, cap: Duration, attempt: u32) -> Duration {
        let ceiling = Self::ceiling(base, cap, attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        let ms = rand::rng().random_range(0..=ceiling.as_millis().min(u128::from(u64::MAX)) as u64);
        Duration::from_millis(ms)
    }

    /// The next wait; at least `base / 2` so a retry loop never spins.
    pub fn next_delay(&mut self) -> Duration {
        let d = Self::jittered(self.base, self.cap, self.attempt).max(self.base / 2);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let (b, c) = (Duration::from_secs(1), Duration::from_secs(60));
        let got: Vec<u64> = (0..8).map(|n| Backoff::ceiling(b, c, n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(Backoff::ceiling(b, c, 1000), c);
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_never_spins() {
        let mut bo = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for n in 0..50 {
            let d = bo.next_delay();
            assert!(d >= Duration::from_millis(50), "{d:?}");
            assert!(
                d <= Backoff::ceiling(Duration::from_millis(100), Duration::from_secs(2), n)
                    .max(Duration::from_millis(50))
            );
        }
    }
}

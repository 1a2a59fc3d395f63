//! The shared rate limiter and circuit breaker of the embedded backend, in memory: one process
//! owns the data file, so "shared by every replica" means shared by this process's tasks.
//! Semantics are those of the Redis scripts (SLIDING_WINDOW, BREAKER_ACQUIRE/RECORD).

use crate::{BreakerPermit, BreakerState, RateGrant};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A probe that never reports back (its task died) frees the half-open slot after this.
const PROBE_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Local {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

struct Breaker {
    state: BreakerState,
    failures: u64,
    opened_at: Instant,
    probe_until: Option<Instant>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self { state: BreakerState::Closed, failures: 0, opened_at: Instant::now(), probe_until: None }
    }
}

impl Local {
    pub(super) fn rate_limit_take(&self, name: &str, limit: u64, window: Duration, want: u64) -> RateGrant {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let slots = windows.entry(name.to_owned()).or_default();
        while slots.front().is_some_and(|t| now.duration_since(*t) >= window) {
            slots.pop_front();
        }
        let free = limit.saturating_sub(slots.len() as u64);
        let granted = free.min(want);
        for _ in 0..granted {
            slots.push_back(now);
        }
        if granted == want {
            return RateGrant { granted, retry_after: Duration::ZERO };
        }
        let wait = slots.front().map(|t| (*t + window).saturating_duration_since(now)).unwrap_or(window);
        RateGrant { granted, retry_after: wait.max(Duration::from_millis(1)) }
    }

    pub(super) fn breaker_acquire(&self, name: &str, open_for: Duration) -> BreakerPermit {
        let now = Instant::now();
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = breakers.entry(name.to_owned()).or_default();
        match b.state {
            BreakerState::Closed => return BreakerPermit::Go,
            BreakerState::Open => {
                let left = (b.opened_at + open_for).saturating_duration_since(now);
                if !left.is_zero() {
                    return BreakerPermit::Wait { retry_after: left };
                }
                b.state = BreakerState::HalfOpen;
            }
            BreakerState::HalfOpen => {}
        }
        match b.probe_until {
            Some(until) if until > now => BreakerPermit::Wait { retry_after: Duration::from_millis(200) },
            _ => {
                b.probe_until = Some(now + PROBE_TTL);
                BreakerPermit::Probe
            }
        }
    }

    pub(super) fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> BreakerState {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = breakers.entry(name.to_owned()).or_default();
        if success {
            *b = Breaker::default();
            return BreakerState::Closed;
        }
        match b.state {
            BreakerState::HalfOpen => {
                b.state = BreakerState::Open;
                b.opened_at = Instant::now();
                b.probe_until = None;
            }
            BreakerState::Closed => {
                b.failures += 1;
                if b.failures >= threshold.max(1) {
                    b.state = BreakerState::Open;
                    b.opened_at = Instant::now();
                }
            }
            BreakerState::Open => b.failures += 1,
        }
        b.state
    }

    pub(super) fn breaker_state(&self, name: &str) -> (BreakerState, u64) {
        let breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers.get(name).map(|b| (b.state, b.failures)).unwrap_or((BreakerState::Closed, 0))
    }
}

//! A native listener's own message rate (`max_messages_per_second`, off by default).
//!
//! Native listeners are not subject to the HTTP ingest rate limit (`ingest_max_rate` is the
//! original's per-API-request limit): they are governed by queue backpressure and, when set,
//! by this per-listener budget. UDP and traps drop what is over it (`reason="rate_limit"`);
//! TCP and TLS wait, so the sender is slowed by TCP flow control instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket holding at most one second's worth of messages.
pub struct MessageRate {
    per_second: f64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Negative after [`MessageRate::reserve`] ran ahead of the budget (a debt to wait out).
    tokens: f64,
    at: Instant,
}

impl MessageRate {
    /// `None` for 0 (off).
    pub fn new(per_second: u32) -> Option<Self> {
        (per_second > 0).then(|| {
            let per_second = f64::from(per_second);
            Self { per_second, bucket: Mutex::new(Bucket { tokens: per_second, at: Instant::now() }) }
        })
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.per_second);
        b.at = now;
        f(&mut b)
    }

    /// How many of `n` messages are within the budget now (those are taken from it).
    pub fn take(&self, n: u64) -> u64 {
        self.with_bucket(|b| {
            let allowed = (b.tokens.max(0.0).floor() as u64).min(n);
            b.tokens -= allowed as f64;
            allowed
        })
    }

    /// Takes `n` messages, going into debt if needed; how long to wait before reading more.
    pub fn reserve(&self, n: u64) -> Duration {
        self.with_bucket(|b| {
            b.tokens -= n as f64;
            if b.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-b.tokens / self.per_second) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_at_zero_and_a_second_of_burst() {
        assert!(MessageRate::new(0).is_none());
        let r = MessageRate::new(100).unwrap();
        assert_eq!(r.take(150), 100, "one second's worth at once");
        assert_eq!(r.take(10), 0);
        let wait = r.reserve(50);
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(510), "{wait:?}");
    }

    #[test]
    fn refills_with_time() {
        let r = MessageRate::new(1000).unwrap();
        assert_eq!(r.take(1000), 1000);
        std::thread::sleep(Duration::from_millis(50));
        let n = r.take(1000);
        assert!((40..=200).contains(&n), "{n}");
    }
}

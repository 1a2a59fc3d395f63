//! Logging a misbehaving sender at most once a minute, for every native listener: a flood of
//! bad frames or wrong communities must not flood the log, and the table of senders must not
//! grow without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one source's problems are logged.
pub const EVERY: Duration = Duration::from_secs(60);

/// Senders remembered at most; beyond, the table is pruned (and cleared if every entry is
/// recent, which then logs a few sources twice rather than growing).
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
pub struct PerSource {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl PerSource {
    /// Whether `source` may be logged now (and, if so, remembers that it was).
    pub fn first_this_minute(&self, source: IpAddr) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.get(&source).is_some_and(|t| now.duration_since(*t) < EVERY) {
            return false;
        }
        if last.len() >= MAX_SOURCES {
            last.retain(|_, t| now.duration_since(*t) < EVERY);
            if last.len() >= MAX_SOURCES {
                last.clear();
            }
        }
        last.insert(source, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_source_and_bounded() {
        let l = PerSource::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        assert!(l.first_this_minute(a));
        assert!(!l.first_this_minute(a));
        for i in 0..(MAX_SOURCES as u32 * 2) {
            l.first_this_minute(IpAddr::from(i.to_be_bytes()));
        }
        assert!(l.last.lock().unwrap().len() <= MAX_SOURCES);
    }
}

//! Settings operators change at run time (`muttd config set`, or `redis-cli SET
//! mutt:config:<key> <value>`: the original's dynamic configuration, spec §7.3), read through
//! [`Coordination::config_values`] by every role that has some. Read at most every
//! [`REFRESH`]; a missing or unparsable value falls back to the static default, never to an
//! error, and an unreachable backend keeps the last values.
//!
//! Here rather than in a role crate because both the alerter and the forwarder read them and
//! both already depend on the [`Coordination`] interface.

use crate::Coordination;
use std::time::{Duration, Instant};

/// How long values are reused before the backend is asked again (the original's cache TTL).
pub const REFRESH: Duration = Duration::from_secs(5);

/// A group of settings read together from dynamic configuration.
pub trait Settings: Clone + Send + Sync + 'static {
    /// The configuration keys, in the order [`Settings::from_values`] receives their values.
    const KEYS: &'static [&'static str];

    /// The values found (`None` when unset, in [`Settings::KEYS`] order) applied over `defaults`.
    fn from_values(defaults: &Self, values: &[Option<String>]) -> Self;
}

/// The trimmed text of value `i`, if set.
pub fn text(values: &[Option<String>], i: usize) -> Option<&str> {
    values.get(i).and_then(|v| v.as_deref()).map(str::trim)
}

/// Value `i` as a whole number above zero; anything else counts as unset.
pub fn positive(values: &[Option<String>], i: usize) -> Option<u64> {
    text(values, i).and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0)
}

/// The settings in force, refreshed from the backend every [`REFRESH`].
pub struct SettingsCache<T: Settings> {
    defaults: T,
    current: T,
    fetched: Option<Instant>,
    refresh: Duration,
}

impl<T: Settings> SettingsCache<T> {
    pub fn new(defaults: T) -> Self {
        Self::with_refresh(defaults, REFRESH)
    }

    pub fn with_refresh(defaults: T, refresh: Duration) -> Self {
        Self { current: defaults.clone(), defaults, fetched: None, refresh }
    }

    /// The settings, read again first if the last read is older than the refresh period.
    pub async fn get(&mut self, coordination: &dyn Coordination) -> &T {
        if self.fetched.is_none_or(|t| t.elapsed() >= self.refresh) {
            match coordination.config_values(T::KEYS).await {
                Ok(values) => self.current = T::from_values(&self.defaults, &values),
                Err(e) => tracing::debug!(error = %e, "dynamic configuration unavailable; keeping the last values"),
            }
            self.fetched = Some(Instant::now());
        }
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_numbers_only() {
        let v = [Some(" 7 ".to_string()), Some("0".into()), Some("-3".into()), Some("x".into()), None];
        assert_eq!(positive(&v, 0), Some(7));
        for i in 1..6 {
            assert_eq!(positive(&v, i), None, "{i}");
        }
        assert_eq!(text(&v, 0), Some("7"));
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Limit(u64);

    impl Settings for Limit {
        const KEYS: &'static [&'static str] = &["test_limit"];
        fn from_values(defaults: &Self, values: &[Option<String>]) -> Self {
            Limit(positive(values, 0).unwrap_or(defaults.0))
        }
    }

    #[tokio::test]
    async fn reads_the_backend_and_rereads_after_the_refresh_period() {
        let dir = tempfile::tempdir().unwrap();
        let db = mutt_sqlite::Database::open(dir.path().join("mutt.db"), mutt_sqlite::DbOptions::default()).unwrap();
        let q = crate::sqlite::SqliteQueue::open(db, crate::redis::KeySpace::default()).await.unwrap();
        let mut cache = SettingsCache::with_refresh(Limit(50), Duration::from_millis(200));
        assert_eq!(cache.get(&q).await, &Limit(50), "unset: the default");
        q.set_config_value("test_limit", "7").await.unwrap();
        assert_eq!(cache.get(&q).await, &Limit(50), "within the refresh period: the cached value");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&q).await, &Limit(7));
        q.set_config_value("test_limit", "nonsense").await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&q).await, &Limit(50), "unparsable: the default again");
    }
}

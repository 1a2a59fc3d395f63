//! Settings operators change at run time (`muttd config set`, or `redis-cli SET
//! mutt:config:<key> <value>`: the original's dynamic configuration, spec §7.3), read through
//! [`Coordination::config_values`] by every role that has some. A cache drops its values as
//! soon as the backend announces a change of one of its keys
//! ([`Coordination::watch_config_changes`]: `mutt:config:updates` on Redis, as the original),
//! and reads them again at most every [`REFRESH`] anyway (a `redis-cli SET` without `PUBLISH`
//! is seen then). A missing or unparsable value falls back to the static default, never to an
//! error, and an unreachable backend keeps the last values.
//!
//! Here rather than in a role crate because the ingestor, the alerter and the forwarder read
//! them and all depend on the [`Coordination`] interface.

use crate::Coordination;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

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

/// Value `i` if the catalogue's range for `key` admits it (`mutt_core::config_catalogue`, the
/// same check `muttd config set` makes); anything else counts as unset.
pub fn int(values: &[Option<String>], i: usize, key: &mutt_core::config_catalogue::IntKey) -> Option<u64> {
    text(values, i).and_then(|v| key.parse(v))
}

/// The settings in force: read again when a change is announced, and every [`REFRESH`].
/// Shared by concurrent callers (`get` takes `&self`).
pub struct SettingsCache<T: Settings> {
    defaults: T,
    refresh: Duration,
    cached: Mutex<Cached<T>>,
    /// Counts announced changes of this cache's keys; values read before the last one are stale.
    changes: Arc<AtomicU64>,
    /// Ends the watch when the cache is dropped.
    _watch: Option<DropGuard>,
}

struct Cached<T> {
    value: T,
    fetched: Option<Instant>,
    /// The change count when `value` was read.
    changes: u64,
}

impl<T: Settings> SettingsCache<T> {
    pub fn new(defaults: T) -> Self {
        Self::with_refresh(defaults, REFRESH)
    }

    pub fn with_refresh(defaults: T, refresh: Duration) -> Self {
        let cached = Mutex::new(Cached { value: defaults.clone(), fetched: None, changes: 0 });
        Self { defaults, refresh, cached, changes: Arc::new(AtomicU64::new(0)), _watch: None }
    }

    /// Also drops the values as soon as `coordination` announces a change of one of the keys
    /// (the periodic read stays, as the fallback), until the cache is dropped. Outside a Tokio
    /// runtime only the periodic read applies.
    pub fn watching(mut self, coordination: Arc<dyn Coordination>) -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no runtime: dynamic settings are read every refresh period only");
            return self;
        };
        let changes = self.changes.clone();
        let on_change = Box::new(move |key: Option<&str>| {
            if key.is_none_or(|k| T::KEYS.contains(&k)) {
                changes.fetch_add(1, Ordering::SeqCst);
            }
        });
        let stop = CancellationToken::new();
        let watch_stop = stop.clone();
        runtime.spawn(async move { coordination.watch_config_changes(on_change, watch_stop).await });
        self._watch = Some(stop.drop_guard());
        self
    }

    /// Forgets the values: the next [`SettingsCache::get`] reads the backend.
    pub fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The settings, read again first if a change was announced since the last read or the
    /// last read is older than the refresh period.
    pub async fn get(&self, coordination: &dyn Coordination) -> T {
        let changes = self.changes.load(Ordering::SeqCst);
        {
            let c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if c.changes == changes && c.fetched.is_some_and(|t| t.elapsed() < self.refresh) {
                return c.value.clone();
            }
        }
        let read = match coordination.config_values(T::KEYS).await {
            Ok(values) => Some(T::from_values(&self.defaults, &values)),
            Err(e) => {
                tracing::debug!(error = %e, "dynamic configuration unavailable; keeping the last values");
                None
            }
        };
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        // A concurrent read that began after a later change wins over this one.
        if changes >= c.changes {
            if let Some(value) = read {
                c.value = value;
            }
            c.changes = changes;
            c.fetched = Some(Instant::now());
        }
        c.value.clone()
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
        let cache = SettingsCache::with_refresh(Limit(50), Duration::from_millis(200));
        assert_eq!(cache.get(&q).await, Limit(50), "unset: the default");
        q.set_config_value("test_limit", "7").await.unwrap();
        assert_eq!(cache.get(&q).await, Limit(50), "not watching, within the refresh period: the cached value");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&q).await, Limit(7));
        q.set_config_value("test_limit", "nonsense").await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&q).await, Limit(50), "unparsable: the default again");
    }

    #[tokio::test]
    async fn a_watching_cache_drops_its_values_on_an_announced_change() {
        let dir = tempfile::tempdir().unwrap();
        let db = mutt_sqlite::Database::open(dir.path().join("mutt.db"), mutt_sqlite::DbOptions::default()).unwrap();
        let q = Arc::new(crate::sqlite::SqliteQueue::open(db, crate::redis::KeySpace::default()).await.unwrap());
        let cache = SettingsCache::with_refresh(Limit(50), Duration::from_secs(3600)).watching(q.clone());
        assert_eq!(cache.get(q.as_ref()).await, Limit(50));
        // The read above awaited the database, so the watcher task has registered.
        q.set_config_value("test_limit", "7").await.unwrap();
        assert_eq!(cache.get(q.as_ref()).await, Limit(7), "the very next read, refresh period or not");
        q.set_config_value("other_key", "1").await.unwrap();
        q.set_config_value("test_limit", "8").await.unwrap();
        assert_eq!(cache.get(q.as_ref()).await, Limit(8));
        cache.invalidate();
        assert_eq!(cache.get(q.as_ref()).await, Limit(8));
    }
}

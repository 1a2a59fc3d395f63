//! [`Coordination`] on the embedded backend. The rate limiter and circuit breaker live in
//! memory ([`Local`]): one process owns the data file, so "shared by every replica" means
//! shared by this process's tasks; semantics are those of the Redis scripts (SLIDING_WINDOW,
//! BREAKER_ACQUIRE/RECORD). Delivered ids, unhandled counters and dynamic configuration are
//! tables of the file, so they survive a restart.

use super::{SqliteQueue, db_err, now_ms};
use crate::coordination::ConfigChangeFn;
use crate::{
    BreakerPermit, BreakerState, Coordination, QueueError, RateGrant, UnhandledCount, UnhandledKey, UnhandledSample,
};
use async_trait::async_trait;
use mutt_sqlite::rusqlite::{OptionalExtension, params};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A probe that never reports back (its task died) frees the half-open slot after this.
const PROBE_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Local {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    /// Who [`Coordination::watch_config_changes`] for this handle, by registration number.
    config_watchers: Mutex<Vec<(u64, Watcher)>>,
    next_watcher: AtomicU64,
    /// When expired unhandled counters were last deleted (ms since the epoch).
    unhandled_pruned_ms: AtomicI64,
    /// Sample rows known to be live, and until when (ms): a live sample is kept as it is, so
    /// a batch whose samples are all live needs no write (this process owns the file; only
    /// it writes samples, and the prune deletes only expired ones).
    samples: Mutex<HashMap<String, i64>>,
}

/// Most live samples remembered; beyond it the memory starts over (the file stays right).
const SAMPLES_REMEMBERED: usize = 50_000;

/// Expired unhandled counters are deleted at most this often (or once per expiry when that is
/// shorter): one row per (host, message
/// signature) seen, so without it the table grows with every distinct message ever counted.
const UNHANDLED_PRUNE_EVERY_MS: i64 = 60_000;

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

    fn add_config_watcher(&self, on_change: Watcher) -> u64 {
        let id = self.next_watcher.fetch_add(1, Ordering::Relaxed);
        self.config_watchers.lock().unwrap_or_else(|p| p.into_inner()).push((id, on_change));
        id
    }

    fn remove_config_watcher(&self, id: u64) {
        self.config_watchers.lock().unwrap_or_else(|p| p.into_inner()).retain(|(i, _)| *i != id);
    }

    /// Tells this handle's watchers that `key` changed, before the setter returns.
    fn config_changed(&self, key: &str) {
        // Called outside the lock: a callback may register or drop a watcher.
        let watchers: Vec<Watcher> =
            self.config_watchers.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, f)| f.clone()).collect();
        for on_change in watchers {
            on_change(Some(key));
        }
    }
}

type Watcher = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Removes a config watcher when its watch ends, however it ends (stopped or dropped).
struct WatcherGuard<'a> {
    local: &'a Local,
    id: u64,
}

impl Drop for WatcherGuard<'_> {
    fn drop(&mut self) {
        self.local.remove_config_watcher(self.id);
    }
}

#[async_trait]
impl Coordination for SqliteQueue {
    async fn rate_limit_take(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
        want: u64,
    ) -> Result<RateGrant, QueueError> {
        Ok(self.shared.local.rate_limit_take(name, limit, window, want))
    }

    async fn breaker_acquire(&self, name: &str, open_for: Duration) -> Result<BreakerPermit, QueueError> {
        Ok(self.shared.local.breaker_acquire(name, open_for))
    }

    async fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> Result<BreakerState, QueueError> {
        Ok(self.shared.local.breaker_record(name, success, threshold))
    }

    async fn breaker_state(&self, name: &str) -> Result<(BreakerState, u64), QueueError> {
        Ok(self.shared.local.breaker_state(name))
    }

    async fn already_delivered(&self, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        Ok(self.delivered_until(ids).await?.into_iter().map(|e| e.is_some()).collect())
    }

    async fn delivered_until(&self, ids: &[String]) -> Result<Vec<Option<i64>>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let now = now_ms();
        self.db
            .read(move |c| {
                let mut s = c.prepare_cached("SELECT expires_ms FROM delivered_event WHERE event_id = ?1")?;
                ids.iter()
                    .map(|id| {
                        let until: Option<i64> = s.query_row([id], |r| r.get(0)).optional()?;
                        Ok(until.filter(|u| *u > now))
                    })
                    .collect()
            })
            .await
            .map_err(db_err("reading delivered ids"))
    }

    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        let now = now_ms();
        let until = now + ttl.as_millis() as i64;
        self.db
            .write(move |c| {
                let mut s = c.prepare_cached(
                    "INSERT INTO delivered_event (event_id, expires_ms) VALUES (?1, ?2)
                     ON CONFLICT (event_id) DO UPDATE SET expires_ms = excluded.expires_ms",
                )?;
                for id in &ids {
                    s.execute(params![id, until])?;
                }
                c.prepare_cached("DELETE FROM delivered_event WHERE expires_ms <= ?1")?.execute([now])?;
                Ok(())
            })
            .await
            .map_err(db_err("recording delivered ids"))
    }

    async fn count_unhandled(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let keyed: Vec<(String, String)> =
            events.iter().map(|e| (self.keys.unhandled(&e.hostname, &e.signature).0, e.event_id.clone())).collect();
        let threshold = threshold.max(1) as i64;
        let expiry_ms = expiry.as_millis().max(1000) as i64;
        let now = now_ms();
        let last = self.shared.local.unhandled_pruned_ms.load(Ordering::Relaxed);
        let prune = now - last >= UNHANDLED_PRUNE_EVERY_MS.min(expiry_ms)
            && self
                .shared
                .local
                .unhandled_pruned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        // Examples as on Redis (`scripts::UNHANDLED`): none for a message seen once so far
        // (one-off messages are most of what goes unhandled, and each sample row was a second
        // row written per event), else the batch's first message of its (host, signature)
        // unless a live one is kept. Written in the same piece of work as the counters: their
        // rows sit side by side, so one commit carries both.
        // The batch's first message per counter, from the keys already built (a sample's key
        // is its counter's with `:sample`, as on Redis).
        let mut first = HashSet::new();
        let samples = self.samples_to_write(
            keyed
                .iter()
                .zip(events)
                .filter(|((key, _), e)| !e.message.is_empty() && first.insert(key.as_str()))
                .map(|((key, _), e)| (format!("{key}:sample"), e.message.clone())),
            now,
        );
        let sample_until = now + expiry_ms;
        // The Redis script's semantics (spec §3.6a): count in a window anchored at the first
        // occurrence; the threshold-th fires and records its event id; while that record
        // lives only the same event (a redelivery) fires again.
        // Unsynced: the counters are seen only through the file (see `write_unsynced`).
        let (fired, kept) = self
            .db
            .write_unsynced(move |c| {
                let mut read = c.prepare_cached(
                    "SELECT count, window_until_ms, triggered_by, triggered_until_ms
                       FROM unhandled_counter WHERE key = ?1",
                )?;
                let mut save = c.prepare_cached(
                    "INSERT INTO unhandled_counter (key, count, window_until_ms, triggered_by, triggered_until_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (key) DO UPDATE SET count = excluded.count,
                         window_until_ms = excluded.window_until_ms, triggered_by = excluded.triggered_by,
                         triggered_until_ms = excluded.triggered_until_ms",
                )?;
                let mut fired = Vec::with_capacity(keyed.len());
                // Counter keys of events that were not the first sighting of their window.
                let mut wanted: HashSet<&str> = HashSet::new();
                for (key, event) in &keyed {
                    type Row = (i64, i64, Option<String>, Option<i64>);
                    let row: Option<Row> =
                        read.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()?;
                    let (mut count, mut window, mut by, mut by_until) = row.unwrap_or((0, 0, None, None));
                    if by.is_some() && by_until.is_some_and(|u| u > now) {
                        fired.push(by.as_deref() == Some(event.as_str()));
                        wanted.insert(key);
                        continue;
                    }
                    by = None;
                    by_until = None;
                    if window <= now {
                        count = 0;
                        window = now + expiry_ms;
                    }
                    count += 1;
                    let fire = count == threshold;
                    if fire {
                        count = 0;
                        window = 0;
                        by = Some(event.clone());
                        by_until = Some(now + expiry_ms);
                    }
                    save.execute(params![key, count, window, by, by_until])?;
                    if fire || count > 1 {
                        wanted.insert(key);
                    }
                    fired.push(fire);
                }
                // A row whose window and trigger record have both run out counts as absent
                // (read above), as the Redis keys it mirrors expire.
                if prune {
                    c.prepare_cached(
                        "DELETE FROM unhandled_counter
                          WHERE window_until_ms <= ?1 AND COALESCE(triggered_until_ms, 0) <= ?1",
                    )?
                    .execute([now])?;
                }
                // Examples are a courtesy: one that cannot be kept must not fail the count
                // (SQLite undoes only the failed statement; the counts above stand).
                let samples = samples
                    .iter()
                    .filter(|(sample, _)| sample.strip_suffix(":sample").is_some_and(|k| wanted.contains(k)));
                let kept = match save_samples(c, samples, sample_until, now) {
                    Ok(kept) => kept,
                    Err(e) => {
                        tracing::warn!(error = %e, "keeping examples of unhandled messages failed");
                        Vec::new()
                    }
                };
                Ok((fired, kept))
            })
            .await
            .map_err(db_err("counting unhandled events"))?;
        self.remember_live_samples(kept, now);
        Ok(fired)
    }

    async fn unhandled_counts(&self, limit: usize) -> Result<Vec<UnhandledCount>, QueueError> {
        let prefix = self.keys.unhandled_prefix.clone();
        let now = now_ms();
        type Row = (String, i64, bool, bool, Option<String>);
        let rows: Vec<Row> = self
            .db
            .read(move |c| {
                // Rows whose window and trigger record ran out count as absent (as Redis's
                // expired keys), even before the prune deletes them.
                let mut s = c.prepare_cached(
                    "SELECT key, count, window_until_ms > ?1, COALESCE(triggered_until_ms, 0) > ?1, triggered_by
                       FROM unhandled_counter
                      WHERE window_until_ms > ?1 OR COALESCE(triggered_until_ms, 0) > ?1",
                )?;
                let rows = s.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
                rows.collect()
            })
            .await
            .map_err(db_err("reading unhandled counters"))?;
        let items = rows.into_iter().filter_map(|(key, count, live, fired, text)| {
            let (hostname, signature, part) = UnhandledCount::parse_key(&prefix, &key)?;
            // A sample row (see `keep_unhandled_samples`) holds its message in `triggered_by`.
            let message = if part == "sample" { text } else { None };
            let count = if live && part.is_empty() { u64::try_from(count).unwrap_or(0) } else { 0 };
            Some(UnhandledCount { hostname, signature, count, fired, message })
        });
        Ok(UnhandledCount::merge(items, limit))
    }

    async fn flap_count(&self, events: &[crate::FlapEvent]) -> Result<Vec<crate::FlapVerdict>, QueueError> {
        self.count_flaps(events).await
    }

    async fn flap_claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<crate::FlapSummary>, QueueError> {
        self.claim_flaps(limit, lease).await
    }

    async fn flap_ack(&self, acks: &[crate::FlapAck]) -> Result<u64, QueueError> {
        self.ack_flaps(acks).await
    }

    async fn config_values(&self, keys: &[&str]) -> Result<Vec<Option<String>>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.db
            .read(move |c| {
                let mut s = c.prepare_cached("SELECT value FROM dynamic_config WHERE key = ?1")?;
                keys.iter().map(|k| s.query_row([k], |r| r.get(0)).optional()).collect()
            })
            .await
            .map_err(db_err("reading dynamic configuration"))
    }

    async fn set_config_value(&self, key: &str, value: &str) -> Result<Option<String>, QueueError> {
        let (name, key, value) = (key, key.to_owned(), value.to_owned());
        let old = self
            .db
            .write(move |c| {
                let old: Option<String> = c
                    .prepare_cached("SELECT value FROM dynamic_config WHERE key = ?1")?
                    .query_row([&key], |r| r.get(0))
                    .optional()?;
                c.prepare_cached(
                    "INSERT INTO dynamic_config (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )?
                .execute([&key, &value])?;
                Ok(old)
            })
            .await
            .map_err(db_err("writing dynamic configuration"))?;
        // This process's workers at once; another process's see the table change (below).
        self.shared.local.config_changed(name);
        Ok(old)
    }

    async fn delete_config_value(&self, key: &str) -> Result<Option<String>, QueueError> {
        let (name, key) = (key, key.to_owned());
        let old = self
            .db
            .write(move |c| {
                c.prepare_cached("DELETE FROM dynamic_config WHERE key = ?1 RETURNING value")?
                    .query_row([&key], |r| r.get::<_, String>(0))
                    .optional()
            })
            .await
            .map_err(db_err("deleting dynamic configuration"))?;
        // As set_config_value: this process at once; others see the row count change.
        self.shared.local.config_changed(name);
        Ok(old)
    }

    async fn config_entries(&self) -> Result<Vec<(String, String)>, QueueError> {
        self.db
            .read(|c| {
                let mut s = c.prepare_cached("SELECT key, value FROM dynamic_config ORDER BY key")?;
                let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await
            .map_err(db_err("reading dynamic configuration"))
    }

    async fn watch_config_changes(&self, on_change: ConfigChangeFn, stop: CancellationToken) {
        let on_change: Watcher = Arc::from(on_change);
        let id = self.shared.local.add_config_watcher(on_change.clone());
        let _guard = WatcherGuard { local: &self.shared.local, id };
        // `muttd config set` in another process writes the file: poll the table's version.
        let mut seen = None;
        loop {
            match self.config_version().await {
                Ok(v) if seen.as_ref().is_some_and(|s| *s != v) => {
                    on_change(None);
                    seen = Some(v);
                }
                Ok(v) => seen = Some(v),
                Err(e) => tracing::debug!(error = %e, "cannot read the configuration version"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CONFIG_POLL) => {}
            }
        }
    }

    /// Nothing to send: the store's triggers bump `store_meta.rules_version` on every rule
    /// change, whoever made it, and [`Coordination::watch_rules_changed`] polls it.
    async fn publish_rules_changed(&self) -> Result<Option<u64>, QueueError> {
        Ok(None)
    }

    async fn watch_rules_changed(&self, on_change: Box<dyn Fn() + Send + Sync>, stop: CancellationToken) {
        let mut seen = None;
        loop {
            match self.rules_version().await {
                Ok(v) if v != seen => {
                    if seen.is_some() {
                        tracing::info!(version = ?v, "rules changed in the data file; reloading");
                        on_change();
                    }
                    seen = v;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the rules version"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RULES_POLL) => {}
            }
        }
    }
}

/// How often the embedded backend looks for rule changes made by another process.
const RULES_POLL: Duration = Duration::from_secs(1);
/// How often it looks for configuration changes made by another process.
const CONFIG_POLL: Duration = Duration::from_secs(1);

impl SqliteQueue {
    /// Keeps an example message per unhandled (host, signature), as
    /// [`Coordination::count_unhandled`] does (in its own piece of work) for the messages it
    /// wants one of. A sample is a row of `unhandled_counter` keyed `<counter>:sample` (as the
    /// Redis key), its message in `triggered_by`, living for `expiry` (pruned with the
    /// counters); a live one is kept.
    pub async fn keep_unhandled_samples(
        &self,
        samples: &[UnhandledSample],
        expiry: Duration,
    ) -> Result<(), QueueError> {
        let now = now_ms();
        let rows = self.samples_to_write(
            samples
                .iter()
                .map(|s| (format!("{}:sample", self.keys.unhandled(&s.hostname, &s.signature).0), s.message.clone())),
            now,
        );
        if rows.is_empty() {
            return Ok(());
        }
        let until = now + expiry.as_millis().max(1000) as i64;
        let kept = self
            .db
            .write_unsynced(move |c| save_samples(c, &rows, until, now))
            .await
            .map_err(db_err("keeping unhandled samples"))?;
        self.remember_live_samples(kept, now);
        Ok(())
    }

    /// The sample rows to write: the `(sample key, message)` pairs not known to be live.
    fn samples_to_write(&self, samples: impl Iterator<Item = (String, String)>, now: i64) -> Vec<(String, String)> {
        let live = self.shared.local.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.filter(|(key, _)| live.get(key).is_none_or(|until| *until <= now)).collect()
    }

    /// Remembers sample rows written (or found live) and until when they live.
    fn remember_live_samples(&self, kept: Vec<(String, i64)>, now: i64) {
        if kept.is_empty() {
            return;
        }
        let mut live = self.shared.local.samples.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() + kept.len() > SAMPLES_REMEMBERED {
            live.retain(|_, until| *until > now);
            if live.len() + kept.len() > SAMPLES_REMEMBERED {
                live.clear();
            }
        }
        live.extend(kept);
    }

    /// The store's rules version (`store_meta`, same file); `None` before the store's tables
    /// exist. Read here rather than through the store so the queue side can tell alerters
    /// about changes on its own, as Redis pub/sub does.
    async fn rules_version(&self) -> Result<Option<i64>, QueueError> {
        self.database()
            .read(|c| {
                let exists: Option<i64> = c
                    .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'", [], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if exists.is_none() {
                    return Ok(None);
                }
                c.query_row("SELECT value FROM store_meta WHERE key = 'rules_version'", [], |r| r.get(0)).optional()
            })
            .await
            .map_err(db_err("reading the rules version"))
    }

    /// Changes whenever a configuration value is written or removed, by any process.
    async fn config_version(&self) -> Result<(i64, Option<String>), QueueError> {
        self.database()
            .read(|c| {
                c.query_row("SELECT count(*), max(updated_at) FROM dynamic_config", [], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .await
            .map_err(db_err("reading the configuration version"))
    }
}

/// Writes sample rows (`<counter key>:sample`, the message in `triggered_by`, living until
/// `until`); a live one is kept as it is. Returns each row's key and when it expires.
fn save_samples<'a>(
    c: &mutt_sqlite::rusqlite::Connection,
    rows: impl IntoIterator<Item = &'a (String, String)>,
    until: i64,
    now: i64,
) -> mutt_sqlite::rusqlite::Result<Vec<(String, i64)>> {
    let mut save = c.prepare_cached(
        "INSERT INTO unhandled_counter (key, count, window_until_ms, triggered_by, triggered_until_ms)
         VALUES (?1, 0, ?2, ?3, NULL)
         ON CONFLICT (key) DO UPDATE SET window_until_ms = excluded.window_until_ms,
             triggered_by = excluded.triggered_by
          WHERE unhandled_counter.window_until_ms <= ?4
         RETURNING window_until_ms",
    )?;
    let mut until_of = c.prepare_cached("SELECT window_until_ms FROM unhandled_counter WHERE key = ?1")?;
    let mut kept = Vec::new();
    for (key, message) in rows {
        // No row back: a live sample was there and stays; ask when it expires.
        let live_until = match save.query_row(params![key, until, message, now], |r| r.get(0)).optional()? {
            Some(written) => written,
            None => until_of.query_row([key], |r| r.get(0))?,
        };
        kept.push((key.clone(), live_until));
    }
    Ok(kept)
}

//! The state the roles share besides the queues (DESIGN.md §3): the ingest and Moog rate
//! limits, the circuit breaker, delivered ids, unhandled-event counters, dynamic
//! configuration values and rule-change notifications.
//!
//! Kept apart from [`crate::Queue`] so that a queue backend (Redis lists, Redis Streams,
//! SQLite) implements only queueing; today both backends implement both on one struct.

use crate::QueueError;
use crate::flap::{FlapAck, FlapEvent, FlapSummary, FlapVerdict};
use async_trait::async_trait;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One unhandled event for [`Coordination::count_unhandled`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnhandledKey {
    pub hostname: String,
    /// First 16 hex characters of the SHA-1 of the message text (the original's signature).
    pub signature: String,
    /// The event's id: a redelivered triggering event fires again with the same id.
    pub event_id: String,
    /// The message, at most [`UnhandledSample::MAX_BYTES`] of it (empty: keep no example).
    /// The backend keeps one example per (hostname, signature) from it for the console.
    pub message: String,
}

impl UnhandledKey {
    /// The key of an unhandled event; `message` is cut as [`UnhandledSample::new`] cuts it.
    pub fn new(
        hostname: impl Into<String>,
        signature: impl Into<String>,
        event_id: impl Into<String>,
        message: &str,
    ) -> Self {
        Self {
            hostname: hostname.into(),
            signature: signature.into(),
            event_id: event_id.into(),
            message: UnhandledSample::cut(message).to_owned(),
        }
    }

    /// The examples a batch offers: of each (hostname, signature), the first event's message
    /// (the first sample of a window wins); events without a message offer none.
    pub fn samples(events: &[UnhandledKey]) -> Vec<UnhandledSample> {
        let mut seen = std::collections::HashSet::new();
        events
            .iter()
            .filter(|e| !e.message.is_empty() && seen.insert((e.hostname.as_str(), e.signature.as_str())))
            .map(|e| UnhandledSample::new(&e.hostname, &e.signature, &e.message))
            .collect()
    }
}

/// One (hostname, message signature) the unhandled-event counters hold now, for
/// [`Coordination::unhandled_counts`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnhandledCount {
    pub hostname: String,
    /// [`UnhandledKey::signature`].
    pub signature: String,
    /// Events counted in the current window (reset when the threshold fires).
    pub count: u64,
    /// Whether the threshold fired and its meta-alert's record has not expired yet.
    pub fired: bool,
    /// An example of the message ([`UnhandledKey::message`]), when one is kept.
    pub message: Option<String>,
}

/// An example message of an unhandled (host, signature), kept by
/// [`Coordination::count_unhandled`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnhandledSample {
    pub hostname: String,
    pub signature: String,
    /// The message, at most [`UnhandledSample::MAX_BYTES`] of it.
    pub message: String,
}

impl UnhandledSample {
    /// Longer messages are cut (at a character boundary): an example, not an archive.
    pub const MAX_BYTES: usize = 500;

    pub fn new(hostname: &str, signature: &str, message: &str) -> Self {
        Self { hostname: hostname.to_owned(), signature: signature.to_owned(), message: Self::cut(message).to_owned() }
    }

    /// At most [`UnhandledSample::MAX_BYTES`] of `message`, cut at a character boundary.
    pub fn cut(message: &str) -> &str {
        let mut end = message.len().min(Self::MAX_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        &message[..end]
    }
}

impl UnhandledCount {
    /// Splits a counter, triggered-marker or sample key `<prefix>:<hostname>:<sig>[:triggered
    /// | :sample]` (the hostname may hold colons, the signature never does) into hostname,
    /// signature and the suffix (`""`, `"triggered"`, `"sample"`); `None` for another key.
    pub fn parse_key(prefix: &str, key: &str) -> Option<(String, String, &'static str)> {
        let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
        let (rest, part) = match (rest.strip_suffix(":triggered"), rest.strip_suffix(":sample")) {
            (Some(r), _) => (r, "triggered"),
            (_, Some(r)) => (r, "sample"),
            _ => (rest, ""),
        };
        let (host, sig) = rest.rsplit_once(':')?;
        Some((host.to_owned(), sig.to_owned(), part))
    }

    /// What a counter (`part` `""`: its count), a triggered marker (`"triggered"`) or a sample
    /// (`"sample"`: its text) says, with `value` the key's content.
    pub fn of_part(hostname: String, signature: String, part: &str, value: String) -> Self {
        let mut c = Self { hostname, signature, count: 0, fired: false, message: None };
        match part {
            "triggered" => c.fired = true,
            "sample" => c.message = Some(value),
            _ => c.count = value.parse().unwrap_or(0),
        }
        c
    }

    /// Merges counters and markers of the same (host, signature) and sorts them most frequent
    /// first (fired ones first: they reached the threshold), then by host.
    pub fn merge(items: impl IntoIterator<Item = UnhandledCount>, limit: usize) -> Vec<UnhandledCount> {
        let mut by: std::collections::BTreeMap<(String, String), UnhandledCount> = Default::default();
        for i in items {
            let e = by.entry((i.hostname.clone(), i.signature.clone())).or_insert_with(|| UnhandledCount {
                count: 0,
                fired: false,
                ..i.clone()
            });
            e.count += i.count;
            e.fired |= i.fired;
            if e.message.is_none() {
                e.message = i.message;
            }
        }
        let mut out: Vec<UnhandledCount> = by.into_values().collect();
        out.sort_by(|a, b| b.fired.cmp(&a.fired).then(b.count.cmp(&a.count)).then(a.hostname.cmp(&b.hostname)));
        out.truncate(limit);
        out
    }
}

/// Called by [`Coordination::watch_config_changes`]: `Some(key)` when that key changed, `None`
/// when any may have (the watch was (re)established and may have missed messages, or another
/// process wrote the data file).
pub type ConfigChangeFn = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// The answer of [`Coordination::rate_limit_take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateGrant {
    pub granted: u64,
    /// When fewer than wanted were granted: how long until a slot frees.
    pub retry_after: Duration,
}

/// The answer of [`Coordination::breaker_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerPermit {
    /// Closed: deliver.
    Go,
    /// Half-open and this caller holds the single probe: deliver one request.
    Probe,
    /// Open (or another probe is in flight): deliver nothing; ask again after `retry_after`.
    Wait { retry_after: Duration },
}

/// A circuit breaker's state (the original's names and gauge values: 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub fn parse(s: &str) -> Self {
        match s {
            "OPEN" => BreakerState::Open,
            "HALF_OPEN" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::HalfOpen => "HALF_OPEN",
            BreakerState::Open => "OPEN",
        }
    }
}

/// What a batch asks of [`Coordination::admit`]: a breaker `(name, open period)` and a rate
/// limit `(name, limit, window)`, each optional, for `want` slots; a half-open breaker's probe
/// carries at most `probe_size`.
#[derive(Clone, Copy, Debug)]
pub struct AdmitRequest<'a> {
    pub breaker: Option<(&'a str, Duration)>,
    pub rate: Option<(&'a str, u64, Duration)>,
    pub want: u64,
    pub probe_size: u64,
}

/// The outcomes of a delivery for [`Coordination::record_delivery`]: each request's on breaker
/// `name` in order (`true`: success), then `trip` opens it whatever the count.
#[derive(Clone, Copy, Debug)]
pub struct BreakerOutcomes<'a> {
    pub name: &'a str,
    pub successes: &'a [bool],
    pub trip: bool,
    pub threshold: u64,
}

/// The answer of [`Coordination::rate_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit; a slot frees after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// Shared state of every process using the same backend.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// A rate limit shared by every process using this backend: admits the call if fewer than
    /// `limit` were admitted under `name` in the last `window`.
    async fn rate_limit(&self, name: &str, limit: u64, window: Duration) -> Result<RateDecision, QueueError> {
        let grant = self.rate_limit_take(name, limit, window, 1).await?;
        Ok(if grant.granted == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited { retry_after: grant.retry_after }
        })
    }

    /// Takes up to `want` slots of a shared limit at once; grants what is free now.
    async fn rate_limit_take(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
        want: u64,
    ) -> Result<RateGrant, QueueError>;

    /// Asks the shared circuit breaker `name` whether a delivery may go out now.
    async fn breaker_acquire(&self, name: &str, open_for: Duration) -> Result<BreakerPermit, QueueError>;

    /// Records a delivery outcome on breaker `name`; returns the state after it.
    async fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> Result<BreakerState, QueueError>;

    /// The breaker's state and consecutive failure count.
    async fn breaker_state(&self, name: &str) -> Result<(BreakerState, u64), QueueError>;

    /// Which of these event ids were already delivered (recorded by [`Coordination::mark_delivered`]).
    async fn already_delivered(&self, ids: &[String]) -> Result<Vec<bool>, QueueError>;

    /// Records event ids as delivered for `ttl`, so that a redelivered alert is not sent again.
    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError>;

    /// A batch's admission: the breaker's permit (`Go` without one), then the rate limit's
    /// grant for what the permit lets through (all of `want` when closed, up to `probe_size`
    /// for a probe, none while it waits; all of them without a rate limit). Redis does both in
    /// one script.
    async fn admit(&self, req: AdmitRequest<'_>) -> Result<(BreakerPermit, RateGrant), QueueError> {
        let permit = match req.breaker {
            Some((name, open_for)) => self.breaker_acquire(name, open_for).await?,
            None => BreakerPermit::Go,
        };
        let want = match permit {
            BreakerPermit::Go => req.want,
            BreakerPermit::Probe => req.want.min(req.probe_size),
            BreakerPermit::Wait { .. } => 0,
        };
        let grant = match req.rate {
            Some((name, limit, window)) if want > 0 => self.rate_limit_take(name, limit, window, want).await?,
            _ => RateGrant { granted: want, retry_after: Duration::ZERO },
        };
        Ok((permit, grant))
    }

    /// A batch's delivery recorded: the breaker outcomes (if any), then the delivered ids for
    /// `ttl`. Returns the breaker's state after each outcome (and the trip) and its failure
    /// count. Redis does it in one script.
    async fn record_delivery(
        &self,
        breaker: Option<BreakerOutcomes<'_>>,
        delivered: &[String],
        ttl: Duration,
    ) -> Result<(Vec<BreakerState>, u64), QueueError> {
        let mut states = Vec::new();
        let mut failures = 0;
        if let Some(b) = breaker {
            for success in b.successes {
                states.push(self.breaker_record(b.name, *success, b.threshold).await?);
            }
            if b.trip {
                states.push(self.breaker_record(b.name, false, 1).await?);
            }
            if !states.is_empty() {
                failures = self.breaker_state(b.name).await?.1;
            }
        }
        self.mark_delivered(delivered, ttl).await?;
        Ok((states, failures))
    }

    /// When each id's delivered record expires (milliseconds since the epoch; `None`: no live
    /// record). The delivery was `ttl` of [`Coordination::mark_delivered`] before that.
    async fn delivered_until(&self, ids: &[String]) -> Result<Vec<Option<i64>>, QueueError>;

    /// Counts unhandled events per (hostname, message signature) in a window anchored at the
    /// first occurrence; returns, per event, whether it is the one that reached `threshold`
    /// (spec §3.6a). Counting stops for `expiry` after that.
    ///
    /// Keeps an example message per (hostname, signature) for `expiry` too, from
    /// [`UnhandledKey::message`] (the first one of a window; a later one does not replace it),
    /// shown by [`Coordination::unhandled_counts`]. Best effort: failing to keep one is logged
    /// and does not fail the call, whose counting must not be repeated. In the same call so
    /// that the backend decides from the counts it has just made which examples it needs.
    async fn count_unhandled(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError>;

    /// The unhandled-event counters alive now, most frequent first, at most `limit` (the
    /// console's "unhandled events" page). A backend that cannot list them answers none.
    async fn unhandled_counts(&self, limit: usize) -> Result<Vec<UnhandledCount>, QueueError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// Flap suppression: counts each event in its (rule, host) window, opening a window of
    /// `event.window` at the first; answers, per event, whether it is within the threshold
    /// (forward) or past it (suppress). Redis: `mutt:flap:<rule>:<host>` (see `crate::flap`).
    async fn flap_count(&self, events: &[FlapEvent]) -> Result<Vec<FlapVerdict>, QueueError>;

    /// Claims up to `limit` closed flap windows that suppressed events, each for `lease`: a
    /// window is handed to one caller at a time across every process on this backend, and
    /// again once its lease expired unacknowledged (its claimer died before queuing the
    /// summary), so that no summary is lost.
    async fn flap_claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<FlapSummary>, QueueError>;

    /// Settles claimed windows: per window, in one step, queues its summary (if any) on the
    /// alert queue and forgets the window, provided the claim is still the window's latest.
    /// A claim acknowledged before, or taken over after its lease expired, changes nothing, so
    /// a retry after an error is safe and a summary is queued once. Returns summaries queued.
    async fn flap_ack(&self, acks: &[FlapAck]) -> Result<u64, QueueError>;

    /// Reads dynamic configuration values (`mutt:config:<key>` on Redis); `None` when unset.
    async fn config_values(&self, keys: &[&str]) -> Result<Vec<Option<String>>, QueueError>;

    /// Sets a dynamic configuration value and tells listeners (`PUBLISH mutt:config:updates
    /// <key>` on Redis, as the original); returns the value it replaced.
    async fn set_config_value(&self, key: &str, value: &str) -> Result<Option<String>, QueueError>;

    /// Removes a dynamic configuration value, so its readers fall back to their default, and
    /// tells listeners as [`Coordination::set_config_value`] does; returns the value removed.
    async fn delete_config_value(&self, key: &str) -> Result<Option<String>, QueueError>;

    /// Every dynamic configuration value set, sorted by key (Redis: `SCAN MATCH
    /// mutt:config:*` and `MGET`, spec §6.5 [FIX]; keys that are not strings are left out).
    async fn config_entries(&self) -> Result<Vec<(String, String)>, QueueError>;

    /// Calls `on_change` whenever a dynamic configuration value changes, until `stop` is
    /// cancelled (Redis: `SUBSCRIBE mutt:config:updates`, the original's channel, on a
    /// connection of its own; embedded: at once for changes made through this handle, within a
    /// second for another process's). Reconnects by itself; never returns an error.
    async fn watch_config_changes(&self, on_change: ConfigChangeFn, stop: CancellationToken);

    /// Tells running alerters that rules, development hosts or device teams changed. Returns
    /// how many listeners got the message when the backend can tell (Redis: `PUBLISH
    /// mutt:config:reload`); `None` when every change is seen without a message (embedded).
    async fn publish_rules_changed(&self) -> Result<Option<u64>, QueueError>;

    /// Calls `on_change` whenever rules change elsewhere, until `stop` is cancelled.
    /// Reconnects by itself; never returns an error.
    async fn watch_rules_changed(&self, on_change: Box<dyn Fn() + Send + Sync>, stop: CancellationToken);
}

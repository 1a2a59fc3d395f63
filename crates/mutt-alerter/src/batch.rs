//! One batch, from lease to settle.

use crate::dynamic::{DynamicSettings, ShedMode};
use crate::timings::{Phase, Stopwatch};
use crate::{Alerter, AlerterError};
use mutt_core::alert::unhandled_signature;
use mutt_core::{Alert, Decision, Event, EventFields, QueuedEvent, RuleSet, decide};
use mutt_queue::log_ids::{BatchFailure, MessageIds, first_event_ids, join_ids};
use mutt_queue::{Lease, QueueId, RetryOutcome, RetryPolicy, Settlement, UnhandledKey, WorkerRole};
use mutt_service::Backoff;
use mutt_store::{AuditRecord, MAX_HOSTNAME_LEN, StoreError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Nothing arrived within the block timeout.
    Empty,
    Processed {
        events: usize,
        handled: usize,
        unhandled: usize,
        /// Audit rows that were new (a redelivered event inserts none).
        audited: u64,
        alerts: usize,
        dead_lettered: usize,
        /// Events whose audit row the database refused (not an outage), queued again with
        /// `_retry_count` raised (those whose retries were spent count as dead-lettered).
        retried: usize,
    },
    /// Shutdown came while a dependency was down: the lease was handed back unprocessed.
    HandedBack,
    /// Backpressure (alert queue above the shed threshold, mode `dlq`): events dead-lettered
    /// unprocessed, to be replayed later.
    Shed(usize),
    /// Backpressure in mode `defer`: paused without leasing.
    Deferred,
}

impl BatchOutcome {
    /// Events this batch processed from a lease (0 when it leased nothing or shed).
    pub fn events(&self) -> usize {
        match self {
            BatchOutcome::Processed { events, .. } => *events,
            _ => 0,
        }
    }
}

/// `fut`'s output and how long it took.
async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = fut.await;
    (out, started.elapsed())
}

/// What was decided for one leased event.
struct Item<'a> {
    raw: &'a [u8],
    audit: Option<AuditRecord>,
    alert: Option<Vec<u8>>,
    dead: Option<(&'static str, String)>,
    handled: bool,
    /// Unhandled events, kept for the meta-alert count.
    unhandled: Option<QueuedEvent<'a>>,
}

impl<'a> Item<'a> {
    fn dead(raw: &'a [u8], reason: &'static str, error: String) -> Self {
        Self { raw, audit: None, alert: None, dead: Some((reason, error)), handled: false, unhandled: None }
    }
}

/// The correlation and event ids of a queued event, for log lines about it: the event id is
/// the one its audit row and alert carry (derived for an event queued without one), and
/// "unknown" where the message is unreadable. Parses the message again: failure paths only.
fn ids_of(raw: &[u8]) -> (String, String) {
    match Event::from_slice(raw) {
        Ok(e) => (e.correlation_id().to_owned(), e.event_id().to_string()),
        Err(_) => {
            let ids = MessageIds::of(raw);
            (ids.correlation_id().to_owned(), ids.event_id().to_owned())
        }
    }
}

/// The audit write of one batch: rows that were new, and the items whose row the database
/// refused for a reason other than an outage, with its message.
struct AuditWrite {
    inserted: u64,
    refused: Vec<(usize, String)>,
}

/// A batch's audit rows, taken out of its items, and the item each row belongs to.
struct AuditRows {
    rows: Vec<AuditRecord>,
    owners: Vec<usize>,
}

/// How the items of a batch were settled.
#[derive(Default)]
struct Tally {
    handled: usize,
    unhandled: usize,
    dead: usize,
    retried: usize,
}

impl Alerter {
    /// Leases one batch and processes it to the end (settled, or handed back at shutdown).
    pub async fn process_one_batch(&mut self, shutdown: &CancellationToken) -> Result<BatchOutcome, AlerterError> {
        self.step(shutdown).await.map_err(|f| f.error)
    }

    /// [`Self::process_one_batch`], saying which batch failed.
    pub(crate) async fn step(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<BatchOutcome, BatchFailure<AlerterError>> {
        let mut clock = Stopwatch::start();
        let settings = self.dynamic.get(self.coordination.as_ref()).await;
        if let Some(outcome) = self.backpressure(&settings).await.map_err(BatchFailure::unleased)? {
            return Ok(outcome);
        }
        clock.lap(&self.timings, Phase::Checks);
        let leased = self.consumer.lease(self.config.batch_size, self.config.block_timeout).await;
        clock.lap(&self.timings, Phase::Lease);
        let Some(lease) = leased.map_err(BatchFailure::unleased)? else {
            self.set_leased(0);
            return Ok(BatchOutcome::Empty);
        };
        self.backlog.lease_taken(lease.len(), self.config.batch_size);
        self.timings.batch(lease.len());
        self.process_lease(&lease, &settings, clock, shutdown).await.map_err(|e| BatchFailure::of(e, &lease))
    }

    /// Decides, audits, counts the unhandled events of and settles a leased batch.
    async fn process_lease(
        &mut self,
        lease: &Lease,
        settings: &DynamicSettings,
        mut clock: Stopwatch,
        shutdown: &CancellationToken,
    ) -> Result<BatchOutcome, AlerterError> {
        self.set_leased(lease.len());
        let started = Instant::now();
        // After the lease, so that an event queued after a rule change commits meets the new rules.
        self.rules.refresh_if_changed(self.store.as_ref(), &self.metrics).await;
        let rules = self.rules.current();
        clock.lap(&self.timings, Phase::Rules);
        let mut items: Vec<Item> = lease.messages.iter().map(|raw| self.decide_one(raw, &rules)).collect();
        clock.lap(&self.timings, Phase::Decide);
        // Before the audit write: a suppressed event's row says so.
        let flaps = items.iter_mut().filter_map(|i| {
            Some(crate::flap::FlapCandidate { raw: i.raw, audit: i.audit.as_mut()?, alert: &mut i.alert })
        });
        if !self.suppress_flaps(flaps.collect(), &rules, shutdown).await {
            return self.hand_back(lease, "Redis").await;
        }
        clock.lap(&self.timings, Phase::Flaps);

        // Unhandled events have no audit row, so counting them overlaps the audit write and its
        // commit; nothing is settled (acknowledged) before both are done.
        let rows = Self::take_rows(&mut items);
        let (audit, (meta_alerts, counting)) = tokio::join!(
            self.write_audit(&rows, shutdown),
            timed(self.meta_alerts(&items, &rules, settings, shutdown))
        );
        clock.lap(&self.timings, Phase::Audit);
        self.timings.add(Phase::Unhandled, counting);
        let (Some(audit), Some(meta_alerts)) = (audit, meta_alerts) else {
            return self.hand_back(lease, "the database or Redis").await;
        };
        Self::forget_refused(&mut items, &audit.refused);

        let (settlement, tally) = self.settlement(&mut items, &meta_alerts, &audit.refused);
        self.settle(lease, &settlement, shutdown).await?;
        clock.lap(&self.timings, Phase::Settle);

        self.metrics.unhandled_meta_alerts.inc_by(meta_alerts.len() as u64);
        self.metrics.processed("handled", tally.handled as u64);
        self.metrics.processed("unhandled", tally.unhandled as u64);
        self.metrics.processed("error", tally.retried as u64);
        self.metrics.processed("poison", tally.dead as u64);
        self.metrics.alerts_forwarded.inc_by(settlement.emitted() as u64);
        self.set_leased(0);
        let per_event = started.elapsed().as_secs_f64() / lease.len().max(1) as f64;
        self.metrics.processing_latency.observe(per_event);
        Ok(BatchOutcome::Processed {
            events: lease.len(),
            handled: tally.handled,
            unhandled: tally.unhandled,
            audited: audit.inserted,
            alerts: settlement.emitted(),
            dead_lettered: tally.dead,
            retried: tally.retried,
        })
    }

    /// A queue error between lease and settle: the lease goes back to the queue now instead of
    /// sitting in this live worker's processing list; if that fails too, the next lease hands
    /// it back first.
    async fn release_after_error(&mut self, lease: &Lease) {
        let event_ids = first_event_ids(&lease.messages);
        match self.consumer.release().await {
            Ok(moved) => tracing::warn!(moved, events = lease.len(), event_ids, "handed the batch back after an error"),
            Err(e) => {
                tracing::warn!(error = %e, events = lease.len(), event_ids, "could not hand the batch back yet (the next lease does it first)")
            }
        }
    }

    /// Shutdown came while `what` was unreachable: the lease goes back to the queue whole.
    async fn hand_back(&mut self, lease: &Lease, what: &str) -> Result<BatchOutcome, AlerterError> {
        let moved = self.consumer.release().await?;
        let event_ids = first_event_ids(&lease.messages);
        tracing::info!(
            moved,
            events = lease.len(),
            event_ids,
            "shutdown while {what} was unreachable: batch handed back"
        );
        Ok(BatchOutcome::HandedBack)
    }

    /// The batch's settlement: meta-alerts and alerts emitted, dead letters, and for each
    /// event whose audit row the database refused a retry (a dead letter once its retries are
    /// spent).
    fn settlement(
        &self,
        items: &mut [Item<'_>],
        meta_alerts: &[Alert],
        refused: &[(usize, String)],
    ) -> (Settlement, Tally) {
        let mut settlement = Settlement::new();
        for alert in meta_alerts {
            settlement.emit(alert.to_json().into_bytes());
        }
        let mut why: Vec<Option<&str>> = vec![None; items.len()];
        for (n, error) in refused {
            why[*n] = Some(error);
        }
        let mut tally = Tally::default();
        for (item, why) in items.iter_mut().zip(why) {
            if let Some(error) = why {
                self.retry_refused(&mut settlement, item.raw, error, &mut tally);
                continue;
            }
            if let Some((reason, error)) = &item.dead {
                let (correlation_id, event_id) = ids_of(item.raw);
                tracing::warn!(correlation_id, event_id, reason, error = %error, "event dead-lettered");
                settlement.dead_letter(item.raw, reason, error);
                tally.dead += 1;
                continue;
            }
            if item.handled {
                tally.handled += 1;
            } else {
                tally.unhandled += 1;
            }
            if let Some(alert) = item.alert.take() {
                settlement.emit(alert);
            }
        }
        (settlement, tally)
    }

    /// Counts a failed attempt on an event whose audit row the database refused (spec §4.9:
    /// `_retry_count`, `ALERTER_MAX_RETRIES`): queued again after a delay that doubles with
    /// each attempt, or dead-lettered with the database's message once its retries are spent.
    fn retry_refused(&self, settlement: &mut Settlement, raw: &[u8], error: &str, tally: &mut Tally) {
        let field = WorkerRole::Alerter.retry_field();
        let policy = RetryPolicy { field, max_retries: self.config.max_retries };
        let done = serde_json::from_slice::<serde_json::Value>(raw).ok().and_then(|v| v.get(field)?.as_u64());
        let delay =
            Duration::from_millis(500).saturating_mul(1 << done.unwrap_or(0).min(16)).min(self.config.max_backoff);
        let error = format!("audit write failed: {error}");
        let (correlation_id, event_id) = ids_of(raw);
        match settlement.retry(policy, raw, delay, &error) {
            RetryOutcome::Retried { attempt } => {
                tally.retried += 1;
                tracing::warn!(correlation_id, event_id, attempt, retry_in_ms = delay.as_millis() as u64, error = %error, "audit row refused; event retried");
            }
            RetryOutcome::DeadLettered => {
                tally.dead += 1;
                tracing::warn!(correlation_id, event_id, error = %error, "audit row refused and retries spent; event dead-lettered");
            }
        }
    }

    /// Alert-queue backpressure (spec §4.10): above the shed threshold, dead-letter a batch of
    /// the oldest events unprocessed (`dlq`) or pause (`defer`).
    async fn backpressure(&mut self, settings: &DynamicSettings) -> Result<Option<BatchOutcome>, AlerterError> {
        let Ok(depth) = self.queue.depth(QueueId::Alert).await else {
            return Ok(None); // unreachable Redis shows up at lease time
        };
        self.alert_queue_depth.set(depth as i64);
        if depth > settings.shed_threshold {
            let reason = format!("queue_depth_exceeded:{depth}>{}", settings.shed_threshold);
            match settings.shed_mode {
                ShedMode::DeadLetter => {
                    let mut shed = 0;
                    if let Some(lease) = self.consumer.lease(self.config.batch_size, Duration::from_millis(50)).await? {
                        let mut s = Settlement::new();
                        for raw in &lease.messages {
                            s.dead_letter(raw, "shed", &reason);
                        }
                        if let Err(e) = self.consumer.settle(&lease, &s).await {
                            self.release_after_error(&lease).await;
                            return Err(e.into());
                        }
                        shed = lease.len();
                        self.metrics
                            .shed_events
                            .get_or_create(&crate::metrics::ModeLabel { mode: "dlq" })
                            .inc_by(shed as u64);
                        let event_ids = first_event_ids(&lease.messages);
                        tracing::warn!(shed, event_ids, reason = %reason, "backpressure: events moved to the alerter DLQ");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Ok(Some(BatchOutcome::Shed(shed)));
                }
                ShedMode::Defer => {
                    self.metrics.shed_events.get_or_create(&crate::metrics::ModeLabel { mode: "defer" }).inc();
                    tokio::time::sleep(settings.defer_sleep + Duration::from_millis(50)).await;
                    return Ok(Some(BatchOutcome::Deferred));
                }
                ShedMode::Off => {}
            }
        } else if depth > settings.warn_threshold
            && self.warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            self.warned_at = Some(std::time::Instant::now());
            tracing::warn!(depth, threshold = settings.warn_threshold, "alert queue above the warning threshold");
        }
        Ok(None)
    }

    /// Counts the batch's unhandled events (one script call; it keeps the console's examples
    /// too) and builds the meta-alerts of those that reached the threshold. Waits while Redis is unreachable; `None` if shutdown
    /// came first.
    async fn meta_alerts(
        &self,
        items: &[Item<'_>],
        rules: &RuleSet,
        settings: &DynamicSettings,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Alert>> {
        let events: Vec<(&[u8], &QueuedEvent)> =
            items.iter().filter_map(|i| Some((i.raw, i.unhandled.as_ref()?))).collect();
        if events.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<UnhandledKey> = events
            .iter()
            .map(|(_, e)| {
                let message = e.message().unwrap_or_default();
                let signature = unhandled_signature(message);
                UnhandledKey::new(e.hostname().unwrap_or_default(), signature, e.event_id().to_string(), message)
            })
            .collect();
        let mut backoff = Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        let fired = loop {
            match self
                .coordination
                .count_unhandled(&keys, settings.unhandled_threshold, settings.unhandled_expiry)
                .await
            {
                Ok(f) => break f,
                Err(e) => {
                    let wait = backoff.next_delay();
                    let event_ids = join_ids(keys.iter().map(|k| k.event_id.as_str()));
                    tracing::error!(error = %e, events = keys.len(), event_ids, retry_in_ms = wait.as_millis() as u64, "counting unhandled events failed; retrying");
                    if !mutt_service::sleep_or_shutdown(wait, shutdown).await {
                        return None;
                    }
                }
            }
        };
        let teams = rules.device_teams();
        Some(
            events
                .iter()
                .zip(fired)
                .filter(|(_, f)| *f)
                .filter_map(|((raw, e), _)| {
                    // The meta-alert carries the whole event in `raw_json`: read into a map here,
                    // for the few events that fire (it read as a map when it was decided).
                    let whole = match Event::from_slice(raw) {
                        Ok(whole) => whole,
                        Err(error) => {
                            tracing::error!(event_id = %e.event_id(), error = %error, "unhandled meta-alert not sent: the event no longer reads as a map");
                            return None;
                        }
                    };
                    let team = e
                        .hostname()
                        .and_then(|h| teams.get(h))
                        .map(String::as_str)
                        .unwrap_or(&self.config.unhandled_default_team);
                    let alert = Alert::unhandled_meta(
                        &whole,
                        team,
                        settings.unhandled_threshold,
                        settings.unhandled_expiry.as_secs(),
                    );
                    // The meta-alert's own id (what the forwarder's lines name), and the event's.
                    tracing::warn!(
                        correlation_id = %alert.correlation_id,
                        event_id = %alert.event_id,
                        trigger_event_id = %e.event_id(),
                        hostname = e.hostname().unwrap_or_default(),
                        team,
                        "unhandled meta-alert"
                    );
                    Some(alert)
                })
                .collect(),
        )
    }

    fn decide_one<'a>(&self, raw: &'a [u8], rules: &RuleSet) -> Item<'a> {
        // The fields deciding reads, borrowed from the message (no map per event).
        let event = match QueuedEvent::read(raw, &self.config.required_fields) {
            Ok(e) => e,
            Err(e) => return Item::dead(raw, "invalid_event", e.to_string()),
        };
        // A count left by the original alerter, or kept by a hand replay from the DLQ: its
        // retries are spent, so it is dead-lettered unprocessed and unaudited (spec §4.3).
        let retries = event.retry_count();
        if retries > u64::from(self.config.max_retries) {
            let max = self.config.max_retries;
            let error = format!("arrived with _retry_count {retries}, above ALERTER_MAX_RETRIES ({max})");
            return Item::dead(raw, "retries_exhausted", error);
        }
        if let Err(e) = event.missing_field() {
            return Item::dead(raw, "missing_field", e.to_string());
        }
        match decide(rules, &event) {
            Decision::Unhandled => {
                // Debug only: an info line per event would cost on the hot path.
                tracing::debug!(correlation_id = event.correlation_id(), event_id = %event.event_id(), "event unhandled");
                Item { raw, audit: None, alert: None, dead: None, handled: false, unhandled: Some(event) }
            }
            Decision::Handled { rule, handling, forward, .. } => {
                tracing::debug!(
                    correlation_id = event.correlation_id(),
                    event_id = %event.event_id(),
                    rule_id = rule.id,
                    handling,
                    forward,
                    "event handled"
                );
                let event_timestamp = match event.timestamp() {
                    Ok(t) => t,
                    Err(e) => return Item::dead(raw, "bad_timestamp", e.to_string()),
                };
                let hostname = event.hostname().unwrap_or_default();
                if hostname.len() > MAX_HOSTNAME_LEN || hostname.contains('\0') {
                    return Item::dead(
                        raw,
                        "invalid_hostname",
                        format!("hostname is longer than {MAX_HOSTNAME_LEN} bytes or contains NUL"),
                    );
                }
                // Only an alert can be held back: audit-only events are never "silenced".
                let silenced_by = if forward { self.silences.silenced_by(&event, rule) } else { None };
                let forward = forward && silenced_by.is_none();
                let event_id = event.event_id();
                let audit = AuditRecord {
                    event_id,
                    event_timestamp,
                    hostname: hostname.to_owned(),
                    matched_rule_id: rule.id,
                    handling_decision: handling.to_owned(),
                    forwarded_to_moog: forward,
                    // The event parsed, so its bytes are UTF-8: validating them is a fast pass,
                    // where `from_utf8_lossy` walks them chunk by chunk (5 % of the alerter).
                    raw_message: match std::str::from_utf8(raw) {
                        Ok(text) => text.to_owned(),
                        Err(_) => String::from_utf8_lossy(raw).into_owned(),
                    },
                    flap_suppressed: false,
                    silenced_by,
                };
                let alert = forward.then(|| crate::payload::handled_alert(raw, &event, rule, handling));
                Item { raw, audit: Some(audit), alert, dead: None, handled: true, unhandled: None }
            }
        }
    }

    /// Takes the batch's audit rows out of its items: the rows, and the item of each row.
    fn take_rows(items: &mut [Item<'_>]) -> AuditRows {
        let (mut rows, mut owners) = (Vec::with_capacity(items.len()), Vec::with_capacity(items.len()));
        for (n, item) in items.iter_mut().enumerate() {
            if let Some(row) = item.audit.take() {
                rows.push(row);
                owners.push(n);
            }
        }
        AuditRows { rows, owners }
    }

    /// Writes the batch's audit rows in one statement. While the database is unavailable (an
    /// outage: [`StoreError::is_unavailable`]) it waits and retries, the batch stays leased and
    /// nothing is counted against its events. When the database refuses the statement for any
    /// other reason (a constraint, a trigger, permissions), the rows are split in halves until
    /// the refused ones are found; the others are written. `refused` names the items (not the
    /// rows) whose row was refused. `None` if shutdown came first.
    async fn write_audit(&self, audit: &AuditRows, shutdown: &CancellationToken) -> Option<AuditWrite> {
        let mut pending: Vec<std::ops::Range<usize>> = Vec::new();
        pending.push(0..audit.rows.len());
        let mut done = AuditWrite { inserted: 0, refused: Vec::new() };
        while let Some(group) = pending.pop() {
            if group.is_empty() {
                continue;
            }
            let rows = &audit.rows[group.clone()];
            match self.write_rows(rows, shutdown).await? {
                Ok(inserted) => done.inserted += inserted,
                Err(e) if group.len() == 1 => done.refused.push((audit.owners[group.start], e.to_string())),
                Err(e) => {
                    let event_ids = join_ids(rows.iter().map(|r| r.event_id.to_string()));
                    tracing::warn!(rows = group.len(), event_ids, error = %e, "audit rows refused; splitting them to find the refused ones");
                    let middle = group.start + group.len() / 2;
                    pending.push(middle..group.end);
                    pending.push(group.start..middle);
                }
            }
        }
        Some(done)
    }

    /// Refused items lose their alert and count as neither handled nor unhandled.
    fn forget_refused(items: &mut [Item<'_>], refused: &[(usize, String)]) {
        for (n, _) in refused {
            let item = &mut items[*n];
            item.alert = None;
            item.handled = false;
        }
    }

    /// One audit statement, repeated while the database is unavailable: the database's answer
    /// otherwise, or `None` if shutdown came first.
    async fn write_rows(&self, rows: &[AuditRecord], shutdown: &CancellationToken) -> Option<Result<u64, StoreError>> {
        let mut backoff = Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        loop {
            let started = Instant::now();
            match self.store.write_audit(rows).await {
                Ok(inserted) => {
                    self.metrics.db_write_latency_ms.observe(started.elapsed().as_secs_f64() * 1000.0);
                    return Some(Ok(inserted));
                }
                Err(e) if e.is_unavailable() => {
                    let wait = backoff.next_delay();
                    let event_ids = join_ids(rows.iter().map(|r| r.event_id.to_string()));
                    tracing::error!(error = %e, rows = rows.len(), event_ids, retry_in_ms = wait.as_millis() as u64, "audit write failed: database unavailable; batch stays leased");
                    if !mutt_service::sleep_or_shutdown(wait, shutdown).await {
                        return None;
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Settles, retrying while Redis is unreachable (settle is idempotent) until a stop request.
    async fn settle(
        &mut self,
        lease: &Lease,
        s: &Settlement,
        shutdown: &CancellationToken,
    ) -> Result<(), AlerterError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        loop {
            match self.consumer.settle(lease, s).await {
                Ok(()) => return Ok(()),
                Err(e) if shutdown.is_cancelled() => return Err(e.into()),
                Err(e) => {
                    let wait = backoff.next_delay();
                    let event_ids = first_event_ids(&lease.messages);
                    tracing::error!(error = %e, events = lease.len(), event_ids, retry_in_ms = wait.as_millis() as u64, "settle failed; retrying");
                    // A stop request ends the wait: one more attempt, then the lease is left to a janitor.
                    mutt_service::sleep_or_shutdown(wait, shutdown).await;
                }
            }
        }
    }
}

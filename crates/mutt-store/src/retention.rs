//! Retention: trims the audit trail and the config audit to their configured age, from inside
//! a long-running process (the original ran separate daily jobs, spec §9.3; a small site on
//! the embedded file has no cron job, and its disk would fill), or once from `muttd retention`.
//!
//! One run ([`run_at`]):
//! 1. `event_audit_log`: whole partitions whose month has expired are dropped (PostgreSQL;
//!    their rows first copied to `event_audit_log_archive` when an archive is kept); what is
//!    left older than the cutoff (the month straddling it, the DEFAULT partition, SQLite) is
//!    deleted, or moved to the archive, in chunks.
//! 2. `event_audit_log_archive`: rows older than the archive's years (× 365 days) are deleted.
//! 3. `config_audit_log`: rows older than their days are deleted in chunks, as the original.
//!
//! Each step runs on its own; a failed step is counted in `mutt_retention_errors_total{task}`
//! and the others still run. A dry run counts what each step would remove and changes nothing.
//!
//! Metrics keep the original's names (both of its jobs): see [`RetentionMetrics`].

use crate::partitions::{AuditLifecycle, CountedTable, PartitionInfo, expired_partitions};
use crate::{RetainedTable, Store, StoreError};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long each audit trail is kept, and how the trimming runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `event_audit_log` rows older than this (by event time) are removed.
    pub event_audit_days: u32,
    /// `config_audit_log` rows older than this (by change time) are deleted.
    pub config_audit_days: u32,
    /// Keep an archive (`EVENT_ARCHIVE_RETENTION_YEARS`): expired audit rows move to
    /// `event_audit_log_archive`, kept this many years (× 365 days) by event time. `None`:
    /// expired rows are deleted.
    pub archive_years: Option<u32>,
    /// Rows per statement.
    pub batch_size: u32,
    /// Time between runs (the first runs at start); at least a minute.
    pub interval: Duration,
    /// Count and log what would be removed, remove nothing (`RETENTION_DRY_RUN`).
    pub dry_run: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            event_audit_days: 90,
            config_audit_days: 365,
            archive_years: None,
            batch_size: 1000,
            interval: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

/// The steps of a run; their names are the `task` label of `mutt_retention_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Expired partitions dropped whole (PostgreSQL).
    DropPartitions,
    /// Expired audit rows deleted or archived in chunks.
    EventAudit,
    /// Expired archive rows deleted.
    Archive,
    /// Expired config audit rows deleted.
    ConfigAudit,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Step::DropPartitions => "partitions",
            Step::EventAudit => "event_audit",
            Step::Archive => "archive",
            Step::ConfigAudit => "config_audit",
        }
    }
}

/// Told how a run advances (the CLI draws a progress bar; the job needs nothing).
pub trait Progress: Send + Sync {
    /// Whether totals are wanted: counting rows first costs a scan, worth it for a person
    /// watching, not for the job.
    fn wants_totals(&self) -> bool {
        false
    }
    /// A step begins, with the rows it will remove when known.
    fn start(&self, _step: Step, _total: Option<u64>) {}
    /// `n` more rows done.
    fn advance(&self, _n: u64) {}
    /// The step is over.
    fn finish(&self, _step: Step) {}
}

/// No progress reporting.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a run removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    /// Audit rows older than this were removed.
    pub event_cutoff: Option<DateTime<Utc>>,
    /// Partitions dropped whole (row counts are what they held; `None` in a dry run of the job).
    pub partitions_dropped: Vec<PartitionInfo>,
    /// Rows removed from `event_audit_log` (dropped partitions and chunks together).
    pub event_rows: u64,
    /// Of those, the rows copied into `event_audit_log_archive` first.
    pub events_archived: u64,
    pub archive_cutoff: Option<DateTime<Utc>>,
    /// Rows deleted from `event_audit_log_archive`.
    pub archive_rows_deleted: u64,
    pub config_cutoff: Option<DateTime<Utc>>,
    /// Rows deleted from `config_audit_log`.
    pub config_rows: u64,
    /// The steps that failed, with why.
    pub errors: Vec<(String, String)>,
}

/// The `type` label of `mutt_retention_cleanup_records_deleted_total` and
/// `mutt_retention_policy_days` (public so that the DLQ trimming can count in the same families
/// when it runs in the same process: one registry must not hold a name twice).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: &'static str,
}

/// The original's retention metrics (spec §9.3), of `retention_cleanup.py` and
/// `retention_policy_enforcer.py` both:
/// - `mutt_retention_cleanup_records_deleted_total{type="event_audit"|"config_audit"}`: rows
///   removed from each table;
/// - `mutt_retention_policy_days{type}`: the configured days (`archive`: years × 365);
/// - `mutt_retention_cleanup_last_run_timestamp_seconds`, `mutt_retention_last_run_timestamp`:
///   when the last run ended (Unix seconds);
/// - `mutt_retention_events_archived_total`: audit rows moved to the archive;
/// - `mutt_retention_events_deleted_total`: audit rows deleted for good (expired rows without
///   an archive, and expired archive rows);
/// - `mutt_retention_config_audits_deleted_total`;
/// - `mutt_retention_errors_total{task}`: failed steps;
/// - `mutt_retention_enforcement_duration_seconds`: how long the last run took.
#[derive(Clone, Debug, Default)]
pub struct RetentionMetrics {
    deleted: Family<TypeLabel, Counter>,
    policy_days: Family<TypeLabel, Gauge>,
    cleanup_last_run: Gauge,
    last_run: Gauge,
    archived: Counter,
    events_deleted: Counter,
    config_deleted: Counter,
    errors: Family<TaskLabel, Counter>,
    duration: Gauge<f64, AtomicU64>,
}

/// Name and help of `mutt_retention_cleanup_records_deleted_total{type}`, shared with the DLQ
/// trimming (prometheus-client appends `_total`).
pub const DELETED_METRIC: (&str, &str) =
    ("mutt_retention_cleanup_records_deleted", "Rows deleted by retention, by type");
/// Name and help of `mutt_retention_policy_days{type}`, shared with the DLQ trimming.
pub const POLICY_DAYS_METRIC: (&str, &str) = ("mutt_retention_policy_days", "Configured retention, in days, by type");

impl RetentionMetrics {
    /// Metrics that count in `deleted` and `policy_days` ([`DELETED_METRIC`],
    /// [`POLICY_DAYS_METRIC`]) registered elsewhere: another part of the process (the DLQ
    /// trimming) counts `type="dlq"` in the same families. Register the rest with
    /// [`RetentionMetrics::register_own`].
    pub fn with_type_families(deleted: Family<TypeLabel, Counter>, policy_days: Family<TypeLabel, Gauge>) -> Self {
        Self { deleted, policy_days, ..Self::default() }
    }

    /// Adds the metrics to `registry` (prometheus-client appends `_total` to counters).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(DELETED_METRIC.0, DELETED_METRIC.1, self.deleted.clone());
        registry.register(POLICY_DAYS_METRIC.0, POLICY_DAYS_METRIC.1, self.policy_days.clone());
        self.register_own(registry);
    }

    /// Adds all but the two shared families to `registry`.
    pub fn register_own(&self, registry: &mut Registry) {
        registry.register(
            "mutt_retention_cleanup_last_run_timestamp_seconds",
            "When the last retention run ended",
            self.cleanup_last_run.clone(),
        );
        registry.register(
            "mutt_retention_last_run_timestamp",
            "When the last retention run ended",
            self.last_run.clone(),
        );
        registry.register(
            "mutt_retention_events_archived",
            "Audit rows moved to event_audit_log_archive",
            self.archived.clone(),
        );
        registry.register(
            "mutt_retention_events_deleted",
            "Audit rows deleted for good (without an archive, or from the archive)",
            self.events_deleted.clone(),
        );
        registry.register(
            "mutt_retention_config_audits_deleted",
            "config_audit_log rows deleted",
            self.config_deleted.clone(),
        );
        registry.register("mutt_retention_errors", "Failed retention steps, by task", self.errors.clone());
        registry.register(
            "mutt_retention_enforcement_duration_seconds",
            "How long the last retention run took",
            self.duration.clone(),
        );
    }

    /// The families shared with the DLQ trimming (`type="dlq"`): rows deleted, policy days.
    pub fn type_families(&self) -> (Family<TypeLabel, Counter>, Family<TypeLabel, Gauge>) {
        (self.deleted.clone(), self.policy_days.clone())
    }

    /// Rows deleted from `table` so far.
    pub fn deleted(&self, table: RetainedTable) -> u64 {
        self.deleted.get_or_create(&TypeLabel { r#type: table.label() }).get()
    }

    /// Audit rows moved to the archive so far.
    pub fn archived(&self) -> u64 {
        self.archived.get()
    }

    /// Failed runs of `step` so far.
    pub fn errors(&self, step: Step) -> u64 {
        self.errors.get_or_create(&TaskLabel { task: step.label() }).get()
    }

    /// Counts one run done outside [`spawn`] (`muttd retention`, for a textfile collector).
    pub fn observe(&self, cfg: &RetentionConfig, report: &RetentionReport, took: Duration, ended: DateTime<Utc>) {
        self.prepare(cfg);
        self.record(report, took, ended);
    }

    fn prepare(&self, cfg: &RetentionConfig) {
        // Created before the first run: every series shows from the start, at 0.
        for t in [RetainedTable::EventAudit, RetainedTable::ConfigAudit] {
            let _ = self.deleted.get_or_create(&TypeLabel { r#type: t.label() });
        }
        for s in [Step::DropPartitions, Step::EventAudit, Step::Archive, Step::ConfigAudit] {
            let _ = self.errors.get_or_create(&TaskLabel { task: s.label() });
        }
        let days = |t, d: u32| self.policy_days.get_or_create(&TypeLabel { r#type: t }).set(i64::from(d));
        days("event_audit", cfg.event_audit_days);
        days("config_audit", cfg.config_audit_days);
        if let Some(y) = cfg.archive_years {
            days("archive", y.saturating_mul(365));
        }
    }

    fn record(&self, report: &RetentionReport, took: Duration, ended: DateTime<Utc>) {
        if !report.dry_run {
            let add = |t: RetainedTable, n| self.deleted.get_or_create(&TypeLabel { r#type: t.label() }).inc_by(n);
            add(RetainedTable::EventAudit, report.event_rows);
            add(RetainedTable::ConfigAudit, report.config_rows);
            self.archived.inc_by(report.events_archived);
            self.events_deleted.inc_by(report.event_rows - report.events_archived + report.archive_rows_deleted);
            self.config_deleted.inc_by(report.config_rows);
        }
        for (task, _) in &report.errors {
            let step = [Step::DropPartitions, Step::EventAudit, Step::Archive, Step::ConfigAudit]
                .into_iter()
                .find(|s| s.label() == task);
            if let Some(s) = step {
                self.errors.get_or_create(&TaskLabel { task: s.label() }).inc();
            }
        }
        self.cleanup_last_run.set(ended.timestamp());
        self.last_run.set(ended.timestamp());
        self.duration.set(took.as_secs_f64());
    }
}

/// Runs retention now and then every `cfg.interval` until `stop`.
pub fn spawn(
    store: Arc<dyn Store>,
    cfg: RetentionConfig,
    metrics: RetentionMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    spawn_after(Duration::ZERO, store, cfg, metrics, stop)
}

/// [`spawn`], with the first run `delay` after the start: a process that starts with a
/// backlog works on it first, and one that restarts in a loop does not run retention each time.
pub fn spawn_after(
    delay: Duration,
    store: Arc<dyn Store>,
    cfg: RetentionConfig,
    metrics: RetentionMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    metrics.prepare(&cfg);
    let interval = cfg.interval;
    let read: ReadSettings = Arc::new(move || {
        let cfg = cfg.clone();
        Box::pin(async move { Some(cfg) })
    });
    spawn_reading(delay, store, interval, read, metrics, stop)
}

/// The settings of one run, read at its start (the original's enforcer read its dynamic
/// policies at each run); `None` skips the run (enforcement switched off).
pub type ReadSettings =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<RetentionConfig>> + Send>> + Send + Sync>;

/// [`spawn_after`], with each run's settings from `read` and a run every `interval` (at least
/// a minute).
pub fn spawn_reading(
    delay: Duration,
    store: Arc<dyn Store>,
    interval: Duration,
    read: ReadSettings,
    metrics: RetentionMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = interval.max(Duration::from_secs(60));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        loop {
            match read().await {
                Some(cfg) => {
                    // The policy gauges show the days of this run (they may change between runs).
                    metrics.prepare(&cfg);
                    let began = Instant::now();
                    let report = run_at(store.as_ref(), &cfg, Utc::now(), &NoProgress, &stop).await;
                    metrics.record(&report, began.elapsed(), Utc::now());
                    log_report(&report);
                }
                None => tracing::debug!("retention enforcement is off: run skipped"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

fn log_report(r: &RetentionReport) {
    let verb = if r.dry_run { "retention dry run: would remove" } else { "retention: removed" };
    if r.event_rows + r.archive_rows_deleted + r.config_rows > 0 {
        tracing::info!(
            partitions = r.partitions_dropped.len(),
            event_audit = r.event_rows,
            archived = r.events_archived,
            archive = r.archive_rows_deleted,
            config_audit = r.config_rows,
            "{verb} expired rows"
        );
    }
    for (task, error) in &r.errors {
        tracing::warn!(task, error, "retention step failed; the next run retries");
    }
}

/// One run at time `now` (every step; see the module documentation).
pub async fn run_at(
    store: &dyn Store,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
    progress: &dyn Progress,
    stop: &CancellationToken,
) -> RetentionReport {
    let days = |d: u32| chrono::Duration::days(i64::from(d.max(1)));
    let mut r = RetentionReport { dry_run: cfg.dry_run, ..Default::default() };
    let chunk = cfg.batch_size.clamp(1, 100_000);
    let archive = cfg.archive_years.is_some();
    let lc: &dyn AuditLifecycle = store;

    let cutoff = now - days(cfg.event_audit_days);
    let opts = RemoveEvents { archive, chunk, dry_run: cfg.dry_run };
    remove_events_before(store, cutoff, opts, progress, stop, &mut r).await;

    if let Some(years) = cfg.archive_years {
        let cutoff = now - days(years.max(1).saturating_mul(365));
        r.archive_cutoff = Some(cutoff);
        let res = if cfg.dry_run {
            lc.count_older_than(CountedTable::Archive, cutoff).await
        } else {
            progress.start(Step::Archive, None);
            let n = in_chunks(progress, stop, chunk, || lc.delete_archive_older_than(cutoff, chunk)).await;
            progress.finish(Step::Archive);
            n
        };
        match res {
            Ok(n) => r.archive_rows_deleted = n,
            Err(e) => r.errors.push((Step::Archive.label().into(), e.to_string())),
        }
    }

    let cutoff = now - days(cfg.config_audit_days);
    r.config_cutoff = Some(cutoff);
    let res = if cfg.dry_run {
        lc.count_older_than(CountedTable::ConfigAudit, cutoff).await
    } else {
        let total = match progress.wants_totals() {
            true => lc.count_older_than(CountedTable::ConfigAudit, cutoff).await.ok(),
            false => None,
        };
        progress.start(Step::ConfigAudit, total);
        let n = in_chunks(progress, stop, chunk, || store.delete_older_than(RetainedTable::ConfigAudit, cutoff, chunk))
            .await;
        progress.finish(Step::ConfigAudit);
        n
    };
    match res {
        Ok(n) => r.config_rows = n,
        Err(e) => r.errors.push((Step::ConfigAudit.label().into(), e.to_string())),
    }
    r
}

/// How [`remove_events_before`] removes audit rows.
#[derive(Clone, Copy, Debug)]
pub struct RemoveEvents {
    /// Copy them into `event_audit_log_archive` first.
    pub archive: bool,
    /// Rows per statement.
    pub chunk: u32,
    /// Count, change nothing.
    pub dry_run: bool,
}

/// Removes every audit row older than `cutoff` (step 1 of a run; also `muttd partitions
/// drop-older-than`): expired partitions whole, the rest in chunks; adds to `r` what it did
/// and what failed.
pub async fn remove_events_before(
    store: &dyn Store,
    cutoff: DateTime<Utc>,
    opts: RemoveEvents,
    progress: &dyn Progress,
    stop: &CancellationToken,
    r: &mut RetentionReport,
) {
    r.dry_run = opts.dry_run;
    r.event_cutoff = Some(cutoff);
    if let Err(e) = drop_expired_partitions(store, cutoff, opts.archive, opts.dry_run, progress, r).await {
        r.errors.push((Step::DropPartitions.label().into(), e.to_string()));
    }
    let step = EventRows { store, cutoff, archive: opts.archive, chunk: opts.chunk.clamp(1, 100_000) };
    match step.run(opts.dry_run, progress, stop).await {
        Ok(n) => {
            r.event_rows += n;
            if opts.archive {
                r.events_archived += n;
            }
        }
        Err(e) => r.errors.push((Step::EventAudit.label().into(), e.to_string())),
    }
}

/// Step 1: drops (or, in a dry run, lists) the partitions whose month has expired.
async fn drop_expired_partitions(
    lc: &dyn AuditLifecycle,
    cutoff: DateTime<Utc>,
    archive: bool,
    dry_run: bool,
    progress: &dyn Progress,
    r: &mut RetentionReport,
) -> Result<(), StoreError> {
    let expired = expired_partitions(lc, cutoff, dry_run || progress.wants_totals()).await?;
    if expired.is_empty() {
        return Ok(());
    }
    if dry_run {
        r.partitions_dropped = expired;
        return Ok(());
    }
    progress.start(Step::DropPartitions, Some(expired.len() as u64));
    for mut p in expired {
        if let Some(rows) = lc.drop_partition(&p.name, cutoff, archive).await? {
            tracing::info!(partition = %p.name, rows, archived = archive, "expired audit partition dropped");
            p.rows = Some(rows);
            r.event_rows += rows;
            if archive {
                r.events_archived += rows;
            }
            r.partitions_dropped.push(p);
        }
        progress.advance(1);
    }
    progress.finish(Step::DropPartitions);
    Ok(())
}

/// Step 1's remainder: expired audit rows outside droppable partitions, in chunks.
struct EventRows<'a> {
    store: &'a dyn Store,
    cutoff: DateTime<Utc>,
    archive: bool,
    chunk: u32,
}

impl EventRows<'_> {
    async fn run(&self, dry_run: bool, progress: &dyn Progress, stop: &CancellationToken) -> Result<u64, StoreError> {
        let lc: &dyn AuditLifecycle = self.store;
        if dry_run || progress.wants_totals() {
            let n = lc.count_older_than(CountedTable::EventAudit, self.cutoff).await?;
            if dry_run {
                return Ok(n);
            }
            progress.start(Step::EventAudit, Some(n));
        } else {
            progress.start(Step::EventAudit, None);
        }
        let (cutoff, chunk) = (self.cutoff, self.chunk);
        let n = if self.archive {
            in_chunks(progress, stop, chunk, || lc.archive_older_than(cutoff, chunk)).await
        } else {
            in_chunks(progress, stop, chunk, || self.store.delete_older_than(RetainedTable::EventAudit, cutoff, chunk))
                .await
        };
        progress.finish(Step::EventAudit);
        n
    }
}

/// Calls `f` (one chunk of at most `chunk` rows) until a chunk comes back short or `stop`;
/// returns the rows done.
async fn in_chunks<F, Fut>(
    progress: &dyn Progress,
    stop: &CancellationToken,
    chunk: u32,
    mut f: F,
) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = f().await?;
        total += n;
        progress.advance(n);
        if n < u64::from(chunk) {
            break;
        }
        // Let the pipeline's own writes through between chunks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(total)
}

/// Deletes everything in `table` older than `days` (at least 1), `chunk` rows at a time;
/// returns how many. (Row deletes only: [`run_at`] drops whole partitions first.)
pub async fn run_once(
    store: &dyn Store,
    table: RetainedTable,
    days: u32,
    chunk: u32,
    stop: &CancellationToken,
) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days.max(1)));
    let chunk = chunk.clamp(1, 100_000);
    in_chunks(&NoProgress, stop, chunk, || store.delete_older_than(table, cutoff, chunk)).await
}

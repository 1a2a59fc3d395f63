//! `muttd partitions list|ensure|drop-older-than` and `muttd retention`: the audit trail's
//! monthly partitions and one retention run, from the command line (the original's
//! `partition_manager.sh`, `create_monthly_partitions.py`, `retention_cleanup.py` and
//! `retention_policy_enforcer.py`).
//!
//! On the embedded SQLite file there are no partitions: `list` shows the rows per month of the
//! one audit table (no size: SQLite cannot tell it per month), `ensure` has nothing to create,
//! and `drop-older-than` deletes the expired rows in bounded chunks.

use crate::backend::{connect_queue_view, connect_store_admin};
use crate::config::Config;
use crate::secrets::SecretSource;
use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use mutt_core::config_catalogue as catalogue;
use mutt_queue::Coordination;
use mutt_queue::dlq::{self, MoveReport};
use mutt_queue::settings::{self as dynamic, Settings};
use mutt_store::Store;
use mutt_store::partitions::{AuditLifecycle, Month, PartitionInfo};
use mutt_store::retention::{self, Progress, RemoveEvents, RetentionReport, Step};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Every partition of event_audit_log with its month, rows and size (SQLite: rows per
    /// month of the one table).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create the partitions of this month and the next N that are missing (rows of those
    /// months move out of the DEFAULT partition). Nothing to do on SQLite.
    Ensure {
        /// Months after the current one [default: retention.precreate_months, 3].
        #[arg(long)]
        months: Option<u32>,
        /// Also the past months from this one (YYYY-MM): their rows leave the DEFAULT partition.
        #[arg(long, value_name = "MONTH")]
        from: Option<Month>,
    },
    /// Remove every audit row of the months before MONTH: whole partitions are dropped, rows
    /// elsewhere (DEFAULT, SQLite) deleted in chunks; archived first when
    /// retention.archive_years (EVENT_ARCHIVE_RETENTION_YEARS) is set.
    DropOlderThan {
        /// The first month kept, YYYY-MM (at most the current month).
        month: Month,
        /// Print what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Confirm the removal (required unless --dry-run).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Print what would be removed; change nothing (also retention.dry_run, RETENTION_DRY_RUN).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the retention metrics there afterwards, in Prometheus text format, for node
    /// exporter's textfile collector (the original's RETENTION_METRICS_FILE; skipped when the
    /// directory is missing, as there).
    #[arg(long, env = "RETENTION_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<std::path::PathBuf>,
}

pub async fn run(config: &Config, secrets: &dyn SecretSource, cmd: &PartitionsCommand) -> Result<()> {
    let store = connect_store_admin(config, secrets).await?.as_dyn();
    match cmd {
        PartitionsCommand::List { json } => list(store.as_ref(), *json).await,
        PartitionsCommand::Ensure { months, from } => {
            ensure(store.as_ref(), *from, months.unwrap_or(config.retention.precreate_months)).await
        }
        PartitionsCommand::DropOlderThan { month, dry_run, yes } => {
            drop_older_than(config, store, *month, *dry_run, *yes).await
        }
    }
}

async fn list(store: &dyn AuditLifecycle, json: bool) -> Result<()> {
    let parts = store.list_partitions(true).await.context("listing partitions")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&parts)?);
        return Ok(());
    }
    if !store.has_partitions() {
        println!("embedded store: event_audit_log is one table (SQLite has no partitions); its rows by month:");
        println!("{:<9} {:>12}", "MONTH", "ROWS");
        for p in &parts {
            let month = p.month.map_or_else(|| "?".to_owned(), |m| m.to_string());
            println!("{month:<9} {:>12}", p.rows.unwrap_or(0));
        }
        println!("{} rows in {} months", parts.iter().filter_map(|p| p.rows).sum::<u64>(), parts.len());
        return Ok(());
    }
    println!("{:<26} {:<8} {:>12} {:>11}", "PARTITION", "MONTH", "ROWS", "SIZE");
    for p in &parts {
        println!("{:<26} {:<8} {:>12} {:>11}", p.name, month_label(p), p.rows.unwrap_or(0), size(p));
    }
    let rows: u64 = parts.iter().filter_map(|p| p.rows).sum();
    let bytes: u64 = parts.iter().filter_map(|p| p.bytes).sum();
    println!("{} partitions, {rows} rows, {}", parts.len(), HumanBytes(bytes));
    if let Some(d) = parts.iter().find(|p| p.is_default && p.rows.unwrap_or(0) > 0) {
        println!(
            "note: {} rows are in the DEFAULT partition (months without a partition); \
             `muttd partitions ensure --from YYYY-MM` creates past months' partitions and moves their rows",
            d.rows.unwrap_or(0)
        );
    }
    Ok(())
}

fn month_label(p: &PartitionInfo) -> String {
    match (p.is_default, p.month) {
        (true, _) => "DEFAULT".into(),
        (false, Some(m)) => m.to_string(),
        (false, None) => "-".into(),
    }
}

fn size(p: &PartitionInfo) -> String {
    p.bytes.map_or_else(|| "-".into(), |b| HumanBytes(b).to_string())
}

async fn ensure(store: &dyn AuditLifecycle, from: Option<Month>, months: u32) -> Result<()> {
    if !store.has_partitions() {
        println!("embedded store: event_audit_log is one table (SQLite has no partitions): nothing to create");
        return Ok(());
    }
    let now = Utc::now();
    if from.is_some_and(|m| m > Month::of(now)) {
        bail!("--from is after the current month");
    }
    let mut created = Vec::new();
    // Past months one at a time, oldest first: each moves its rows out of DEFAULT.
    let mut month = from.unwrap_or(Month::of(now));
    while month < Month::of(now) {
        created.extend(store.ensure_partitions_at(month.start(), 0).await.context("creating partitions")?);
        month = month.plus(1);
    }
    created.extend(store.ensure_partitions_at(now, months).await.context("creating partitions")?);
    for m in &created {
        println!("created {} ({m})", m.partition_name());
    }
    let wanted = mutt_store::partitions::months_to_ensure(now, months);
    if let (Some(first), Some(last)) = (from.or(wanted.first().copied()), wanted.last()) {
        println!("partitions present from {first} to {last} ({} created)", created.len());
    }
    Ok(())
}

async fn drop_older_than(config: &Config, store: Arc<dyn Store>, month: Month, dry_run: bool, yes: bool) -> Result<()> {
    if month > Month::of(Utc::now()) {
        bail!("{month} is after the current month: that would remove current audit rows");
    }
    if !dry_run && !yes {
        bail!(
            "this removes every audit row before {month}: add --yes to go ahead, or --dry-run to see what it would remove"
        );
    }
    let archive = config.retention.archive_years.is_some();
    let opts = RemoveEvents { archive, chunk: config.retention.batch_size, dry_run };
    let mut report = RetentionReport::default();
    let bar = Bar::default();
    let stop = stop_on_ctrl_c();
    retention::remove_events_before(store.as_ref(), month.start(), opts, &bar, &stop, &mut report).await;
    bar.clear();
    print_report(&report);
    fail_on_errors(&report)
}

/// The retention settings of one run: the dynamic keys of spec §7.3 (`event_retention_days`,
/// `event_archive_retention_years`, `config_audit_retention_days`,
/// `retention_enforcement_enabled`, read at each run as the original's enforcer did) over the
/// static `[retention]` section. The archive's years apply only where an archive is kept
/// (`retention.archive_years` set): the key does not turn archiving on.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicRetention {
    pub enabled: bool,
    pub cfg: retention::RetentionConfig,
}

impl Settings for DynamicRetention {
    const KEYS: &'static [&'static str] = &[
        catalogue::EVENT_RETENTION_DAYS.key,
        catalogue::EVENT_ARCHIVE_RETENTION_YEARS.key,
        catalogue::CONFIG_AUDIT_RETENTION_DAYS.key,
        catalogue::RETENTION_ENFORCEMENT_ENABLED.key,
    ];

    fn from_values(defaults: &Self, values: &[Option<String>]) -> Self {
        let num = |i, key| dynamic::int(values, i, key).and_then(|v| u32::try_from(v).ok());
        let d = &defaults.cfg;
        let cfg = retention::RetentionConfig {
            event_audit_days: num(0, &catalogue::EVENT_RETENTION_DAYS).unwrap_or(d.event_audit_days),
            archive_years: d.archive_years.map(|y| num(1, &catalogue::EVENT_ARCHIVE_RETENTION_YEARS).unwrap_or(y)),
            config_audit_days: num(2, &catalogue::CONFIG_AUDIT_RETENTION_DAYS).unwrap_or(d.config_audit_days),
            ..d.clone()
        };
        let enabled = dynamic::text(values, 3)
            .and_then(|v| catalogue::RETENTION_ENFORCEMENT_ENABLED.parse(v))
            .unwrap_or(defaults.enabled);
        Self { enabled, cfg }
    }
}

impl DynamicRetention {
    /// The static settings alone.
    pub fn from_static(config: &Config) -> Self {
        Self { enabled: config.retention.enabled, cfg: config.retention.to_retention_config() }
    }

    /// The settings in force now; the static ones when dynamic configuration cannot be read
    /// (retention still runs when Redis is down).
    pub async fn read(statics: &Self, coordination: &dyn Coordination) -> Self {
        match coordination.config_values(Self::KEYS).await {
            Ok(values) => Self::from_values(statics, &values),
            Err(e) => {
                tracing::warn!(error = %e, "dynamic configuration unavailable; retention uses the static settings");
                statics.clone()
            }
        }
    }
}

/// What `muttd retention` did: the store's report and the DLQ trimming.
#[derive(serde::Serialize)]
struct RetentionOutput<'a> {
    #[serde(flatten)]
    report: &'a RetentionReport,
    /// Days the DLQs keep (`remediation.dlq_retention_days`); `None`: kept for good.
    dlq_retention_days: Option<u32>,
    dlqs: Vec<MoveReport>,
}

pub async fn retention(config: &Config, secrets: &dyn SecretSource, args: &RetentionArgs) -> Result<()> {
    let store = connect_store_admin(config, secrets).await?.as_dyn();
    // After the store: on the embedded backend that creates the data file the view attaches to.
    let queue = connect_queue_view(config, secrets).await?;
    // The static retention.enabled is the alerter's job switch, not this command's; the
    // dynamic key switches off every run, as it did the original's enforcer.
    let statics = DynamicRetention { enabled: true, ..DynamicRetention::from_static(config) };
    let settings = DynamicRetention::read(&statics, queue.as_ref()).await;
    if !settings.enabled {
        println!("retention_enforcement_enabled is false (dynamic configuration): nothing removed");
        return Ok(());
    }
    let mut cfg = settings.cfg;
    cfg.dry_run |= args.dry_run;
    let bar = Bar::default();
    let stop = stop_on_ctrl_c();
    let began = std::time::Instant::now();
    let mut report = retention::run_at(store.as_ref(), &cfg, Utc::now(), &bar, &stop).await;
    bar.clear();
    let days = Some(config.remediation.dlq_retention_days).filter(|d| *d > 0);
    let mut dlqs = Vec::new();
    if let Some(days) = days {
        match dlq::trim(queue.dead_letters().as_ref(), days, cfg.dry_run, &|_, _| {}).await {
            Ok(r) => dlqs = r,
            Err(e) => report.errors.push(("dlq".into(), e.to_string())),
        }
    }
    if let Some(path) = &args.metrics_file {
        write_metrics_file(path, &cfg, &report, began.elapsed())?;
    }
    if args.json {
        let out = RetentionOutput { report: &report, dlq_retention_days: days, dlqs };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&report);
        print_dlqs(days, &dlqs, report.dry_run);
    }
    fail_on_errors(&report)
}

fn print_dlqs(days: Option<u32>, dlqs: &[MoveReport], dry_run: bool) {
    let Some(days) = days else {
        println!("DLQs: kept (remediation.dlq_retention_days is 0)");
        return;
    };
    let removed = if dry_run { "would remove" } else { "removed" };
    for r in dlqs {
        let name = r.dlq.map(|d| d.as_str()).unwrap_or("-");
        println!("DLQ {name}: {removed} {} of {} entries failed more than {days} days ago", r.total(), r.examined);
    }
}

/// The run's metrics as a node exporter textfile, written whole (a temporary file renamed) so
/// that the collector never reads half of it.
fn write_metrics_file(
    path: &std::path::Path,
    cfg: &retention::RetentionConfig,
    report: &RetentionReport,
    took: std::time::Duration,
) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        eprintln!("muttd: {} does not exist: metrics file not written", dir.display());
        return Ok(());
    }
    let metrics = retention::RetentionMetrics::default();
    metrics.observe(cfg, report, took, Utc::now());
    let registry = mutt_service::Metrics::new();
    registry.register(|r| metrics.register(r));
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, registry.encode_text()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Cancelled on Ctrl-C: the run stops between two chunks, with each chunk done or not.
fn stop_on_ctrl_c() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            token.cancel();
        }
    });
    stop
}

fn fail_on_errors(report: &RetentionReport) -> Result<()> {
    match report.errors.first() {
        Some((task, error)) => bail!("{} step(s) failed; first: {task}: {error}", report.errors.len()),
        None => Ok(()),
    }
}

fn print_report(r: &RetentionReport) {
    let (removed, archived) = if r.dry_run { ("would remove", "would archive") } else { ("removed", "archived") };
    if r.dry_run {
        println!("dry run: nothing was changed");
    }
    if let Some(c) = r.event_cutoff {
        println!("event_audit_log: rows before {}", c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    for p in &r.partitions_dropped {
        let verb = if r.dry_run { "would drop" } else { "dropped" };
        println!("  {verb} partition {} ({} rows, {})", p.name, p.rows.unwrap_or(0), size(p));
    }
    println!("  {removed} {} rows", r.event_rows);
    if r.events_archived > 0 || r.archive_cutoff.is_some() {
        println!("  {archived} {} rows into event_audit_log_archive", r.events_archived);
    }
    if let Some(c) = r.archive_cutoff {
        println!("event_audit_log_archive: {removed} {} rows before {}", r.archive_rows_deleted, c.date_naive());
    }
    if let Some(c) = r.config_cutoff {
        println!("config_audit_log: {removed} {} rows before {}", r.config_rows, c.date_naive());
    }
    for (task, error) in &r.errors {
        println!("FAILED {task}: {error}");
    }
}

/// An indicatif bar per step on stderr (drawn only on a terminal).
#[derive(Default)]
struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn clear(&self) {
        if let Some(b) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn wants_totals(&self) -> bool {
        true
    }

    fn start(&self, step: Step, total: Option<u64>) {
        let unit = if step == Step::DropPartitions { "partitions" } else { "rows" };
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(format!("{} ({unit})", step.label()));
        if let Ok(mut b) = self.bar.lock()
            && let Some(old) = b.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            b.inc(n);
        }
    }

    fn finish(&self, _step: Step) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_values_over_static_ones_and_bad_ones_fall_back() {
        let mut config = Config::default();
        config.retention.enabled = false;
        let statics = DynamicRetention::from_static(&config);
        let v = |s: &str| Some(s.to_owned());
        let got = DynamicRetention::from_values(&statics, &[v("30"), v("3"), v("0"), v("TRUE")]);
        assert_eq!((got.cfg.event_audit_days, got.cfg.config_audit_days, got.enabled), (30, 365, true));
        assert_eq!(got.cfg.archive_years, None, "the years do not turn archiving on");
        config.retention.archive_years = Some(7);
        let statics = DynamicRetention::from_static(&config);
        let got = DynamicRetention::from_values(&statics, &[v("36501"), v("3"), v("400"), v("yes")]);
        assert_eq!((got.cfg.event_audit_days, got.cfg.archive_years), (90, Some(3)), "out of range: static");
        assert_eq!((got.cfg.config_audit_days, got.enabled), (400, false));
        assert_eq!(DynamicRetention::from_values(&statics, &[None, None, None, None]), statics);
    }
}

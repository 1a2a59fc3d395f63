//! Monthly partitions of the audit trail and what retention does to whole months.
//!
//! PostgreSQL keeps `event_audit_log` in monthly partitions `event_audit_log_YYYY_MM` (spec
//! §9.1) plus muttd's DEFAULT partition for months that have none. They are created for the
//! current month and the next N at `muttd migrate`, by `muttd partitions ensure`, and by a
//! daily task in the alerter ([`spawn_daily`]), so that a long-running site never fills the
//! DEFAULT partition. Retention drops a whole expired partition instead of deleting its rows.
//!
//! SQLite has no partitions: the audit trail is one table. There, the same interface reports
//! the rows per calendar month (what a partition would hold; no size), creates nothing, and
//! removes an expired month by deleting its rows in bounded chunks.
//!
//! Every function takes `now` from its caller, so that tests can run in any month.

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1..=12
    month: u32,
}

impl Month {
    /// `None` unless `month` is 1..=12 and the year is a four-digit one.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1000..=9999).contains(&year)).then_some(Self { year, month })
    }

    /// The month `t` falls in, in UTC.
    pub fn of(t: DateTime<Utc>) -> Self {
        Self { year: t.year(), month: t.month() }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// `n` months later (earlier when negative), by the calendar.
    pub fn plus(self, n: i32) -> Self {
        let index = self.year * 12 + (self.month as i32 - 1) + n;
        Self { year: index.div_euclid(12), month: index.rem_euclid(12) as u32 + 1 }
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        // Valid by construction: month is 1..=12, day 1 exists in every month.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// Midnight UTC on the first day.
    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day().and_time(chrono::NaiveTime::MIN))
    }

    /// The start of the next month: the month covers `[start, end)`.
    pub fn end(self) -> DateTime<Utc> {
        self.plus(1).start()
    }

    /// `event_audit_log_YYYY_MM`, the original's partition name.
    pub fn partition_name(self) -> String {
        format!("event_audit_log_{:04}_{:02}", self.year, self.month)
    }

    /// The month of a partition named `event_audit_log_YYYY_MM`; `None` for any other name
    /// (the DEFAULT partition, the archive, a table someone attached by hand).
    pub fn from_partition_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("event_audit_log_")?;
        let (y, m) = rest.split_once('_')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        Self::new(y.parse().ok()?, m.parse().ok()?)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `YYYY-MM`.
impl FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a month (YYYY-MM)");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        Self::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

/// The months whose partitions should exist at `now`: the current one and the next `ahead`
/// (the original's `RETENTION_PRECREATE_MONTHS`, by calendar arithmetic instead of its
/// 32-day steps).
pub fn months_to_ensure(now: DateTime<Utc>, ahead: u32) -> Vec<Month> {
    let first = Month::of(now);
    (0..=ahead.min(120) as i32).map(|i| first.plus(i)).collect()
}

/// One partition of `event_audit_log` (PostgreSQL), or one month of the single table (SQLite).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    /// The table's name (PostgreSQL); `event_audit_log` on SQLite, where the month is a row
    /// range and not a table.
    pub name: String,
    /// The month it holds; `None` for the DEFAULT partition or a table not named by month.
    pub month: Option<Month>,
    /// Whether this is the DEFAULT partition (rows of months without a partition).
    pub is_default: bool,
    /// Exact row count, when asked for (counting scans the table).
    pub rows: Option<u64>,
    /// On-disk size with indexes and TOAST (PostgreSQL); SQLite cannot tell per month.
    pub bytes: Option<u64>,
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a backend does with the audit trail's months and archive. Implemented by the
/// PostgreSQL and SQLite stores; reached through [`crate::Store::lifecycle`].
#[async_trait]
pub trait AuditLifecycle: Send + Sync {
    /// Whether months are real partitions that can be dropped whole (PostgreSQL) or row ranges
    /// of one table (SQLite).
    fn has_partitions(&self) -> bool;

    /// Every partition (or month) with its size, oldest first, the DEFAULT partition last; with
    /// exact row counts when `count_rows`. (SQLite finds its months by counting: it always
    /// counts.)
    async fn list_partitions(&self, count_rows: bool) -> Result<Vec<PartitionInfo>, StoreError>;

    /// Creates the partitions of [`months_to_ensure`]`(now, ahead)` that are missing (rows of
    /// those months move out of the DEFAULT partition); returns the months created. Nothing
    /// on SQLite.
    async fn ensure_partitions_at(&self, now: DateTime<Utc>, ahead: u32) -> Result<Vec<Month>, StoreError>;

    /// Removes the whole partition `name` if none of its rows is at or after `cutoff` (checked
    /// under lock, so a late row is never lost); first copies its rows into
    /// `event_audit_log_archive` when `archive`. Returns the rows removed, or `None` when it
    /// kept the partition. PostgreSQL only: SQLite answers `Ok(None)`.
    async fn drop_partition(&self, name: &str, cutoff: DateTime<Utc>, archive: bool)
    -> Result<Option<u64>, StoreError>;

    /// Moves up to `limit` audit rows older than `cutoff` into `event_audit_log_archive`, in
    /// one transaction; returns how many.
    async fn archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Deletes up to `limit` archive rows whose event is older than `cutoff`; returns how many.
    async fn delete_archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Rows older than `cutoff` in `table` (for dry runs and progress bars).
    async fn count_older_than(&self, table: CountedTable, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The tables [`AuditLifecycle::count_older_than`] counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedTable {
    /// `event_audit_log`, by `event_timestamp`.
    EventAudit,
    /// `config_audit_log`, by `changed_at`.
    ConfigAudit,
    /// `event_audit_log_archive`, by `event_timestamp`.
    Archive,
}

/// The partitions whose whole month lies before `cutoff`, oldest first (none on SQLite).
pub async fn expired_partitions(
    lc: &dyn AuditLifecycle,
    cutoff: DateTime<Utc>,
    count_rows: bool,
) -> Result<Vec<PartitionInfo>, StoreError> {
    if !lc.has_partitions() {
        return Ok(Vec::new());
    }
    Ok(lc
        .list_partitions(count_rows)
        .await?
        .into_iter()
        .filter(|p| !p.is_default && p.month.is_some_and(|m| m.end() <= cutoff))
        .collect())
}

/// Creates the partitions for the current month and the next `ahead` now and then every
/// `every` until `stop` (a failed attempt is retried after five minutes). `now` is the clock:
/// `Utc::now` in the alerter, a fake one in tests.
pub fn spawn_daily(
    lc: Arc<dyn AuditLifecycle>,
    ahead: u32,
    every: Duration,
    now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match lc.ensure_partitions_at(now(), ahead).await {
                Ok(created) => {
                    for m in created {
                        tracing::info!(partition = %m.partition_name(), "audit partition created");
                    }
                    every
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not create audit partitions; retrying in five minutes");
                    every.min(Duration::from_secs(300))
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn months_step_by_the_calendar_across_years() {
        let dec = Month::new(2026, 12).unwrap();
        assert_eq!(dec.plus(1), Month::new(2027, 1).unwrap());
        assert_eq!(dec.plus(13), Month::new(2028, 1).unwrap());
        assert_eq!(Month::new(2027, 1).unwrap().plus(-1), dec);
        assert_eq!(Month::new(2027, 1).unwrap().plus(-25), Month::new(2024, 12).unwrap());
        assert_eq!(dec.end(), at("2027-01-01T00:00:00Z"));
        assert_eq!(dec.start(), at("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn a_run_in_december_covers_the_next_year() {
        let names: Vec<String> =
            months_to_ensure(at("2026-12-31T23:59:59Z"), 3).into_iter().map(Month::partition_name).collect();
        assert_eq!(
            names,
            [
                "event_audit_log_2026_12",
                "event_audit_log_2027_01",
                "event_audit_log_2027_02",
                "event_audit_log_2027_03"
            ]
        );
        // The original's 32-day steps from the 31st of January skipped February's end; the
        // calendar does not.
        let jan31: Vec<Month> = months_to_ensure(at("2027-01-31T12:00:00Z"), 14);
        assert_eq!(jan31.len(), 15);
        assert!(jan31.windows(2).all(|w| w[0].plus(1) == w[1]));
        assert_eq!(jan31[14], Month::new(2028, 3).unwrap());
    }

    #[test]
    fn partition_names_and_months_parse_back() {
        let m = Month::new(2027, 2).unwrap();
        assert_eq!(Month::from_partition_name(&m.partition_name()), Some(m));
        assert_eq!("2027-02".parse::<Month>(), Ok(m));
        assert_eq!(m.to_string(), "2027-02");
        for bad in ["event_audit_log_default", "event_audit_log_archive", "event_audit_log_2027_13", "x_2027_01"] {
            assert_eq!(Month::from_partition_name(bad), None, "{bad}");
        }
        for bad in ["2027", "2027-2", "2027-00", "27-01", "2027/01"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }
}

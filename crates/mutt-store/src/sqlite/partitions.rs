//! The audit trail's months and archive on the embedded store (see [`crate::partitions`]).
//!
//! SQLite has no partitions: `event_audit_log` is one table. A "partition" here is the rows of
//! one calendar month (by the first seven characters of the RFC 3339 timestamp), listed with
//! an exact count and no size (SQLite cannot tell the bytes of a row range). Nothing is ever
//! created, and an expired month goes by chunked deletes (retention's own loop), each chunk a
//! short write on the one writer connection so that audit writes are never held up for long.

use super::{SqliteStore, classify, get_count};
use crate::StoreError;
use crate::partitions::{AuditLifecycle, CountedTable, Month, PartitionInfo};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use mutt_sqlite::rusqlite::params;

fn text(t: DateTime<Utc>) -> String {
    // The form the store writes: fixed width, UTC, 'Z', so that text order is time order.
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[async_trait]
impl AuditLifecycle for SqliteStore {
    fn has_partitions(&self) -> bool {
        false
    }

    async fn list_partitions(&self, _count_rows: bool) -> Result<Vec<PartitionInfo>, StoreError> {
        let months: Vec<(String, u64)> = self
            .db
            .read(|conn| {
                conn.prepare(
                    "SELECT substr(event_timestamp, 1, 7) AS m, count(*) FROM event_audit_log GROUP BY m ORDER BY m",
                )?
                .query_map([], |r| Ok((r.get(0)?, get_count(r, 1)?)))?
                .collect()
            })
            .await
            .map_err(|e| classify("counting audit rows by month", e))?;
        Ok(months
            .into_iter()
            .map(|(m, rows)| PartitionInfo {
                name: "event_audit_log".into(),
                month: m.parse().ok(),
                is_default: false,
                rows: Some(rows),
                bytes: None,
            })
            .collect())
    }

    async fn ensure_partitions_at(&self, _now: DateTime<Utc>, _ahead: u32) -> Result<Vec<Month>, StoreError> {
        Ok(Vec::new())
    }

    async fn drop_partition(
        &self,
        _name: &str,
        _cutoff: DateTime<Utc>,
        _archive: bool,
    ) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    async fn archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let cutoff = text(cutoff);
        // One piece of work on the writer: the chunk leaves the log and enters the archive
        // together (the piece is rolled back alone if either statement fails).
        self.db
            .write(move |conn| {
                let copied = conn
                    .prepare_cached(
                        "INSERT INTO event_audit_log_archive
                             (event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
                              raw_message, original_id, original_partition_timestamp, archived_from_partition,
                              event_id, flap_suppressed, silenced_by)
                         SELECT event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
                                raw_message, id, event_timestamp, 'event_audit_log', event_id, flap_suppressed,
                                silenced_by
                           FROM event_audit_log WHERE event_timestamp < ?1 ORDER BY id LIMIT ?2",
                    )?
                    .execute(params![cutoff, i64::from(limit)])?;
                // The same rows: the oldest ids below the cutoff, as the copy chose them.
                let deleted = conn
                    .prepare_cached(
                        "DELETE FROM event_audit_log WHERE id IN
                           (SELECT id FROM event_audit_log WHERE event_timestamp < ?1 ORDER BY id LIMIT ?2)",
                    )?
                    .execute(params![cutoff, i64::from(limit)])?;
                if copied != deleted {
                    // Cannot happen inside one transaction; refuse rather than lose a row.
                    return Err(mutt_sqlite::rusqlite::Error::StatementChangedRows(deleted));
                }
                Ok(copied as u64)
            })
            .await
            .map_err(|e| classify("archiving audit rows", e))
    }

    async fn delete_archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let cutoff = text(cutoff);
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM event_audit_log_archive WHERE id IN
                       (SELECT id FROM event_audit_log_archive WHERE event_timestamp < ?1 LIMIT ?2)",
                )?
                .execute(params![cutoff, i64::from(limit)])
            })
            .await
            .map(|n| n as u64)
            .map_err(|e| classify("trimming the audit archive", e))
    }

    async fn count_older_than(&self, table: CountedTable, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = text(cutoff);
        let sql = match table {
            CountedTable::EventAudit => "SELECT count(*) FROM event_audit_log WHERE event_timestamp < ?1",
            CountedTable::ConfigAudit => "SELECT count(*) FROM config_audit_log WHERE changed_at < ?1",
            CountedTable::Archive => "SELECT count(*) FROM event_audit_log_archive WHERE event_timestamp < ?1",
        };
        self.db
            .read(move |conn| conn.prepare_cached(sql)?.query_row([cutoff], |r| get_count(r, 0)))
            .await
            .map_err(|e| classify("counting old rows", e))
    }
}

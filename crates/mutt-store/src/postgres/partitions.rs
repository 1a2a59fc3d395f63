//! The audit trail's partitions and archive on PostgreSQL (see [`crate::partitions`]).

use super::{PgStore, classify, pool_err};
use crate::StoreError;
use crate::partitions::{AuditLifecycle, CountedTable, Month, PartitionInfo, months_to_ensure};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The archive's columns filled from an audit row (spec §9.3 [FIX]: by name, not by
/// position): the six data columns as they are, the source row's id, partition and timestamp
/// in the metadata columns, and the event id. `archived_at` and the archive's own id take
/// their defaults.
const ARCHIVE_COLUMNS: &str = "event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
     raw_message, original_id, original_partition_timestamp, archived_from_partition, event_id, flap_suppressed,
     silenced_by";

/// The values for [`ARCHIVE_COLUMNS`] from a row of `event_audit_log` (or a CTE of its rows
/// with the leaf partition's name in `part`).
const ARCHIVE_VALUES: &str = "event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
     raw_message, id, event_timestamp, part, event_id, flap_suppressed, silenced_by";

/// Longest time a partition drop waits for its locks: a long query on the audit log must not
/// hold up every audit insert queued behind the drop.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl AuditLifecycle for PgStore {
    fn has_partitions(&self) -> bool {
        true
    }

    async fn list_partitions(&self, count_rows: bool) -> Result<Vec<PartitionInfo>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
                        pg_total_relation_size(c.oid)
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'event_audit_log'::regclass",
                &[],
            )
            .await
            .map_err(|e| classify("listing audit partitions", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.get(0);
            // Exact counts: the catalogue's estimate is -1 until the table is analysed.
            let rows = match count_rows {
                true => Some(
                    client
                        .query_one(&format!("SELECT count(*) FROM {}", quote_ident(&name)), &[])
                        .await
                        .map_err(|e| classify("counting partition rows", e))?
                        .get::<_, i64>(0)
                        .max(0) as u64,
                ),
                false => None,
            };
            out.push(PartitionInfo {
                month: Month::from_partition_name(&name),
                name,
                is_default: r.get(1),
                rows,
                bytes: Some(r.get::<_, i64>(2).max(0) as u64),
            });
        }
        out.sort_by(|a, b| (a.is_default, a.month, &a.name).cmp(&(b.is_default, b.month, &b.name)));
        Ok(out)
    }

    async fn ensure_partitions_at(&self, now: DateTime<Utc>, ahead: u32) -> Result<Vec<Month>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let mut created = Vec::new();
        for m in months_to_ensure(now, ahead) {
            let exists: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&m.partition_name()])
                .await
                .map_err(|e| classify("looking for an audit partition", e))?
                .get(0);
            if exists {
                continue;
            }
            // The function checks again under its advisory lock: another alerter may be here too.
            client
                .execute("SELECT create_monthly_partition($1)", &[&m.first_day()])
                .await
                .map_err(|e| classify("creating an audit partition", e))?;
            created.push(m);
        }
        Ok(created)
    }

    async fn drop_partition(
        &self,
        name: &str,
        cutoff: DateTime<Utc>,
        archive: bool,
    ) -> Result<Option<u64>, StoreError> {
        if Month::from_partition_name(name).is_none() {
            return Ok(None);
        }
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(|e| classify("dropping a partition", e))?;
        let part = quote_ident(name);
        tx.batch_execute(&format!("{LOCK_TIMEOUT}; LOCK TABLE {part} IN SHARE MODE"))
            .await
            .map_err(|e| classify("locking a partition", e))?;
        // Its rows can no longer change: check that every one has expired, then move them.
        let newer: bool = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {part} WHERE event_timestamp >= $1)"), &[&cutoff])
            .await
            .map_err(|e| classify("checking a partition", e))?
            .get(0);
        if newer {
            return Ok(None);
        }
        let rows = if archive {
            tx.execute(
                &format!(
                    "INSERT INTO event_audit_log_archive ({ARCHIVE_COLUMNS})
                     SELECT {ARCHIVE_VALUES} FROM (SELECT *, $1::text AS part FROM {part}) p"
                ),
                &[&name],
            )
            .await
            .map_err(|e| classify("archiving a partition", e))?
        } else {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {part}"), &[])
                .await
                .map_err(|e| classify("counting a partition", e))?
                .get(0);
            n.max(0) as u64
        };
        tx.batch_execute(&format!("DROP TABLE {part}")).await.map_err(|e| classify("dropping a partition", e))?;
        tx.commit().await.map_err(|e| classify("dropping a partition", e))?;
        Ok(Some(rows))
    }

    async fn archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        // One statement: the rows leave the log and enter the archive together or not at all.
        let sql = format!(
            "WITH moved AS (
                 DELETE FROM event_audit_log WHERE (id, event_timestamp) IN
                     (SELECT id, event_timestamp FROM event_audit_log WHERE event_timestamp < $1 LIMIT $2)
                 RETURNING *, tableoid::regclass::text AS part)
             INSERT INTO event_audit_log_archive ({ARCHIVE_COLUMNS}) SELECT {ARCHIVE_VALUES} FROM moved"
        );
        client.execute(&sql, &[&cutoff, &i64::from(limit)]).await.map_err(|e| classify("archiving audit rows", e))
    }

    async fn delete_archive_older_than(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "DELETE FROM event_audit_log_archive WHERE id IN
                   (SELECT id FROM event_audit_log_archive WHERE event_timestamp < $1 LIMIT $2)",
                &[&cutoff, &i64::from(limit)],
            )
            .await
            .map_err(|e| classify("trimming the audit archive", e))
    }

    async fn count_older_than(&self, table: CountedTable, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let sql = match table {
            CountedTable::EventAudit => "SELECT count(*) FROM event_audit_log WHERE event_timestamp < $1",
            CountedTable::ConfigAudit => "SELECT count(*) FROM config_audit_log WHERE changed_at < $1",
            CountedTable::Archive => "SELECT count(*) FROM event_audit_log_archive WHERE event_timestamp < $1",
        };
        let n: i64 = client.query_one(sql, &[&cutoff]).await.map_err(|e| classify("counting old rows", e))?.get(0);
        Ok(n.max(0) as u64)
    }
}

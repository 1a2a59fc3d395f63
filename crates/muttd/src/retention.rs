//! Retention: trims the audit trail and the config audit to their configured age, in the
//! process that runs the alerter (the original ran a separate daily job; a small site on the
//! embedded file has no cron job, and its disk would fill).

use crate::config::RetentionSection;
use chrono::Utc;
use mutt_store::{RetainedTable, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

/// Runs retention now and then every `interval_secs` until `stop`.
pub fn spawn(store: Arc<dyn Store>, cfg: RetentionSection, metrics: &mutt_service::Metrics, stop: CancellationToken) {
    let deleted: Family<TypeLabel, Counter> = Family::default();
    metrics.register(|r| {
        r.register("mutt_retention_cleanup_records_deleted", "Rows deleted by retention, by table", deleted.clone())
    });
    tokio::spawn(async move {
        let every = Duration::from_secs(cfg.interval_secs.max(60));
        loop {
            for (table, days) in
                [(RetainedTable::EventAudit, cfg.event_audit_days), (RetainedTable::ConfigAudit, cfg.config_audit_days)]
            {
                let counter = deleted.get_or_create(&TypeLabel { r#type: table.label() }).clone();
                match run_once(store.as_ref(), table, days, cfg.batch_size, &stop).await {
                    Ok(0) => {}
                    Ok(n) => {
                        counter.inc_by(n);
                        tracing::info!(table = table.label(), deleted = n, days, "retention: old rows deleted");
                    }
                    Err(e) => {
                        tracing::warn!(table = table.label(), error = %e, "retention run failed; next run retries")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// Deletes everything in `table` older than `days`, chunk by chunk; returns how many.
pub async fn run_once(
    store: &dyn Store,
    table: RetainedTable,
    days: u32,
    chunk: u32,
    stop: &CancellationToken,
) -> Result<u64, mutt_store::StoreError> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days.max(1)));
    let chunk = chunk.clamp(1, 100_000);
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = store.delete_older_than(table, cutoff, chunk).await?;
        total += n;
        if n < u64::from(chunk) {
            break;
        }
        // Let the pipeline's own writes through between chunks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_store::sqlite::SqliteStore;
    use mutt_store::{AuditRecord, NewRule};

    #[tokio::test]
    async fn trims_the_embedded_audit_trail_to_its_age_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = mutt_sqlite::Database::open(dir.path().join("mutt.db"), Default::default()).unwrap();
        let store = SqliteStore::new(db);
        store.migrate().await.unwrap();
        let rule = NewRule {
            match_string: Some("X".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: mutt_core::MatchType::Contains,
            priority: 1,
            prod_handling: "Page".into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NETO".into(),
            is_active: true,
        };
        let id = store.create_rule(&rule).await.unwrap();
        let row = |days: i64| AuditRecord {
            event_id: mutt_core::EventId::new(),
            event_timestamp: Utc::now() - chrono::Duration::days(days),
            hostname: "r1".into(),
            matched_rule_id: id,
            handling_decision: "Page".into(),
            forwarded_to_moog: true,
            raw_message: "{}".into(),
        };
        let rows: Vec<_> = (0..25).map(|_| row(120)).chain((0..4).map(|_| row(1))).collect();
        store.write_audit(&rows).await.unwrap();
        let stop = CancellationToken::new();
        let n = run_once(&store, RetainedTable::EventAudit, 90, 10, &stop).await.unwrap();
        assert_eq!(n, 25, "three chunks of at most 10");
        assert_eq!(store.audit_count().await.unwrap().0, 4);
    }
}

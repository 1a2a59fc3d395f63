//! The ingest counters the ingestor keeps with every accepted batch
//! (`<metrics_prefix>:1m:<YYYY-MM-DDTHH:MM>`, `:1h:<YYYY-MM-DDTHH>`, `:24h:<YYYY-MM-DD>`; on
//! Redis as the original's keys, embedded in `ingest_counter`), read by name for the
//! management API's rate dashboard (spec §6.4). Reading by name replaces the original's `SCAN`.

use crate::QueueError;
use crate::redis::{RedisQueue, redis_err};
use crate::sqlite::{SqliteQueue, db_err};
use async_trait::async_trait;
use mutt_sqlite::rusqlite::OptionalExtension;

#[async_trait]
pub trait IngestCounters: Send + Sync {
    /// The counters of these buckets (`1m:2026-01-02T03:04`, `1h:2026-01-02T03`, …); `None`
    /// for a bucket without a counter (no traffic, or expired). A value that is not a count
    /// reads as `None`.
    async fn ingest_counts(&self, buckets: &[String]) -> Result<Vec<Option<u64>>, QueueError>;
}

#[async_trait]
impl IngestCounters for RedisQueue {
    async fn ingest_counts(&self, buckets: &[String]) -> Result<Vec<Option<u64>>, QueueError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = &self.keys().metrics_prefix;
        let keys: Vec<String> = buckets.iter().map(|b| format!("{prefix}:{b}")).collect();
        let mut c = self.connection();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut c).await.map_err(redis_err("reading ingest counters"))?;
        Ok(values.into_iter().map(|v| v.and_then(|v| v.trim().parse().ok())).collect())
    }
}

#[async_trait]
impl IngestCounters for SqliteQueue {
    async fn ingest_counts(&self, buckets: &[String]) -> Result<Vec<Option<u64>>, QueueError> {
        let prefix = self.keys().metrics_prefix.clone();
        let names: Vec<String> = buckets.iter().map(|b| format!("{prefix}:{b}")).collect();
        let now = chrono::Utc::now().timestamp_millis();
        self.database()
            .read(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT count FROM ingest_counter WHERE bucket = ?1 AND expires_ms >= ?2")?;
                names
                    .iter()
                    .map(|n| {
                        let v: Option<i64> = stmt.query_row((n, now), |r| r.get(0)).optional()?;
                        Ok(v.and_then(|v| u64::try_from(v).ok()))
                    })
                    .collect()
            })
            .await
            .map_err(db_err("reading ingest counters"))
    }
}

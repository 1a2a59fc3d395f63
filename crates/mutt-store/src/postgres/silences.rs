//! Silences on PostgreSQL (see [`crate::silences`]).

use super::{PgStore, classify, pool_err};
use crate::StoreError;
use crate::silences::{Expiry, SILENCE_COLUMNS, SilenceFilter, Silences, check_silence, days_text, window_of};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_core::silence::{Matcher, NewSilence, Silence};

fn row_to_silence(r: &tokio_postgres::Row) -> Result<Silence, StoreError> {
    let window =
        window_of(r.get("window_days"), r.get("window_start"), r.get("window_minutes"), r.get("window_time_zone"))?;
    Ok(Silence {
        id: r.get("id"),
        spec: NewSilence {
            matcher: Matcher {
                host: r.get("host"),
                rule_id: r.get("rule_id"),
                team: r.get("team"),
                message_contains: r.get("message_contains"),
                message_regex: r.get("message_regex"),
                trap_oid_prefix: r.get("trap_oid_prefix"),
            },
            starts_at: r.get("starts_at"),
            ends_at: r.get("ends_at"),
            window,
            created_by: r.get("created_by"),
            comment: r.get("comment"),
        },
        created_at: r.get("created_at"),
        expired_at: r.get("expired_at"),
        expired_by: r.get("expired_by"),
    })
}

/// Not ended at `$1` (an open window never ends by itself).
const OPEN_AT: &str = "expired_at IS NULL AND (ends_at IS NULL OR ends_at > $1)";

#[async_trait]
impl Silences for PgStore {
    async fn create_silence(&self, s: &NewSilence) -> Result<i64, StoreError> {
        check_silence(s)?;
        let m = &s.matcher;
        let w = s.window.as_ref();
        let days = w.map(days_text);
        let minutes = w.map(|w| w.duration_minutes as i32);
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "INSERT INTO silences (host, rule_id, team, message_contains, message_regex, trap_oid_prefix,
                                       starts_at, ends_at, window_days, window_start, window_minutes,
                                       window_time_zone, created_by, comment)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                &[
                    &m.host,
                    &m.rule_id,
                    &m.team,
                    &m.message_contains,
                    &m.message_regex,
                    &m.trap_oid_prefix,
                    &s.starts_at,
                    &s.ends_at,
                    &days,
                    &w.map(|w| w.start.as_str()),
                    &minutes,
                    &w.map(|w| w.time_zone.as_str()),
                    &s.created_by,
                    &s.comment,
                ],
            )
            .await
            .map_err(|e| classify("creating a silence", e))?;
        Ok(row.get(0))
    }

    async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1"), &[&id])
            .await
            .map_err(|e| classify("reading a silence", e))?;
        row.as_ref().map(row_to_silence).transpose()
    }

    async fn list_silences(&self, filter: SilenceFilter, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let condition = match filter {
            SilenceFilter::Active => OPEN_AT.to_owned(),
            SilenceFilter::Expired => format!("NOT ({OPEN_AT})"),
            SilenceFilter::All => "$1::timestamptz IS NOT NULL".to_owned(),
        };
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE {condition} ORDER BY id DESC"), &[&now])
            .await
            .map_err(|e| classify("listing silences", e))?;
        rows.iter().map(row_to_silence).collect()
    }

    async fn expire_silence(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<Expiry, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let updated = client
            .query_opt(
                &format!(
                    "UPDATE silences SET expired_at = $1, expired_by = $2 WHERE id = $3 AND {OPEN_AT}
                     RETURNING {SILENCE_COLUMNS}"
                ),
                &[&now, &by, &id],
            )
            .await
            .map_err(|e| classify("expiring a silence", e))?;
        if let Some(row) = updated {
            return Ok(Expiry::Expired(row_to_silence(&row)?));
        }
        drop(client);
        Ok(match self.get_silence(id).await? {
            Some(s) => Expiry::AlreadyExpired(s),
            None => Expiry::NotFound,
        })
    }
}

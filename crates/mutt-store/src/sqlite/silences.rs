//! Silences on SQLite (see [`crate::silences`]). Times are RFC 3339 UTC text with milliseconds
//! and 'Z', so that comparing text compares time.

use super::{SqliteStore, classify};
use crate::StoreError;
use crate::silences::{Expiry, SILENCE_COLUMNS, SilenceFilter, Silences, check_silence, days_text, window_of};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use mutt_core::silence::{Matcher, NewSilence, Silence};
use mutt_sqlite::rusqlite::{self, OptionalExtension, params, types::Type};

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time_at(r: &rusqlite::Row<'_>, col: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let Some(t) = r.get::<_, Option<String>>(col)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&t)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

/// The row's columns, the window's still unparsed (its parse error is the store's, not SQLite's).
struct Row {
    silence: Silence,
    window: (Option<String>, Option<String>, Option<i32>, Option<String>),
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let required = |col: &str| time_at(r, col)?.ok_or(rusqlite::Error::InvalidColumnType(0, col.into(), Type::Null));
    let silence = Silence {
        id: r.get("id")?,
        spec: NewSilence {
            matcher: Matcher {
                host: r.get("host")?,
                rule_id: r.get("rule_id")?,
                team: r.get("team")?,
                message_contains: r.get("message_contains")?,
                message_regex: r.get("message_regex")?,
                trap_oid_prefix: r.get("trap_oid_prefix")?,
            },
            starts_at: required("starts_at")?,
            ends_at: time_at(r, "ends_at")?,
            window: None,
            created_by: r.get("created_by")?,
            comment: r.get("comment")?,
        },
        created_at: required("created_at")?,
        expired_at: time_at(r, "expired_at")?,
        expired_by: r.get("expired_by")?,
    };
    let window = (r.get("window_days")?, r.get("window_start")?, r.get("window_minutes")?, r.get("window_time_zone")?);
    Ok(Row { silence, window })
}

fn finish(row: Row) -> Result<Silence, StoreError> {
    let (days, start, minutes, zone) = row.window;
    let mut s = row.silence;
    s.spec.window = window_of(days, start, minutes, zone)?;
    Ok(s)
}

const OPEN_AT: &str = "expired_at IS NULL AND (ends_at IS NULL OR ends_at > ?1)";

#[async_trait]
impl Silences for SqliteStore {
    async fn create_silence(&self, s: &NewSilence) -> Result<i64, StoreError> {
        check_silence(s)?;
        let s = s.clone();
        self.db
            .write(move |conn| {
                let m = &s.matcher;
                let w = s.window.as_ref();
                conn.prepare_cached(
                    "INSERT INTO silences (host, rule_id, team, message_contains, message_regex, trap_oid_prefix,
                                           starts_at, ends_at, window_days, window_start, window_minutes,
                                           window_time_zone, created_by, comment)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?
                .execute(params![
                    m.host,
                    m.rule_id,
                    m.team,
                    m.message_contains,
                    m.message_regex,
                    m.trap_oid_prefix,
                    text(s.starts_at),
                    s.ends_at.map(text),
                    w.map(days_text),
                    w.map(|w| w.start.clone()),
                    w.map(|w| w.duration_minutes),
                    w.map(|w| w.time_zone.clone()),
                    s.created_by,
                    s.comment,
                ])?;
                Ok(conn.last_insert_rowid())
            })
            .await
            .map_err(|e| classify("creating a silence", e))
    }

    async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError> {
        let row = self
            .db
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"))?
                    .query_row([id], read_row)
                    .optional()
            })
            .await
            .map_err(|e| classify("reading a silence", e))?;
        row.map(finish).transpose()
    }

    async fn list_silences(&self, filter: SilenceFilter, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let condition = match filter {
            SilenceFilter::Active => OPEN_AT.to_owned(),
            SilenceFilter::Expired => format!("NOT ({OPEN_AT})"),
            SilenceFilter::All => "?1 IS NOT NULL".to_owned(),
        };
        let now = text(now);
        let rows = self
            .db
            .read(move |conn| {
                conn.prepare(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE {condition} ORDER BY id DESC"))?
                    .query_map([now], read_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| classify("listing silences", e))?;
        rows.into_iter().map(finish).collect()
    }

    async fn expire_silence(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<Expiry, StoreError> {
        let (by, now) = (by.to_owned(), text(now));
        let changed = self
            .db
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "UPDATE silences SET expired_at = ?1, expired_by = ?2 WHERE id = ?3 AND {OPEN_AT}"
                ))?
                .execute(params![now, by, id])
            })
            .await
            .map_err(|e| classify("expiring a silence", e))?;
        Ok(match (changed, self.get_silence(id).await?) {
            (_, None) => Expiry::NotFound,
            (0, Some(s)) => Expiry::AlreadyExpired(s),
            (_, Some(s)) => Expiry::Expired(s),
        })
    }
}

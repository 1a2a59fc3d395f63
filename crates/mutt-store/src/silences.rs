//! Silences and maintenance windows ([`mutt_core::silence`]) in the store: create, read,
//! list, expire early. Nothing is ever deleted: expired silences stay for the audit, and
//! `event_audit_log.silenced_by` names them. Every store implements [`Silences`]
//! (`postgres/silences.rs`, `sqlite/silences.rs`); a `&dyn Store` is a `&dyn Silences`.

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc, Weekday};
use mutt_core::silence::{NewSilence, Silence, WeeklyWindow};

/// Which silences a listing returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SilenceFilter {
    /// Not ended and not expired early at the given time (pending ones included).
    #[default]
    Active,
    /// Ended or expired early at the given time.
    Expired,
    All,
}

impl std::str::FromStr for SilenceFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(SilenceFilter::Active),
            "expired" => Ok(SilenceFilter::Expired),
            "all" => Ok(SilenceFilter::All),
            other => Err(format!("unknown state {other:?} (expected active, expired or all)")),
        }
    }
}

/// What expiring a silence did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Expired now; the silence as it is afterwards.
    Expired(Silence),
    /// It had ended or been expired before; unchanged.
    AlreadyExpired(Silence),
    NotFound,
}

#[async_trait]
pub trait Silences: Send + Sync {
    /// Stores a silence after [`NewSilence::validate`] (refused: `Rejected`, naming the
    /// field); returns its id.
    async fn create_silence(&self, silence: &NewSilence) -> Result<i64, StoreError>;

    async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError>;

    /// Silences in `filter`'s state at `now`, newest first.
    async fn list_silences(&self, filter: SilenceFilter, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError>;

    /// Ends silence `id` at `now` on behalf of `by`, unless it has ended already.
    async fn expire_silence(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<Expiry, StoreError>;
}

pub(crate) fn check_silence(s: &NewSilence) -> Result<(), StoreError> {
    s.validate().map_err(|e| StoreError::Rejected(format!("invalid silence: {e}")))
}

/// `Mon,Sun` (the column's form) from a window's days.
pub(crate) fn days_text(w: &WeeklyWindow) -> String {
    w.days.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// A window from its four columns (all set, or none: a one-off silence).
pub(crate) fn window_of(
    days: Option<String>,
    start: Option<String>,
    minutes: Option<i32>,
    zone: Option<String>,
) -> Result<Option<WeeklyWindow>, StoreError> {
    let (Some(days), Some(start), Some(minutes), Some(time_zone)) = (days, start, minutes, zone) else {
        return Ok(None);
    };
    let days = days
        .split(',')
        .map(|d| d.trim().parse::<Weekday>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StoreError::Failed(format!("silences.window_days: unreadable value {days:?}")))?;
    Ok(Some(WeeklyWindow { days, start, duration_minutes: minutes.max(0) as u32, time_zone }))
}

/// The column list every backend reads a silence from, in the order the backends read them.
pub(crate) const SILENCE_COLUMNS: &str = "id, host, rule_id, team, message_contains, message_regex, trap_oid_prefix,
     starts_at, ends_at, window_days, window_start, window_minutes, window_time_zone, created_by, created_at, comment,
     expired_at, expired_by";

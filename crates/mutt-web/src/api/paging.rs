//! Pagination and time bounds shared by the searches: `page` (≥ 1, default 1), `limit`
//! (clamped to 1..=200, default 50), `pagination` in the answer with `pages = ceil(total /
//! limit)`; `start_date`/`end_date` as RFC 3339 or a plain date (UTC).

use crate::error::ApiError;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The paging parameters as given; a non-integer is a 400 naming it (the extractor's).
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// From 1.
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Clamped to 1..=200.
    pub limit: Option<u64>,
}

/// Paging as used: page ≥ 1, limit within 1..=200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub limit: u32,
}

impl PageParams {
    pub fn paging(self) -> Result<Paging, ApiError> {
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(ApiError::invalid_field("page", "page starts at 1"));
        }
        let limit = self.limit.unwrap_or(u64::from(DEFAULT_LIMIT)).clamp(1, u64::from(MAX_LIMIT));
        // Clamped above: fits.
        Ok(Paging { page, limit: u32::try_from(limit).unwrap_or(MAX_LIMIT) })
    }
}

impl Paging {
    pub fn offset(self) -> u64 {
        (self.page - 1).saturating_mul(u64::from(self.limit))
    }

    /// The `pagination` member of an answer.
    pub fn json(self, total: u64) -> Value {
        json!({"page": self.page, "limit": self.limit, "total": total, "pages": total.div_ceil(u64::from(self.limit))})
    }
}

/// A time bound: RFC 3339 (`2026-01-02T03:04:05Z`, any offset), a date-time without an offset
/// (UTC), or a date (its start for `start_date`, its end for `end_date`).
pub fn parse_time(field: &str, text: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    let t = text.trim();
    if let Ok(v) = DateTime::parse_from_rfc3339(t) {
        return Ok(v.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(v) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(v.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let time = if end_of_day { d.and_hms_milli_opt(23, 59, 59, 999) } else { d.and_hms_opt(0, 0, 0) };
        if let Some(v) = time {
            return Ok(v.and_utc());
        }
    }
    Err(ApiError::invalid_field(field, format!("{text:?} is not a date or an RFC 3339 timestamp")))
}

/// A time bound, when one was given.
pub type Bound = Option<DateTime<Utc>>;

/// Both bounds, each optional.
pub fn time_range(start: Option<&str>, end: Option<&str>) -> Result<(Bound, Bound), ApiError> {
    let start = start.filter(|s| !s.trim().is_empty()).map(|s| parse_time("start_date", s, false)).transpose()?;
    let end = end.filter(|s| !s.trim().is_empty()).map(|s| parse_time("end_date", s, true)).transpose()?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_and_page_zero_is_refused() {
        let p = PageParams { page: None, limit: Some(1000) }.paging().unwrap();
        assert_eq!(p, Paging { page: 1, limit: 200 });
        let p = PageParams { page: Some(3), limit: Some(0) }.paging().unwrap();
        assert_eq!((p.limit, p.offset()), (1, 2));
        assert_eq!(PageParams { page: Some(0), limit: None }.paging().unwrap_err().field(), Some("page"));
        assert_eq!(Paging { page: 1, limit: 50 }.json(101)["pages"], 3);
        assert_eq!(Paging { page: 1, limit: 50 }.json(0)["pages"], 0);
    }

    #[test]
    fn times_in_the_forms_people_type() {
        let t = parse_time("start_date", "2026-01-02", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T00:00:00+00:00");
        let t = parse_time("end_date", "2026-01-02", true).unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 999);
        let t = parse_time("x", "2026-01-02T03:04:05+01:00", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T02:04:05+00:00");
        assert_eq!(parse_time("end_date", "yesterday", true).unwrap_err().field(), Some("end_date"));
    }
}

//! Weekly maintenance windows in an IANA time zone.
//!
//! Semantics (daylight saving included): an instant is inside a window when its local
//! wall-clock time in the window's zone lies in `[start, start + duration)` of a listed
//! weekday. So a window is about the clock on the wall, as a change ticket states it:
//! "Sundays 02:00–04:00 Europe/Berlin" ends at 04:00 local on every Sunday. On the
//! spring-forward day local 02:00–03:00 does not exist and the window lasts one real hour
//! (03:00–04:00 CEST); on the fall-back day local 02:00–03:00 happens twice, both are inside,
//! and the window lasts three real hours (02:00 CEST to 04:00 CET).

use super::SilenceError;
use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Longest window: one week.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// A weekly window as written: days, local start `HH:MM`, length, IANA zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
    /// Days on which an occurrence starts (`Mon` … `Sun`; `sun`, `Sunday` are read too).
    pub days: Vec<Weekday>,
    /// Local start time, `HH:MM` (24 h).
    pub start: String,
    /// Length in minutes (1 to one week); an occurrence may run past midnight.
    pub duration_minutes: u32,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledWindow {
    days: [bool; 7],
    start: NaiveTime,
    duration: Duration,
    tz: Tz,
}

impl WeeklyWindow {
    pub(crate) fn compile(&self) -> Result<CompiledWindow, SilenceError> {
        if self.days.is_empty() {
            return Err(SilenceError::invalid("window.days", "at least one day is required"));
        }
        let mut days = [false; 7];
        for d in &self.days {
            days[d.num_days_from_monday() as usize] = true;
        }
        let start = NaiveTime::parse_from_str(&self.start, "%H:%M")
            .map_err(|_| SilenceError::invalid("window.start", format!("{:?} is not a time HH:MM", self.start)))?;
        if self.duration_minutes == 0 || self.duration_minutes > MAX_WINDOW_MINUTES {
            let reason = format!("{} is out of range (1 to {MAX_WINDOW_MINUTES} minutes)", self.duration_minutes);
            return Err(SilenceError::invalid("window.duration_minutes", reason));
        }
        let tz: Tz = self.time_zone.parse().map_err(|_| {
            SilenceError::invalid("window.time_zone", format!("{:?} is not an IANA time zone", self.time_zone))
        })?;
        Ok(CompiledWindow { days, start, duration: Duration::minutes(i64::from(self.duration_minutes)), tz })
    }

    /// Checks the window (days, start, length, zone).
    pub fn validate(&self) -> Result<(), SilenceError> {
        self.compile().map(|_| ())
    }

    /// `Sun,Sat 02:00–04:00 Europe/Berlin` (`+1d` when an occurrence ends on a later day).
    pub fn describe(&self) -> String {
        let days: Vec<String> = self.days.iter().map(ToString::to_string).collect();
        let end = match NaiveTime::parse_from_str(&self.start, "%H:%M") {
            Ok(start) => {
                let minutes = i64::from(self.duration_minutes);
                let (end, wrapped) = start.overflowing_add_signed(Duration::minutes(minutes));
                let days_later = wrapped / 86_400;
                let suffix = if days_later > 0 { format!(" +{days_later}d") } else { String::new() };
                format!("{}{suffix}", end.format("%H:%M"))
            }
            Err(_) => "?".into(),
        };
        format!("{} {}–{} {}", days.join(","), self.start, end, self.time_zone)
    }
}

impl CompiledWindow {
    fn listed(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// Whether `now`'s local wall-clock time is inside an occurrence.
    pub(crate) fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz).naive_local();
        // An occurrence started at most a week ago (the longest window).
        (0..=7).any(|back| {
            let date = local.date() - Duration::days(back);
            let start = date.and_time(self.start);
            self.listed(date.weekday()) && start <= local && local < start + self.duration
        })
    }

    /// The first occurrence that ends after `from`, as real instants: the start's earlier
    /// reading when the local time happens twice, the end's later one; a local time in a gap
    /// is read as the instant the gap ends. For display; [`Self::contains`] decides.
    pub(crate) fn next_after(&self, from: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let first = from.with_timezone(&self.tz).date_naive() - Duration::days(8);
        (0..24).map(|d| first + Duration::days(d)).filter(|date| self.listed(date.weekday())).find_map(|date| {
            let start = date.and_time(self.start);
            let (s, e) = (self.instant(start, false)?, self.instant(start + self.duration, true)?);
            (e > from && e > s).then_some((s, e))
        })
    }

    fn instant(&self, local: NaiveDateTime, latest: bool) -> Option<DateTime<Utc>> {
        // Gaps last an hour or so (a day at most, Samoa 2011): walk forward to their end.
        for step in 0..(48 * 60) {
            match self.tz.from_local_datetime(&(local + Duration::minutes(step))) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => return Some(if latest { b } else { a }.with_timezone(&Utc)),
                LocalResult::None => continue,
            }
        }
        None
    }
}

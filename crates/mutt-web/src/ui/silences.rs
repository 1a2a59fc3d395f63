//! `/silences`: silences and maintenance windows in the console. The list (in effect now,
//! scheduled, recently ended), a form for a one-off silence and one for a weekly maintenance
//! window (the same matcher fields; the error next to the field at fault), and expiring a
//! silence early. `/silences/new?host=…&rule_id=…&message=…` pre-fills the form, and
//! `?event_id=…` fills what is not given from that event's audit row ("Silence this" on an
//! event's page).
//!
//! Changes go through the API's own functions (`api::silences::{add, end_early}`): the same
//! checks, the same config-audit row (with the session's key), the same notice to the
//! alerters. The creator is the session's key as the API records it (`webui_api:<name>`, the
//! API's default creator and the config audit's `changed_by`), so a silence reads the same
//! whichever way it was made.

use super::audit::UiError;
use super::session::Session;
use super::{FieldErrors, Page, render};
use crate::WebState;
use crate::api::caller::Caller;
use crate::api::silences::{add, end_early};
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Duration, NaiveDateTime, Utc, Weekday};
use mutt_core::silence::{Matcher, NewSilence, SilenceError, SilenceState, SilenceView, WeeklyWindow};
use mutt_store::manage::EventAuditFilter;
use mutt_store::silences::SilenceFilter;
use serde::Deserialize;
use std::sync::Arc;

/// Ended silences shown (newest first); the API lists them all.
const EXPIRED_SHOWN: usize = 50;
/// Zones offered by the time-zone field (any IANA name is accepted).
const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Amsterdam",
    "Europe/Zurich",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
];
/// The days' checkboxes: (form field, label, day).
const DAYS: [(&str, &str, Weekday); 7] = [
    ("day_mon", "Mon", Weekday::Mon),
    ("day_tue", "Tue", Weekday::Tue),
    ("day_wed", "Wed", Weekday::Wed),
    ("day_thu", "Thu", Weekday::Thu),
    ("day_fri", "Fri", Weekday::Fri),
    ("day_sat", "Sat", Weekday::Sat),
    ("day_sun", "Sun", Weekday::Sun),
];

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/silences", get(list))
        .route("/silences/new", get(new_form).post(submit))
        .route("/silences/{id}/expire", post(expire))
}

// ---------------------------------------------------------------------------------------
// The list

/// One silence as a row of the list.
pub(super) struct Row {
    pub id: i64,
    pub state: &'static str,
    /// `in effect`, `between windows`, `scheduled`, `expired early`, `ended`.
    pub status: String,
    pub badge: &'static str,
    pub matcher: String,
    pub when: String,
    /// A window's current or next occurrence.
    pub next: String,
    pub created_by: String,
    pub comment: String,
    pub ended: String,
    pub is_window: bool,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `host core-* · rule 12 · message contains "link down"`.
fn summary(m: &Matcher) -> String {
    let mut parts = Vec::new();
    let text = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(h) = text(&m.host) {
        parts.push(format!("host {h}"));
    }
    if let Some(r) = m.rule_id {
        parts.push(format!("rule {r}"));
    }
    if let Some(t) = text(&m.team) {
        parts.push(format!("team {t}"));
    }
    if let Some(c) = text(&m.message_contains) {
        parts.push(format!("message contains {c:?}"));
    }
    if let Some(r) = text(&m.message_regex) {
        parts.push(format!("message matches /{r}/"));
    }
    if let Some(o) = text(&m.trap_oid_prefix) {
        parts.push(format!("trap OID {o}…"));
    }
    parts.join(" · ")
}

fn row_of(v: &SilenceView, now: DateTime<Utc>) -> Row {
    let s = &v.silence;
    let window = s.spec.window.as_ref();
    let (status, badge) = match v.state {
        SilenceState::Active if v.in_effect => ("in effect".to_owned(), "ok"),
        SilenceState::Active => ("between windows".to_owned(), "warn"),
        SilenceState::Pending => ("scheduled".to_owned(), "warn"),
        SilenceState::Expired if s.expired_at.is_some_and(|t| t <= now) => ("expired early".to_owned(), ""),
        SilenceState::Expired => ("ended".to_owned(), ""),
    };
    let when = match (window, s.spec.ends_at) {
        (Some(w), Some(end)) => format!("{}, from {} until {}", w.describe(), stamp(s.spec.starts_at), stamp(end)),
        (Some(w), None) => format!("{}, from {}, open-ended", w.describe(), stamp(s.spec.starts_at)),
        (None, end) => format!("{} → {}", stamp(s.spec.starts_at), end.map(stamp).unwrap_or_default()),
    };
    let next = match (v.next_start, v.next_end) {
        (Some(a), Some(b)) => format!("{} → {}", stamp(a), stamp(b)),
        _ => String::new(),
    };
    let ended = match (&s.expired_at, &s.expired_by) {
        (Some(t), Some(by)) => format!("{} by {by}", stamp(*t)),
        (Some(t), None) => stamp(*t),
        _ => s.spec.ends_at.filter(|t| *t <= now).map(stamp).unwrap_or_default(),
    };
    Row {
        id: s.id,
        state: v.state.as_str(),
        status,
        badge,
        matcher: summary(&s.spec.matcher),
        when,
        next,
        created_by: s.spec.created_by.clone(),
        comment: s.spec.comment.clone(),
        ended,
        is_window: window.is_some(),
    }
}

/// One table of the list.
pub(super) struct Section {
    pub id: &'static str,
    pub heading: &'static str,
    pub caption: &'static str,
    pub empty: &'static str,
    /// Rows get an "Expire now" button.
    pub expirable: bool,
    pub rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "silences.html")]
struct ListPage {
    page: Page,
    sections: Vec<Section>,
    expired_total: usize,
    expired_shown: usize,
}

async fn list(State(state): State<Arc<WebState>>, session: Session) -> Result<Response, UiError> {
    let now = Utc::now();
    let current = state.store.list_silences(SilenceFilter::Active, now).await?;
    let ended = state.store.list_silences(SilenceFilter::Expired, now).await?;
    let rows = |list: Vec<_>| list.into_iter().map(|s| row_of(&SilenceView::at(s, now), now)).collect::<Vec<_>>();
    let (scheduled, active): (Vec<Row>, Vec<Row>) = rows(current).into_iter().partition(|r| r.state == "pending");
    let expired_total = ended.len();
    let mut expired = rows(ended);
    expired.truncate(EXPIRED_SHOWN);
    let section =
        |id, heading, caption, empty, expirable, rows| Section { id, heading, caption, empty, expirable, rows };
    let sections = vec![
        section(
            "active",
            "Active",
            "Silences and windows in their time range now",
            "No silence is active.",
            true,
            active,
        ),
        section("scheduled", "Scheduled", "Silences and windows that start later", "None scheduled.", true, scheduled),
        section("expired", "Ended", "Ended or expired early, newest first", "None has ended yet.", false, expired),
    ];
    let expired_shown = sections[2].rows.len();
    Ok(render(&ListPage { page: session.page("Silences", "/silences"), sections, expired_total, expired_shown }))
}

// ---------------------------------------------------------------------------------------
// The forms

/// Both forms as typed (every field text, so a bad value is an error next to its field).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SilenceForm {
    /// `silence` or `window`.
    pub kind: String,
    pub host: String,
    pub rule_id: String,
    pub team: String,
    pub message: String,
    /// `contains` or `regex`.
    pub message_mode: String,
    pub trap_oid_prefix: String,
    /// One-off: start (empty: now), end or duration.
    pub starts_at: String,
    pub ends_at: String,
    pub duration: String,
    /// Window: days, local start, length, zone, optional last day.
    pub day_mon: Option<String>,
    pub day_tue: Option<String>,
    pub day_wed: Option<String>,
    pub day_thu: Option<String>,
    pub day_fri: Option<String>,
    pub day_sat: Option<String>,
    pub day_sun: Option<String>,
    pub window_start: String,
    pub window_duration: String,
    pub time_zone: String,
    pub until: String,
    pub comment: String,
    pub reason: String,
    /// "Silence this": the event whose host, rule and message fill the empty fields.
    pub event_id: String,
}

impl SilenceForm {
    fn is_window(&self) -> bool {
        self.kind == "window"
    }

    fn day_checked(&self, field: &str) -> bool {
        let v = match field {
            "day_mon" => &self.day_mon,
            "day_tue" => &self.day_tue,
            "day_wed" => &self.day_wed,
            "day_thu" => &self.day_thu,
            "day_fri" => &self.day_fri,
            "day_sat" => &self.day_sat,
            _ => &self.day_sun,
        };
        v.is_some()
    }
}

#[derive(Template)]
#[template(path = "silences_form.html")]
struct FormPage {
    page: Page,
    form: SilenceForm,
    errors: FieldErrors,
    zones: &'static [&'static str],
    days: &'static [(&'static str, &'static str, Weekday)],
    creator: String,
}

fn form_page(session: &Session, form: SilenceForm, errors: FieldErrors) -> FormPage {
    let title = if form.is_window() { "New maintenance window" } else { "New silence" };
    let creator = session.changed_by();
    FormPage { page: session.page(title, "/silences"), form, errors, zones: ZONES, days: &DAYS, creator }
}

async fn new_form(
    State(state): State<Arc<WebState>>,
    session: Session,
    Query(mut form): Query<SilenceForm>,
) -> Response {
    if form.message_mode.is_empty() {
        form.message_mode = "contains".into();
    }
    if form.is_window() {
        if form.time_zone.is_empty() {
            form.time_zone = "UTC".into();
        }
        if form.window_duration.is_empty() {
            form.window_duration = "2h".into();
        }
    } else if form.duration.is_empty() && form.ends_at.is_empty() {
        form.duration = "1h".into();
    }
    let mut errors = FieldErrors::default();
    if !form.event_id.trim().is_empty()
        && let Err(e) = fill_from_event(&state, &mut form).await
    {
        errors.insert("form", e);
    }
    render(&form_page(&session, form, errors))
}

/// Fills host, rule and message from event `form.event_id`'s audit row where they are empty.
async fn fill_from_event(state: &WebState, form: &mut SilenceForm) -> Result<(), String> {
    let id = form.event_id.trim().to_owned();
    let filter = EventAuditFilter { event_id: Some(id.clone()), limit: 1, ..Default::default() };
    let found = state.store.search_event_audit(&filter).await.map_err(|e| ApiError::from(e).message().to_owned())?;
    let row =
        found.rows.into_iter().next().ok_or_else(|| format!("No audit row for event {id}: nothing filled in."))?;
    if form.host.is_empty() {
        form.host = row.hostname;
    }
    if form.rule_id.is_empty() {
        form.rule_id = row.matched_rule_id.to_string();
    }
    if form.message.is_empty() {
        let raw = row.raw_message.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
        form.message = message.unwrap_or_default();
    }
    if form.comment.is_empty() {
        form.comment = format!("Silenced from event {id}");
    }
    Ok(())
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `2h`, `90m`, `1d`, `1h30m`, or a number of minutes.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim().to_ascii_lowercase();
    if let Ok(minutes) = t.parse::<i64>() {
        return (1..=527_040)
            .contains(&minutes)
            .then(|| Duration::minutes(minutes))
            .ok_or_else(|| format!("{minutes} minutes is out of range (1 minute to a year)"));
    }
    let (mut total, mut number) = (0i64, String::new());
    for c in t.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 1440,
            'h' => 60,
            'm' => 1,
            _ => return Err(format!("{text:?} is not a duration such as 2h, 90m or 1d")),
        };
        let n: i64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 2h, 90m or 1d"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("{text:?} is not a duration such as 2h, 90m or 1d"));
    }
    if total > 527_040 {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(Duration::minutes(total))
}

/// RFC 3339, or `YYYY-MM-DD HH:MM` / `YYYY-MM-DDTHH:MM` (what a date-time field sends) in UTC.
pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(n.and_utc());
        }
    }
    Err(format!("{t:?} is not a time such as 2026-12-24 18:00 (UTC) or RFC 3339"))
}

/// The silence the form asks for, or the errors by field (what can be told before the core's
/// own validation).
fn silence_of(form: &SilenceForm, creator: &str, now: DateTime<Utc>) -> Result<NewSilence, FieldErrors> {
    let mut errors = FieldErrors::default();
    let rule_id = match opt(&form.rule_id).map(|t| t.parse::<i32>()) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.insert("rule_id", format!("{:?} is not a rule id", form.rule_id.trim()));
            None
        }
        None => None,
    };
    let regex = form.message_mode == "regex";
    let message = opt(&form.message);
    let matcher = Matcher {
        host: opt(&form.host),
        rule_id,
        team: opt(&form.team),
        message_contains: message.clone().filter(|_| !regex),
        message_regex: message.filter(|_| regex),
        trap_oid_prefix: opt(&form.trap_oid_prefix),
    };
    let mut time = |field: &str, text: &str| match opt(text).map(|t| parse_time(&t)) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            errors.insert(field, e);
            None
        }
        None => None,
    };
    let starts_at = time("starts_at", &form.starts_at).unwrap_or(now);
    let (ends_at, window) = if form.is_window() {
        (time("until", &form.until), window_of(form, &mut errors))
    } else {
        (one_off_end(form, starts_at, &mut errors), None)
    };
    let silence = NewSilence {
        matcher,
        starts_at,
        ends_at,
        window,
        created_by: creator.to_owned(),
        comment: form.comment.trim().to_owned(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    silence.validate().map_err(|e| core_errors(form, &e))?;
    Ok(silence)
}

/// A one-off silence's end: the end given, or the start plus the duration.
fn one_off_end(form: &SilenceForm, start: DateTime<Utc>, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    match (opt(&form.ends_at), opt(&form.duration)) {
        (Some(_), Some(_)) => {
            errors.insert("duration", "Give an end or a duration, not both.");
            None
        }
        (Some(end), None) => parse_time(&end).map_err(|e| errors.insert("ends_at", e)).ok(),
        (None, Some(d)) => parse_duration(&d).map(|d| start + d).map_err(|e| errors.insert("duration", e)).ok(),
        (None, None) => {
            errors.insert("duration", "Give an end or a duration.");
            None
        }
    }
}

fn window_of(form: &SilenceForm, errors: &mut FieldErrors) -> Option<WeeklyWindow> {
    let days: Vec<Weekday> = DAYS.iter().filter(|(f, _, _)| form.day_checked(f)).map(|(_, _, d)| *d).collect();
    let minutes = match parse_duration(&form.window_duration) {
        Ok(d) => u32::try_from(d.num_minutes()).unwrap_or(u32::MAX),
        Err(e) => {
            errors.insert("window_duration", e);
            return None;
        }
    };
    Some(WeeklyWindow {
        days,
        start: form.window_start.trim().to_owned(),
        duration_minutes: minutes,
        time_zone: form.time_zone.trim().to_owned(),
    })
}

/// The core's refusal next to the form's field.
fn core_errors(form: &SilenceForm, e: &SilenceError) -> FieldErrors {
    let mut errors = FieldErrors::default();
    let (field, message) = match e {
        SilenceError::EmptyMatcher => {
            ("matcher", "Give at least one of host, rule, team, message or trap OID.".to_owned())
        }
        SilenceError::Invalid { field, reason } => {
            let field = match *field {
                "message_contains" | "message_regex" => "message",
                "window.days" => "days",
                "window.start" => "window_start",
                "window.duration_minutes" => "window_duration",
                "window.time_zone" => "time_zone",
                "ends_at" if form.is_window() => "until",
                "ends_at" if form.ends_at.trim().is_empty() => "duration",
                "created_by" => "form",
                other => other,
            };
            (field, reason.clone())
        }
    };
    errors.insert(field, message);
    errors
}

async fn submit(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Form(form): Form<SilenceForm>,
) -> Response {
    let refused = |errors| (StatusCode::UNPROCESSABLE_ENTITY, render(&form_page(&session, form.clone(), errors)));
    let silence = match silence_of(&form, &session.changed_by(), Utc::now()) {
        Ok(s) => s,
        Err(errors) => return refused(errors).into_response(),
    };
    let caller = Caller { changed_by: session.changed_by(), ..caller };
    match add(&state, &caller, silence, opt(&form.reason)).await {
        Ok(view) => {
            let what = if form.is_window() { "Maintenance window" } else { "Silence" };
            session.flash_ok(format!("{what} {} created.", view.silence.id));
            Redirect::to(&format!("/silences#silence-{}", view.silence.id)).into_response()
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            errors.insert(e.field().unwrap_or("form"), e.message());
            refused(errors).into_response()
        }
    }
}

async fn expire(
    State(state): State<Arc<WebState>>,
    session: Session,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller { changed_by: session.changed_by(), ..caller };
    let result = match id.parse::<i64>() {
        Ok(id) => end_early(&state, &caller, id).await.map(|_| id),
        Err(_) => Err(ApiError::not_found(format!("There is no silence {id}."))),
    };
    match result {
        Ok(id) => session.flash_ok(format!("Silence {id} expired.")),
        Err(e) => session.flash_error(format!("Silence {id} was not expired: {}", e.message())),
    }
    Redirect::to("/silences").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Ok(Duration::hours(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration(" 1d "), Ok(Duration::days(1)));
        assert_eq!(parse_duration("45"), Ok(Duration::minutes(45)));
        for bad in ["", "0", "h", "2x", "-5", "400d", "2h5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        let t = parse_time("2026-12-24 18:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-24T18:00:00+00:00");
        assert_eq!(parse_time("2026-12-24T18:00"), Ok(t));
        assert_eq!(parse_time("2026-12-24T19:00:00+01:00"), Ok(t));
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn matcher_summary() {
        let m = Matcher {
            host: Some("core-*".into()),
            rule_id: Some(3),
            message_contains: Some("link down".into()),
            ..Default::default()
        };
        assert_eq!(summary(&m), "host core-* · rule 3 · message contains \"link down\"");
    }
}

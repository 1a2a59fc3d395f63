//! Silences and maintenance windows: which handled events are audited but not forwarded.
//!
//! A silence is a [`Matcher`] (every field given must match; at least one is required), a time
//! range (`starts_at` .. `ends_at`), a creator and a comment. A maintenance window is a silence
//! with a weekly [`WeeklyWindow`]: it silences only during its weekly occurrences, within its
//! time range (`ends_at` may then be open). A silence can be expired early (`expired_at`); it is
//! kept for the audit either way. No I/O: every evaluation takes the time as an argument, so a
//! test clock decides what is in effect.

mod window;

pub use window::WeeklyWindow;

use crate::event::EventFields;
use crate::rule::{Rule, compile_pattern};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest text a matcher field, creator or comment may hold (characters).
pub const MAX_TEXT_LEN: usize = 1000;
/// Longest creator (or expirer) name, as `config_audit_log.changed_by` holds it.
pub const MAX_CREATOR_LEN: usize = 100;

/// What a silence matches. Every field given must match; an empty matcher is refused. An
/// unknown field is refused too: a misspelt one would silently widen the silence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The event's hostname: exact, or a glob with `*` and `?` (ASCII case-insensitive, as
    /// host names are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The id of the rule that handled the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i32>,
    /// The handling rule's `team_assignment` (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// A substring of `message`, case-insensitive like a `contains` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_contains: Option<String>,
    /// A regex searched in `message`, case-insensitive like a `regex` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_regex: Option<String>,
    /// A `trap_oid` prefix on arc boundaries (`1.3.6.1.4.1.9` matches `1.3.6.1.4.1.9.9.41`,
    /// not `1.3.6.1.4.1.99`); a leading dot is ignored on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trap_oid_prefix: Option<String>,
}

/// A silence as someone asks for it (CLI, API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSilence {
    pub matcher: Matcher,
    pub starts_at: DateTime<Utc>,
    /// Required for a one-off silence; optional for a maintenance window (open-ended).
    pub ends_at: Option<DateTime<Utc>>,
    /// Makes the silence a recurring maintenance window.
    pub window: Option<WeeklyWindow>,
    pub created_by: String,
    pub comment: String,
}

/// A stored silence (expired ones included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    #[serde(flatten)]
    pub spec: NewSilence,
    pub created_at: DateTime<Utc>,
    /// Set when the silence was expired early.
    pub expired_at: Option<DateTime<Utc>>,
    pub expired_by: Option<String>,
}

/// Where a silence stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// In its time range (a maintenance window: also between its occurrences).
    Active,
    /// Ended or expired early.
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// Why a silence is refused; each names its field.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SilenceError {
    #[error(
        "matcher: at least one of host, rule_id, team, message_contains, message_regex, trap_oid_prefix is required"
    )]
    EmptyMatcher,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SilenceError {
    pub fn field(&self) -> &'static str {
        match self {
            SilenceError::EmptyMatcher => "matcher",
            SilenceError::Invalid { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SilenceError::Invalid { field, reason: reason.into() }
    }
}

fn check_text(field: &'static str, value: &str, required: bool) -> Result<(), SilenceError> {
    let len = value.chars().count();
    if required && value.trim().is_empty() {
        return Err(SilenceError::invalid(field, "must not be empty"));
    }
    if len > MAX_TEXT_LEN {
        return Err(SilenceError::invalid(field, format!("at most {MAX_TEXT_LEN} characters, not {len}")));
    }
    if value.contains('\0') {
        return Err(SilenceError::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Years both stores hold and order alike (SQLite compares the text).
fn check_time(field: &'static str, t: DateTime<Utc>) -> Result<(), SilenceError> {
    use chrono::Datelike;
    match t.year() {
        1970..=9999 => Ok(()),
        y => Err(SilenceError::invalid(field, format!("year {y} is out of range (1970 to 9999)"))),
    }
}

impl NewSilence {
    /// Checks the silence as a whole: matcher, times, window, creator and comment.
    pub fn validate(&self) -> Result<(), SilenceError> {
        CompiledMatcher::compile(&self.matcher)?;
        check_text("created_by", &self.created_by, true)?;
        if self.created_by.chars().count() > MAX_CREATOR_LEN {
            return Err(SilenceError::invalid("created_by", format!("at most {MAX_CREATOR_LEN} characters")));
        }
        check_text("comment", &self.comment, true)?;
        check_time("starts_at", self.starts_at)?;
        if let Some(end) = self.ends_at {
            check_time("ends_at", end)?;
        }
        match (&self.window, self.ends_at) {
            (None, None) => return Err(SilenceError::invalid("ends_at", "required for a silence without a window")),
            (_, Some(end)) if end <= self.starts_at => {
                return Err(SilenceError::invalid("ends_at", "must be after starts_at"));
            }
            _ => {}
        }
        if let Some(w) = &self.window {
            w.compile()?;
        }
        Ok(())
    }
}

impl Silence {
    /// Pending, active or expired at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if self.expired_at.is_some_and(|t| t <= now) || self.spec.ends_at.is_some_and(|t| t <= now) {
            SilenceState::Expired
        } else if self.spec.starts_at > now {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// When the silence stopped or stops applying: the earlier of its end and its early expiry.
    pub fn effective_end(&self) -> Option<DateTime<Utc>> {
        match (self.spec.ends_at, self.expired_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A matcher ready to test events.
#[derive(Clone, Debug)]
struct CompiledMatcher {
    /// Lower-cased host: exact when it has no wildcard.
    host: Option<String>,
    host_glob: bool,
    rule_id: Option<i32>,
    team: Option<String>,
    contains: Option<String>,
    regex: Option<Regex>,
    oid: Option<String>,
}

/// An empty string counts as not given.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl CompiledMatcher {
    fn compile(m: &Matcher) -> Result<Self, SilenceError> {
        let fields = [
            ("host", &m.host),
            ("team", &m.team),
            ("message_contains", &m.message_contains),
            ("message_regex", &m.message_regex),
            ("trap_oid_prefix", &m.trap_oid_prefix),
        ];
        for (field, v) in fields {
            check_text(field, v.as_deref().unwrap_or_default(), false)?;
        }
        let regex = match given(&m.message_regex) {
            Some(p) => Some(compile_pattern(p).map_err(|e| SilenceError::invalid("message_regex", e.to_string()))?),
            None => None,
        };
        let oid = given(&m.trap_oid_prefix).map(|p| p.trim_start_matches('.').to_owned());
        if oid.as_deref().is_some_and(|o| o.is_empty() || !o.split('.').all(|arc| arc.parse::<u64>().is_ok())) {
            return Err(SilenceError::invalid("trap_oid_prefix", "must be a dotted OID such as 1.3.6.1.4.1.9"));
        }
        let host = given(&m.host).map(str::to_ascii_lowercase);
        let c = Self {
            host_glob: host.as_deref().is_some_and(|h| h.contains(['*', '?'])),
            host,
            rule_id: m.rule_id,
            team: given(&m.team).map(str::to_owned),
            contains: given(&m.message_contains).map(str::to_lowercase),
            regex,
            oid,
        };
        let empty = c.host.is_none()
            && c.rule_id.is_none()
            && c.team.is_none()
            && c.contains.is_none()
            && c.regex.is_none()
            && c.oid.is_none();
        if empty {
            return Err(SilenceError::EmptyMatcher);
        }
        Ok(c)
    }

    fn matches(&self, event: &(impl EventFields + ?Sized), rule: &Rule) -> bool {
        if self.rule_id.is_some_and(|id| id != rule.id) {
            return false;
        }
        if self.team.as_deref().is_some_and(|t| t != rule.team_assignment) {
            return false;
        }
        if let Some(h) = &self.host {
            let host = event.hostname().unwrap_or_default().to_ascii_lowercase();
            let ok = if self.host_glob { glob_match(h.as_bytes(), host.as_bytes()) } else { *h == host };
            if !ok {
                return false;
            }
        }
        let message = event.message().unwrap_or_default();
        if self.contains.as_deref().is_some_and(|c| !message.to_lowercase().contains(c)) {
            return false;
        }
        if self.regex.as_ref().is_some_and(|r| !r.is_match(message)) {
            return false;
        }
        if let Some(prefix) = &self.oid {
            let oid = event.trap_oid().and_then(serde_json::Value::as_str).unwrap_or_default();
            let oid = oid.trim_start_matches('.');
            let on_arc = oid.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
            if !on_arc {
                return false;
            }
        }
        true
    }
}

/// `*` any run of bytes, `?` one byte; iterative with one backtrack point (linear-ish, no
/// recursion on hostile patterns).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One compiled silence.
#[derive(Clone, Debug)]
struct Compiled {
    silence: Silence,
    matcher: CompiledMatcher,
    window: Option<window::CompiledWindow>,
}

/// The silences the alerter holds, compiled; asks which one (if any) silences an event now.
#[derive(Clone, Debug, Default)]
pub struct SilenceSet {
    /// Ascending id: the oldest matching silence is named in the audit.
    silences: Vec<Compiled>,
    /// Stored silences that no longer compile (left out), with the reason.
    excluded: Vec<(i64, SilenceError)>,
}

impl SilenceSet {
    /// Compiles the silences that are not expired at `now`; the rest are dropped.
    pub fn compile(silences: Vec<Silence>, now: DateTime<Utc>) -> Self {
        let mut set = SilenceSet::default();
        for s in silences {
            if s.state(now) == SilenceState::Expired {
                continue;
            }
            let compiled = CompiledMatcher::compile(&s.spec.matcher)
                .and_then(|m| Ok((m, s.spec.window.as_ref().map(WeeklyWindow::compile).transpose()?)));
            match compiled {
                Ok((matcher, window)) => set.silences.push(Compiled { silence: s, matcher, window }),
                Err(e) => set.excluded.push((s.id, e)),
            }
        }
        set.silences.sort_by_key(|c| c.silence.id);
        set
    }

    pub fn excluded(&self) -> &[(i64, SilenceError)] {
        &self.excluded
    }

    /// How many silences (one-off and windows) are in effect at `now`.
    pub fn in_effect_count(&self, now: DateTime<Utc>) -> usize {
        self.silences.iter().filter(|c| c.in_effect(now)).count()
    }

    /// The id of the first silence in effect at `now` that matches the event its rule handled.
    pub fn silenced_by(&self, event: &(impl EventFields + ?Sized), rule: &Rule, now: DateTime<Utc>) -> Option<i64> {
        self.silences.iter().find(|c| c.in_effect(now) && c.matcher.matches(event, rule)).map(|c| c.silence.id)
    }

    pub fn is_empty(&self) -> bool {
        self.silences.is_empty()
    }
}

impl Compiled {
    fn in_effect(&self, now: DateTime<Utc>) -> bool {
        self.silence.state(now) == SilenceState::Active && self.window.as_ref().is_none_or(|w| w.contains(now))
    }
}

/// Whether a silence silences at `now` (its state and, for a window, an occurrence); a silence
/// that does not compile never does.
pub fn in_effect(silence: &Silence, now: DateTime<Utc>) -> bool {
    if silence.state(now) != SilenceState::Active {
        return false;
    }
    match &silence.spec.window {
        None => true,
        Some(w) => w.compile().is_ok_and(|w| w.contains(now)),
    }
}

/// The next start of a window occurrence at or after `now` within the silence's range (for
/// display); `None` for a one-off silence or when none comes.
pub fn next_occurrence(silence: &Silence, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let w = silence.spec.window.as_ref()?.compile().ok()?;
    let from = now.max(silence.spec.starts_at);
    let (start, end) = w.next_after(from)?;
    match silence.effective_end() {
        Some(stop) if start >= stop => None,
        _ => Some((start, end)),
    }
}

/// A silence and where it stands at a time: what the API, `muttd silence list --json` and a
/// UI page show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SilenceView {
    #[serde(flatten)]
    pub silence: Silence,
    pub state: SilenceState,
    /// Silencing at that time (a window: inside an occurrence).
    pub in_effect: bool,
    /// A window's current or next occurrence (`null` for a one-off silence or none to come).
    pub next_start: Option<DateTime<Utc>>,
    pub next_end: Option<DateTime<Utc>>,
}

impl SilenceView {
    pub fn at(silence: Silence, now: DateTime<Utc>) -> Self {
        let next = next_occurrence(&silence, now).filter(|_| silence.state(now) != SilenceState::Expired);
        Self {
            state: silence.state(now),
            in_effect: in_effect(&silence, now),
            next_start: next.map(|n| n.0),
            next_end: next.map(|n| n.1),
            silence,
        }
    }
}

#[cfg(test)]
mod tests;

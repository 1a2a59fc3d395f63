//! The alerter's settings that operators change at run time with `redis-cli SET
//! mutt:config:<key> <value>` (the original's dynamic configuration, spec §7.3), read through
//! [`mutt_queue::SettingsCache`]: again as soon as a change is announced
//! (`mutt:config:updates`), and at least every few seconds; a missing or unparsable value
//! falls back to the static default, never to an error.

use mutt_queue::settings::{self, Settings};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedMode {
    /// Move the oldest ingest events to the alerter DLQ (the original's default).
    DeadLetter,
    /// Pause instead, leaving events queued.
    Defer,
    /// Any other configured value: no shedding (as the original).
    Off,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicSettings {
    pub unhandled_threshold: u64,
    pub unhandled_expiry: Duration,
    /// Alert-queue depths above which the alerter warns, then sheds.
    pub warn_threshold: u64,
    pub shed_threshold: u64,
    pub shed_mode: ShedMode,
    pub defer_sleep: Duration,
}

impl Default for DynamicSettings {
    fn default() -> Self {
        Self {
            unhandled_threshold: 100,
            unhandled_expiry: Duration::from_secs(86_400),
            warn_threshold: 1000,
            shed_threshold: 2000,
            shed_mode: ShedMode::DeadLetter,
            defer_sleep: Duration::from_millis(250),
        }
    }
}

impl Settings for DynamicSettings {
    const KEYS: &'static [&'static str] = &[
        "unhandled_threshold",
        "unhandled_expiry_seconds",
        "alerter_queue_warn_threshold",
        "alerter_queue_shed_threshold",
        "alerter_shed_mode",
        "alerter_defer_sleep_ms",
    ];

    fn from_values(defaults: &DynamicSettings, values: &[Option<String>]) -> Self {
        let num = |i: usize| settings::positive(values, i);
        Self {
            unhandled_threshold: num(0).unwrap_or(defaults.unhandled_threshold),
            unhandled_expiry: num(1).map(Duration::from_secs).unwrap_or(defaults.unhandled_expiry),
            warn_threshold: num(2).unwrap_or(defaults.warn_threshold),
            shed_threshold: num(3).unwrap_or(defaults.shed_threshold),
            shed_mode: match settings::text(values, 4) {
                None => defaults.shed_mode,
                Some("dlq") => ShedMode::DeadLetter,
                Some("defer") => ShedMode::Defer,
                Some(_) => ShedMode::Off,
            },
            defer_sleep: num(5).map(Duration::from_millis).unwrap_or(defaults.defer_sleep),
        }
    }
}

/// The alerter's settings in force, read again on an announced change and every
/// [`mutt_queue::settings::REFRESH`].
pub type DynamicCache = mutt_queue::SettingsCache<DynamicSettings>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_override_and_bad_ones_fall_back() {
        let d = DynamicSettings::default();
        let v = |s: &str| Some(s.to_string());
        let got = DynamicSettings::from_values(&d, &[v("3"), v("nope"), None, v("10"), v("defer"), v("-5")]);
        assert_eq!(got.unhandled_threshold, 3);
        assert_eq!(got.unhandled_expiry, d.unhandled_expiry);
        assert_eq!(got.shed_threshold, 10);
        assert_eq!(got.shed_mode, ShedMode::Defer);
        assert_eq!(got.defer_sleep, d.defer_sleep);
        assert_eq!(
            DynamicSettings::from_values(&d, &[None, None, None, None, v("bogus"), None]).shed_mode,
            ShedMode::Off
        );
    }
}

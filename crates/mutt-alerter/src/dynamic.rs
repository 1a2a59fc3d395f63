//! The alerter's settings that operators change at run time with `redis-cli SET
//! mutt:config:<key> <value>` (the original's dynamic configuration, spec §7.3), read through
//! [`mutt_queue::SettingsCache`]: again as soon as a change is announced
//! (`mutt:config:updates`), and at least every few seconds; a missing or unparsable value
//! falls back to the static default, never to an error.

use mutt_core::config_catalogue as catalogue;
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

/// The catalogue's keys, in [`Settings::KEYS`] order.
const UNHANDLED: catalogue::IntKey = catalogue::UNHANDLED_THRESHOLD;
const EXPIRY: catalogue::IntKey = catalogue::UNHANDLED_EXPIRY_SECONDS;
const WARN: catalogue::IntKey = catalogue::ALERTER_QUEUE_WARN_THRESHOLD;
const SHED: catalogue::IntKey = catalogue::ALERTER_QUEUE_SHED_THRESHOLD;
const SLEEP: catalogue::IntKey = catalogue::ALERTER_DEFER_SLEEP_MS;

/// The catalogue's defaults (the original's).
impl Default for DynamicSettings {
    fn default() -> Self {
        Self {
            unhandled_threshold: UNHANDLED.default,
            unhandled_expiry: Duration::from_secs(EXPIRY.default),
            warn_threshold: WARN.default,
            shed_threshold: SHED.default,
            shed_mode: ShedMode::DeadLetter,
            defer_sleep: Duration::from_millis(SLEEP.default),
        }
    }
}

impl Settings for DynamicSettings {
    const KEYS: &'static [&'static str] =
        &[UNHANDLED.key, EXPIRY.key, WARN.key, SHED.key, catalogue::ALERTER_SHED_MODE.key, SLEEP.key];

    fn from_values(defaults: &DynamicSettings, values: &[Option<String>]) -> Self {
        let num = |i: usize, key: &catalogue::IntKey| settings::int(values, i, key);
        Self {
            unhandled_threshold: num(0, &UNHANDLED).unwrap_or(defaults.unhandled_threshold),
            unhandled_expiry: num(1, &EXPIRY).map(Duration::from_secs).unwrap_or(defaults.unhandled_expiry),
            warn_threshold: num(2, &WARN).unwrap_or(defaults.warn_threshold),
            shed_threshold: num(3, &SHED).unwrap_or(defaults.shed_threshold),
            shed_mode: match settings::text(values, 4) {
                None => defaults.shed_mode,
                Some("dlq") => ShedMode::DeadLetter,
                Some("defer") => ShedMode::Defer,
                Some(_) => ShedMode::Off,
            },
            defer_sleep: num(5, &SLEEP).map(Duration::from_millis).unwrap_or(defaults.defer_sleep),
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

//! The ingest settings operators change at run time with `muttd config set` or `redis-cli SET
//! mutt:config:<key> <value>` (the original ingestor's dynamic keys, spec §7.3), read through
//! [`mutt_queue::SettingsCache`]: again as soon as a change is announced
//! (`mutt:config:updates`), and at least every few seconds; a missing or unparsable value falls
//! back to the static setting, never to an error.

use crate::RateLimit;
use mutt_core::config_catalogue::{INGEST_MAX_RATE, INGEST_RATE_WINDOW, MAX_INGEST_QUEUE_SIZE};
use mutt_queue::settings::{self, Settings};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestSettings {
    /// `max_ingest_queue_size`: at this ingest-queue depth requests get 503.
    pub max_queue_size: u64,
    /// `ingest_max_rate` per `ingest_rate_window` seconds. A limit turned off in the static
    /// configuration stays off: the keys change its numbers only.
    pub rate_limit: Option<RateLimit>,
}

impl Settings for IngestSettings {
    const KEYS: &'static [&'static str] = &[MAX_INGEST_QUEUE_SIZE.key, INGEST_MAX_RATE.key, INGEST_RATE_WINDOW.key];

    fn from_values(defaults: &Self, values: &[Option<String>]) -> Self {
        Self {
            max_queue_size: settings::int(values, 0, &MAX_INGEST_QUEUE_SIZE).unwrap_or(defaults.max_queue_size),
            rate_limit: defaults.rate_limit.map(|d| RateLimit {
                limit: settings::int(values, 1, &INGEST_MAX_RATE).unwrap_or(d.limit),
                window: settings::int(values, 2, &INGEST_RATE_WINDOW).map(Duration::from_secs).unwrap_or(d.window),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_override_and_bad_ones_fall_back() {
        let d = IngestSettings {
            max_queue_size: 100,
            rate_limit: Some(RateLimit { limit: 1000, window: Duration::from_secs(60) }),
        };
        let v = |s: &str| Some(s.to_string());
        let got = IngestSettings::from_values(&d, &[v("5"), v("0"), v("10")]);
        assert_eq!(got.max_queue_size, 5);
        assert_eq!(got.rate_limit, Some(RateLimit { limit: 1000, window: Duration::from_secs(10) }));
        assert_eq!(IngestSettings::from_values(&d, &[v("x"), None, None]), d);
        let off = IngestSettings { rate_limit: None, ..d };
        assert_eq!(IngestSettings::from_values(&off, &[None, v("5"), v("5")]).rate_limit, None, "off stays off");
    }
}

//! `[remediation]`: the remediation role (`muttd remediation`, and inside `muttd run`), with
//! the original's variables (spec §8.5) mapped in `env.rs`.

use mutt_remediation::{ProbeConfig, RemediationConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemediationSection {
    /// `REMEDIATION_ENABLED`: off, `muttd remediation` exits at once (as the original) and
    /// `muttd run` runs no remediation.
    pub enabled: bool,
    /// `/health`, `/live` and `/metrics` of `muttd remediation` (`METRICS_PORT_REMEDIATION`).
    /// `muttd run` serves the remediation's metrics on the alerter's port instead.
    pub port: u16,
    /// Also `/health` and `/live` on this port (`HEALTH_PORT_REMEDIATION`, the original's 8087).
    pub health_port: Option<u16>,
    /// Seconds between cycles (`REMEDIATION_INTERVAL`; dynamic `remediation_interval` wins).
    pub interval_secs: u64,
    /// Entries replayed or parked per DLQ and cycle (`REMEDIATION_BATCH_SIZE`).
    pub batch_size: u64,
    /// Replays before an entry is parked in the dead DLQ (`MAX_POISON_RETRIES`).
    pub max_poison_retries: u64,
    /// Also replay `mutt:dlq:moog` while the webhook is healthy and the breaker closed.
    pub replay_moog: bool,
    /// Probe the webhook (`MOOG_HEALTH_CHECK_ENABLED`): HEAD on forwarder.webhook_url, or GET
    /// on `health_url`; never an event.
    pub health_check_enabled: bool,
    pub health_url: Option<String>,
    /// `MOOG_HEALTH_TIMEOUT`.
    pub health_timeout_secs: f64,
    /// Dead letters older than this many days (by `failed_at`) are deleted
    /// (`RETENTION_DLQ_DAYS`); 0 keeps them. Also off when retention.enabled is false.
    pub dlq_retention_days: u32,
    /// Seconds between DLQ trims (the first at start).
    pub dlq_trim_interval_secs: u64,
}

impl Default for RemediationSection {
    fn default() -> Self {
        let d = RemediationConfig::default();
        Self {
            enabled: true,
            port: 8087,
            health_port: None,
            interval_secs: d.interval.as_secs(),
            batch_size: d.batch_size,
            max_poison_retries: d.max_poison_retries,
            replay_moog: d.replay_moog,
            health_check_enabled: d.probe.enabled,
            health_url: None,
            health_timeout_secs: d.probe.timeout.as_secs_f64(),
            dlq_retention_days: d.dlq_retention_days.unwrap_or(0),
            dlq_trim_interval_secs: d.trim_interval.as_secs(),
        }
    }
}

impl RemediationSection {
    /// The worker's settings; `webhook_url` is the forwarder's, `retention` whether retention
    /// is on at all.
    pub fn to_remediation_config(&self, webhook_url: Option<String>, retention: bool) -> RemediationConfig {
        RemediationConfig {
            interval: Duration::from_secs(self.interval_secs),
            batch_size: self.batch_size,
            max_poison_retries: self.max_poison_retries,
            probe: ProbeConfig {
                enabled: self.health_check_enabled,
                webhook_url,
                health_url: self.health_url.clone(),
                timeout: Duration::from_secs_f64(self.health_timeout_secs),
                ..ProbeConfig::default()
            },
            replay_moog: self.replay_moog,
            dlq_retention_days: (retention && self.dlq_retention_days > 0).then_some(self.dlq_retention_days),
            trim_interval: Duration::from_secs(self.dlq_trim_interval_secs),
        }
    }

    /// Settings that must not be zero.
    pub(super) fn zeros(&self) -> [(&'static str, bool); 5] {
        [
            ("remediation.interval_secs", self.interval_secs == 0),
            ("remediation.batch_size", self.batch_size == 0),
            ("remediation.max_poison_retries", self.max_poison_retries == 0),
            ("remediation.dlq_trim_interval_secs", self.dlq_trim_interval_secs == 0),
            (
                "remediation.health_timeout_secs",
                !(self.health_timeout_secs.is_finite() && self.health_timeout_secs > 0.0),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_and_the_crates() {
        let s = RemediationSection::default();
        let c = s.to_remediation_config(None, true);
        let d = RemediationConfig::default();
        assert_eq!((c.interval, c.batch_size, c.max_poison_retries), (d.interval, d.batch_size, d.max_poison_retries));
        assert_eq!((c.interval.as_secs(), c.batch_size, c.max_poison_retries), (300, 10, 3));
        assert_eq!((c.dlq_retention_days, c.replay_moog, c.probe.timeout.as_secs()), (Some(30), false, 5));
        assert_eq!(s.to_remediation_config(None, false).dlq_retention_days, None, "retention off");
        assert_eq!(s.port, 8087);
    }
}

//! `[http]`: the limits every HTTP listener of muttd applies (ingest, web, and the metrics and
//! probe ports of the alerter and forwarder), so that slow or numerous clients cannot starve
//! a role ([`mutt_service::HttpLimits`]).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Seconds a client has to send a request's line and headers; also how long an idle
    /// keep-alive connection stays open. Past it the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body, from its headers; past it: 408.
    pub body_read_timeout_secs: u64,
    /// Seconds a whole request may take, body and handling; past it: 503.
    pub request_timeout_secs: u64,
    /// Connections open at once per listener; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Largest request head (line and headers) in bytes, also what a connection reads ahead at
    /// most; past it: 431. Between [`MIN_HEAD_BYTES`] and [`MAX_HEAD_BYTES`].
    pub max_head_bytes: usize,
}

/// The range of `http.max_head_bytes`: hyper's smallest read buffer, and 1 MiB (each open
/// connection may hold a buffer this size).
pub const MIN_HEAD_BYTES: usize = mutt_service::http::MIN_HEAD_BYTES;
pub const MAX_HEAD_BYTES: usize = 1024 * 1024;

impl Default for HttpSection {
    fn default() -> Self {
        let d = mutt_service::HttpLimits::default();
        Self {
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            body_read_timeout_secs: d.body_read_timeout.as_secs(),
            request_timeout_secs: d.request_timeout.as_secs(),
            max_connections: d.max_connections,
            max_head_bytes: d.max_head_bytes,
        }
    }
}

impl HttpSection {
    pub fn limits(&self) -> mutt_service::HttpLimits {
        mutt_service::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections,
            max_head_bytes: self.max_head_bytes,
        }
    }

    /// Whether `max_head_bytes` is within [`MIN_HEAD_BYTES`]..=[`MAX_HEAD_BYTES`].
    pub(super) fn head_limit_ok(&self) -> bool {
        (MIN_HEAD_BYTES..=MAX_HEAD_BYTES).contains(&self.max_head_bytes)
    }

    /// Settings that must be at least 1 (a zero timeout would refuse every request).
    pub(super) fn zeros(&self) -> [(&'static str, bool); 4] {
        [
            ("http.header_read_timeout_secs", self.header_read_timeout_secs == 0),
            ("http.body_read_timeout_secs", self.body_read_timeout_secs == 0),
            ("http.request_timeout_secs", self.request_timeout_secs == 0),
            ("http.max_connections", self.max_connections == 0),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_env_overrides_and_zero_refused() {
        let c = super::super::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.http.limits(), mutt_service::HttpLimits::default());
        assert_eq!(c.ingestor.to_ingest_config(Vec::new()).max_event_bytes, 256 * 1024);
        let c = super::super::load(
            None,
            &env(&[("MUTT_HTTP__HEADER_READ_TIMEOUT_SECS", "5"), ("MUTT_INGESTOR__MAX_EVENT_BYTES", "1000")]),
        )
        .unwrap();
        assert_eq!(c.http.limits().header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.ingestor.max_event_bytes, 1000);
        for key in [
            "MUTT_HTTP__HEADER_READ_TIMEOUT_SECS",
            "MUTT_HTTP__BODY_READ_TIMEOUT_SECS",
            "MUTT_HTTP__REQUEST_TIMEOUT_SECS",
            "MUTT_HTTP__MAX_CONNECTIONS",
            "MUTT_INGESTOR__MAX_EVENT_BYTES",
        ] {
            let e = super::super::load(None, &env(&[(key, "0")])).unwrap_err().to_string();
            assert_eq!(e, format!("{key}=\"0\": must be at least 1"));
        }
    }

    #[test]
    fn the_head_limit_is_16_kib_unless_set_within_its_range() {
        let c = super::super::load(None, &HashMap::new()).unwrap();
        assert_eq!(c.http.limits().max_head_bytes, 16 * 1024);
        let c = super::super::load(None, &env(&[("MUTT_HTTP__MAX_HEAD_BYTES", "65536")])).unwrap();
        assert_eq!(c.http.limits().max_head_bytes, 65536);
        // hyper panics below 8 KiB: refused with the range rather than passed on.
        for bad in ["8191", "0", "1048577"] {
            let e = super::super::load(None, &env(&[("MUTT_HTTP__MAX_HEAD_BYTES", bad)])).unwrap_err().to_string();
            assert_eq!(e, format!("MUTT_HTTP__MAX_HEAD_BYTES=\"{bad}\": must be between 8192 and 1048576 bytes"));
        }
        for edge in ["8192", "1048576"] {
            assert!(super::super::load(None, &env(&[("MUTT_HTTP__MAX_HEAD_BYTES", edge)])).is_ok(), "{edge}");
        }
    }
}

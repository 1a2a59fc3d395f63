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
}

impl Default for HttpSection {
    fn default() -> Self {
        let d = mutt_service::HttpLimits::default();
        Self {
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            body_read_timeout_secs: d.body_read_timeout.as_secs(),
            request_timeout_secs: d.request_timeout.as_secs(),
            max_connections: d.max_connections,
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
        }
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

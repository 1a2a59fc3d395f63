//! `[slo]`: where `muttd slo` (and later `GET /api/v1/slo`) measures the SLOs.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloSection {
    /// The Prometheus that scrapes MUTT (`PROMETHEUS_URL`, as the original), e.g.
    /// `http://prometheus:9090`; the SLO queries run there over their windows.
    pub prometheus_url: Option<String>,
    /// Without a Prometheus: the `/metrics` URLs of the roles whose counters are read (since
    /// each process started). Empty: this machine's role ports (`http://127.0.0.1:<port>/metrics`
    /// of the ingestor, alerter and forwarder), which is where `muttd run` serves them.
    pub metrics_urls: Vec<String>,
}

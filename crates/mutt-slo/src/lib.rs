//! The SLO report (spec §6.7, §10.5): each definition of [`mutt_core::slo`] measured either
//! by a Prometheus that scrapes MUTT ([`prometheus`], the original's way: the query over the
//! SLO's window) or, when none is configured, from the roles' own `/metrics` counters
//! ([`metrics`]: the same counters and histograms, read directly, covering the time since each
//! process started), so the embedded default has SLOs too. Used by `muttd slo` and the
//! management API.

pub mod metrics;
pub mod prometheus;

use mutt_core::slo::{DEFINITIONS, NoData, SloDefinition, SloReport, SloStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SloSource {
    /// A Prometheus base URL (`PROMETHEUS_URL`), e.g. `http://127.0.0.1:9090`.
    Prometheus(String),
    /// `/metrics` URLs of the running roles.
    Metrics(Vec<String>),
}

/// How long one HTTP request may take (the original's 5 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `url` without a user name or password, for messages and logs.
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

/// Every SLO of [`DEFINITIONS`], measured from `source`, with the windows and thresholds of
/// the dynamic keys in `dynamic` (`slo_<name>_…`; unset or invalid ones take the definition's).
pub async fn report(client: &reqwest::Client, source: &SloSource, dynamic: &BTreeMap<String, String>) -> SloReport {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let lookup = |k: &str| dynamic.get(k).cloned();
    match source {
        SloSource::Prometheus(base) => {
            let mut slos = Vec::with_capacity(DEFINITIONS.len());
            for def in DEFINITIONS {
                let t = def.thresholds(lookup);
                let value = prometheus::query(client, base, &def.query(&t)).await;
                let value = value
                    .ok_or_else(|| NoData { status: SloStatus::Critical, message: "No data from Prometheus".into() });
                slos.push(def.evaluate(&t, value));
            }
            SloReport::new(timestamp, "prometheus", slos, None)
        }
        SloSource::Metrics(urls) => {
            let scraped = metrics::scrape(client, urls).await;
            let slos = DEFINITIONS.iter().map(|def| from_scrape(def, &scraped, &lookup)).collect();
            SloReport::new(timestamp, "muttd-metrics", slos, scraped.covered_seconds())
        }
    }
}

fn from_scrape(
    def: &SloDefinition,
    scraped: &metrics::Scraped,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> mutt_core::slo::SloResult {
    let t = def.thresholds(lookup);
    let value = if scraped.reached == 0 {
        Err(NoData {
            status: SloStatus::Critical,
            message: format!(
                "No metrics: no role answered at {}",
                scraped.urls.iter().map(|u| shown(u)).collect::<Vec<_>>().join(", ")
            ),
        })
    } else {
        def.measure.from_samples(&scraped.samples).ok_or_else(|| NoData {
            status: SloStatus::Unknown,
            message: "Nothing counted yet since the roles started".into(),
        })
    };
    def.evaluate(&t, value)
}

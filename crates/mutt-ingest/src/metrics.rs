//! The ingestor's metrics, under the original's names (spec §10.1).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub status: &'static str,
    pub reason: &'static str,
}

/// Labels of `mutt_ingest_key_requests_total`: the name of the API key (never the key) and
/// the outcome as in `mutt_ingest_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyRequestLabels {
    pub key: String,
    pub status: &'static str,
}

/// Labels of `mutt_ingest_dropped_total`: which native listener dropped and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `syslog_udp`, `syslog_tcp`, `syslog_tls`, `snmp`, ...
    pub listener: String,
    /// `queue_full`, `unavailable`, `rate_limit`, `validation`, `parse`, `oversize`, ...
    pub reason: String,
}

#[derive(Clone)]
pub struct IngestMetrics {
    /// `mutt_ingest_requests_total{status,reason}`: one per request outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// `mutt_ingest_events_total`: events queued (a batch counts each event).
    pub events: Counter,
    /// `mutt_ingest_queue_depth`: the last ingest-queue depth seen.
    pub queue_depth: Gauge,
    /// `mutt_ingest_latency_seconds`: handler time.
    pub latency: Histogram,
    /// `mutt_ingest_rate_limit_hits_total`: 429s issued.
    pub rate_limit_hits: Counter,
    /// `mutt_ingest_dropped_total{listener,reason}`: events a native listener (UDP syslog,
    /// SNMP traps) received but could not queue and had to drop.
    pub dropped: Family<DropLabels, Counter>,
    /// `mutt_ingest_key_requests_total{key,status}`: requests admitted by the key gate, by
    /// key name (a family of its own: the original's `mutt_ingest_requests_total` keeps its
    /// labels).
    pub key_requests: Family<KeyRequestLabels, Counter>,
}

impl IngestMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self {
            requests: Family::default(),
            events: Counter::default(),
            queue_depth: Gauge::default(),
            latency: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            rate_limit_hits: Counter::default(),
            dropped: Family::default(),
            key_requests: Family::default(),
        };
        metrics.register(|r| {
            r.register("mutt_ingest_requests", "Ingest requests by outcome", m.requests.clone());
            r.register("mutt_ingest_events", "Events queued for the alerter", m.events.clone());
            r.register("mutt_ingest_queue_depth", "Ingest queue depth last seen", m.queue_depth.clone());
            r.register("mutt_ingest_latency_seconds", "Ingest request handling time", m.latency.clone());
            r.register("mutt_ingest_rate_limit_hits", "Requests refused by the rate limit", m.rate_limit_hits.clone());
            r.register("mutt_ingest_dropped", "Events dropped by a native listener", m.dropped.clone());
            r.register("mutt_ingest_key_requests", "Ingest requests by API key name", m.key_requests.clone());
        });
        m
    }

    /// Counts `n` events dropped by `listener` for `reason`.
    pub fn drop_events(&self, listener: &str, reason: &str, n: u64) {
        self.dropped.get_or_create(&DropLabels { listener: listener.into(), reason: reason.into() }).inc_by(n);
    }

    pub fn request(&self, status: &'static str, reason: &'static str) {
        self.requests.get_or_create(&RequestLabels { status, reason }).inc();
    }
}

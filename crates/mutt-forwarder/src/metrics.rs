//! The forwarder's metrics, under the original's names (spec §10.1).

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone)]
pub struct ForwarderMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_latency: Histogram,
    pub alerts_processed: Family<StatusLabel, Counter>,
    pub processing_list_depth: Gauge,
}

impl ForwarderMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self {
            requests: Family::default(),
            request_latency: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            alerts_processed: Family::default(),
            processing_list_depth: Gauge::default(),
        };
        metrics.register(|r| {
            r.register("mutt_moog_requests", "Webhook requests by outcome", m.requests.clone());
            r.register("mutt_moog_request_latency_seconds", "Webhook request time", m.request_latency.clone());
            r.register("mutt_moog_alerts_processed", "Alerts by outcome", m.alerts_processed.clone());
            r.register(
                "mutt_moog_processing_list_depth",
                "Alerts leased by this forwarder",
                m.processing_list_depth.clone(),
            );
        });
        m
    }

    pub fn request(&self, status: &'static str, reason: &'static str) {
        self.requests.get_or_create(&RequestLabels { status, reason }).inc();
    }

    pub fn processed(&self, status: &'static str) {
        self.alerts_processed.get_or_create(&StatusLabel { status }).inc();
    }
}

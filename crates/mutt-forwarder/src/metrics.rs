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
    pub rate_limit_hits: Counter,
    pub duplicates: Counter,
    /// Ingest (the event id's UUIDv7 time) to delivery.
    pub delivery_latency: Histogram,
    pub breaker_state: Family<NameLabel, Gauge>,
    pub breaker_failures_family: Family<NameLabel, Gauge>,
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    pub breaker_state_moog: Gauge,
    pub breaker_failures: Gauge,
    /// `mutt_moog_circuit_open` (0/1), the name the original's alert rules use.
    pub circuit_open: Gauge,
    /// `mutt_moog_alerts_processed{status="success"}`, bound once: counted per alert, where a
    /// label lookup would cost a lock and a hash each.
    pub delivered: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    pub name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub name: &'static str,
    pub from_state: &'static str,
    pub to_state: &'static str,
}

impl ForwarderMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self {
            requests: Family::default(),
            request_latency: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            alerts_processed: Family::default(),
            processing_list_depth: Gauge::default(),
            rate_limit_hits: Counter::default(),
            duplicates: Counter::default(),
            delivery_latency: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            breaker_state: Family::default(),
            breaker_failures_family: Family::default(),
            breaker_transitions: Family::default(),
            breaker_state_moog: Gauge::default(),
            breaker_failures: Gauge::default(),
            circuit_open: Gauge::default(),
            delivered: Counter::default(),
        };
        // The breaker gauges are labelled {name="moogsoft"}: bind the two series once.
        let state = m.breaker_state.get_or_create(&NameLabel { name: crate::worker::BREAKER }).clone();
        let failures = m.breaker_failures_family.get_or_create(&NameLabel { name: crate::worker::BREAKER }).clone();
        let delivered = m.alerts_processed.get_or_create(&StatusLabel { status: "success" }).clone();
        let m = Self { breaker_state_moog: state, breaker_failures: failures, delivered, ..m };
        m.precreate();
        metrics.register(|r| m.register_in(r));
        m
    }

    /// The series of every label value the forwarder records, at 0 from the start, so that
    /// `rate()` and alert rules see them before the first event (a breaker transition only
    /// appears when it happens).
    fn precreate(&self) {
        let fail = |reason| ("fail", reason);
        let requests = [
            ("success", ""),
            fail("http"),
            fail("rate_limit"),
            fail("retry_exhausted"),
            fail("circuit_open"),
            fail("unauthorized"),
            fail("redirect"),
        ];
        for (status, reason) in requests {
            let _ = self.requests.get_or_create(&RequestLabels { status, reason });
        }
        for status in ["success", "dlq", "error"] {
            let _ = self.alerts_processed.get_or_create(&StatusLabel { status });
        }
    }

    /// Every metric of spec §10.1's forwarder table, plus the duplicates skipped, the ingest
    /// to delivery time and the original rules' `mutt_moog_circuit_open`.
    fn register_in(&self, r: &mut prometheus_client::registry::Registry) {
        r.register("mutt_moog_requests", "Webhook requests by outcome", self.requests.clone());
        r.register("mutt_moog_request_latency_seconds", "Webhook request time", self.request_latency.clone());
        r.register("mutt_moog_alerts_processed", "Alerts by outcome", self.alerts_processed.clone());
        r.register(
            "mutt_moog_processing_list_depth",
            "Alerts leased by this forwarder",
            self.processing_list_depth.clone(),
        );
        r.register(
            "mutt_moog_rate_limit_hits",
            "Batches held back by the shared rate limit (not counted in requests)",
            self.rate_limit_hits.clone(),
        );
        r.register("mutt_moog_duplicates_skipped", "Alerts not sent again: already delivered", self.duplicates.clone());
        r.register(
            "mutt_moog_delivery_latency_seconds",
            "Time from ingest (the event id's time) to delivery",
            self.delivery_latency.clone(),
        );
        r.register(
            "mutt_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            self.breaker_state.clone(),
        );
        r.register(
            "mutt_circuit_breaker_failures",
            "Consecutive delivery failures",
            self.breaker_failures_family.clone(),
        );
        r.register(
            "mutt_circuit_breaker_state_changes",
            "Circuit breaker state changes seen by this forwarder",
            self.breaker_transitions.clone(),
        );
        r.register("mutt_moog_circuit_open", "1 while the circuit breaker is open", self.circuit_open.clone());
    }

    pub fn request(&self, status: &'static str, reason: &'static str) {
        self.requests.get_or_create(&RequestLabels { status, reason }).inc();
    }

    pub fn processed(&self, status: &'static str) {
        self.alerts_processed.get_or_create(&StatusLabel { status }).inc();
    }
}

impl ForwarderMetrics {
    pub fn breaker_transition(&self, from_state: &'static str, to_state: &'static str) {
        self.breaker_transitions
            .get_or_create(&TransitionLabels { name: crate::worker::BREAKER, from_state, to_state })
            .inc();
    }
}

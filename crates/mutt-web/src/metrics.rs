//! The web role's metrics, under the original's names (spec §10.1): API requests and their
//! time per endpoint (`rules`, `metrics`, `slo`, `audit`, as the original counted), the
//! database query time per operation, and the time of the ingest-rate counter reads
//! (`mutt_webui_redis_scan_latency_seconds`: no SCAN any more, the same purpose). Also the
//! ingest-rate answer's cache ([`RatesCache`], `METRICS_CACHE_TTL`).

use crate::ApiError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    /// The API key's name (never the key).
    pub key: String,
    /// `success` (2xx/3xx) or `error`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// The original's default (seconds) buckets.
const DEFAULT_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// Milliseconds: the original observed ms into seconds-sized buckets, so nearly every query
/// landed in `+Inf`; these are the alerter's `mutt_db_write_latency_ms` buckets.
const MS_BUCKETS: [f64; 11] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];

#[derive(Clone)]
pub struct WebMetrics {
    /// `mutt_webui_api_requests_total{endpoint,status}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `mutt_webui_api_latency_seconds{endpoint}`.
    pub latency: Family<EndpointLabel, Histogram>,
    /// `mutt_webui_redis_scan_latency_seconds`.
    pub redis_scan_latency: Histogram,
    /// `mutt_webui_db_query_latency_ms{operation}`.
    pub db_query_latency_ms: Family<OperationLabel, Histogram>,
    /// `mutt_webui_api_key_requests_total{key,status}`: API requests by the name of the key
    /// they carried (a family of its own beside the original's).
    pub key_requests: Family<KeyLabels, Counter>,
}

impl WebMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])),
            redis_scan_latency: Histogram::new(DEFAULT_BUCKETS),
            db_query_latency_ms: Family::new_with_constructor(|| Histogram::new(MS_BUCKETS)),
            key_requests: Family::default(),
        };
        // The series the counted handlers record, at 0 from the start.
        let series: [(&str, &[&str]); 4] = [
            ("rules", &["success", "error", "error_invalid"]),
            ("metrics", &["success", "success_cached", "fail_redis", "fail_unknown"]),
            ("slo", &["success", "error"]),
            ("audit", &["success", "error", "error_invalid"]),
        ];
        for (endpoint, statuses) in series {
            for status in statuses {
                let _ = m.requests.get_or_create(&RequestLabels { endpoint, status });
            }
            let _ = m.latency.get_or_create(&EndpointLabel { endpoint });
        }
        let _ = m.db_query_latency_ms.get_or_create(&OperationLabel { operation: "get_rules" });
        metrics.register(|r| {
            r.register("mutt_webui_api_requests", "API requests by endpoint and outcome", m.requests.clone());
            r.register("mutt_webui_api_key_requests", "API requests by API key name", m.key_requests.clone());
            r.register("mutt_webui_api_latency_seconds", "API request time by endpoint", m.latency.clone());
            r.register(
                "mutt_webui_redis_scan_latency_seconds",
                "Redis SCAN time of the ingest-rate data",
                m.redis_scan_latency.clone(),
            );
            r.register("mutt_webui_db_query_latency_ms", "Database query time in ms", m.db_query_latency_ms.clone());
        });
        m
    }

    /// Counts a counted handler's outcome (the original's statuses: `success`, `error_invalid`
    /// for a refused input, `error` otherwise) and its time since `started`.
    pub fn api<T>(&self, endpoint: &'static str, started: Instant, result: &Result<T, ApiError>) {
        let status = match result {
            Ok(_) => "success",
            Err(e) if e.status().is_client_error() => "error_invalid",
            Err(_) => "error",
        };
        self.requests.get_or_create(&RequestLabels { endpoint, status }).inc();
        self.latency.get_or_create(&EndpointLabel { endpoint }).observe(started.elapsed().as_secs_f64());
    }

    /// Counts an answer of the ingest-rate endpoint with the original's statuses: `success`,
    /// `success_cached`, `fail_redis` (the backend is unavailable), `fail_unknown`.
    pub fn rates<T>(&self, started: Instant, cached: bool, result: &Result<T, ApiError>) {
        let status = match result {
            Ok(_) if cached => "success_cached",
            Ok(_) => "success",
            Err(e) if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE => "fail_redis",
            Err(_) => "fail_unknown",
        };
        let endpoint = "metrics";
        self.requests.get_or_create(&RequestLabels { endpoint, status }).inc();
        self.latency.get_or_create(&EndpointLabel { endpoint }).observe(started.elapsed().as_secs_f64());
    }

    /// Records a database query's time since `started`, in milliseconds.
    pub fn db_query(&self, operation: &'static str, started: Instant) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.db_query_latency_ms.get_or_create(&OperationLabel { operation }).observe(ms);
    }
}

/// The last ingest-rate answer and when it was made: one per web role, as the original kept
/// one per Web UI process.
#[derive(Default)]
pub(crate) struct RatesCache(Mutex<Option<(Instant, serde_json::Value)>>);

impl RatesCache {
    /// The cached answer if it is younger than `ttl` (a zero `ttl`: never).
    pub(crate) fn fresh(&self, ttl: Duration) -> Option<serde_json::Value> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(at, _)| !ttl.is_zero() && at.elapsed() < ttl).map(|(_, v)| v.clone())
    }

    pub(crate) fn store(&self, value: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), value));
    }
}

//! A process's Prometheus registry. Metric names are the original's (spec §10.1) so that the
//! original Grafana dashboards and alert rules keep working.

use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// The registry shared by the roles of one process; roles register their metrics at start.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers metrics (called once per role at start-up).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
    }

    /// The OpenMetrics text of every registered metric.
    pub fn encode(&self) -> String {
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

//! `/health` of the web role: the queue backend and the database answer.

use async_trait::async_trait;
use mutt_queue::Queue;
use mutt_service::{HealthCheck, HealthReport};
use mutt_store::Store;
use serde_json::json;
use std::sync::Arc;

pub(crate) struct WebHealth {
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) store: Arc<dyn Store>,
}

#[async_trait]
impl HealthCheck for WebHealth {
    async fn check(&self) -> HealthReport {
        let redis = self.queue.ping().await.err().map(|e| e.to_string());
        let db = self.store.ping().await.err().map(|e| e.to_string());
        let healthy = redis.is_none() && db.is_none();
        HealthReport {
            healthy,
            body: json!({
                "status": if healthy { "healthy" } else { "unhealthy" },
                "service": "mutt-web",
                "version": env!("CARGO_PKG_VERSION"),
                "redis": redis.unwrap_or_else(|| "connected".into()),
                "database": db.unwrap_or_else(|| "connected".into()),
            }),
        }
    }
}

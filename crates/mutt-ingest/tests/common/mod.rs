//! Set-up shared by the ingest tests that call [`Ingest`] directly.

use mutt_ingest::{Ingest, IngestConfig, IngestMetrics};
use mutt_testapp::{BackendKind, Site, TestBackend};

/// A fresh site of `kind` and the ingest step over it (the site lives as long as the test).
pub async fn setup(kind: BackendKind, config: IngestConfig) -> (Site, TestBackend, Ingest) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let metrics = IngestMetrics::register(&mutt_service::Metrics::new());
    let ingest = Ingest::new(b.queue.clone(), b.coordination.clone(), config, metrics);
    (site, b, ingest)
}

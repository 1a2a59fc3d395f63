//! The ingestor role: the HTTP ingest API.

use super::{Context, Slot, Started};
use anyhow::Result;

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let config = cx.config;
    // The embedded backend generates a key on first use, unless auth is explicitly off.
    let generated = (cx.embedded && !config.ingestor.auth_disabled).then_some("ingest-api-key");
    let api_keys = super::api_keys(cx, "INGEST_API_KEY", generated)?;
    let ingest = config.ingestor.to_ingest_config(api_keys);
    let router = mutt_ingest::router(cx.queue.clone(), cx.coordination.clone(), ingest, slot.metrics)?;
    Ok(Started::task(super::spawn_server(mutt_service::serve(slot.listener, router, cx.shutdown.clone()))))
}

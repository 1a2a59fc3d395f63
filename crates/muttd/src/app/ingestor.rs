//! The ingestor role: the HTTP ingest API.

use super::{Context, Started};
use anyhow::Result;
use mutt_core::PodName;
use tokio::net::TcpListener;

pub(super) async fn start(cx: &Context<'_>, listener: TcpListener, _pod: &PodName) -> Result<Started> {
    let config = cx.config;
    // The embedded backend generates a key on first use, unless auth is explicitly off.
    let generated = (cx.embedded && !config.ingestor.auth_disabled).then_some("ingest-api-key");
    let api_keys = super::api_keys(cx, "INGEST_API_KEY", generated)?;
    let ingest = config.ingestor.to_ingest_config(api_keys);
    let router = mutt_ingest::router(cx.queue.clone(), cx.coordination.clone(), ingest, cx.metrics.clone())?;
    Ok(Started::task(super::spawn_server(mutt_service::serve(listener, router, cx.shutdown.clone()))))
}

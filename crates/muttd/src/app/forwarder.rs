//! The forwarder role: delivers alerts to the webhook (or the alerts file) and serves its ops
//! endpoints.

use super::{Context, Started};
use anyhow::Result;
use mutt_core::PodName;
use mutt_forwarder::{Destination, Forwarder, ForwarderMetrics};
use mutt_queue::WorkerRole;
use std::sync::Arc;
use tokio::net::TcpListener;

pub(super) async fn start(cx: &Context<'_>, listener: TcpListener, pod: &PodName) -> Result<Started> {
    let config = cx.config;
    let destination = config.forwarder_destination();
    if let Destination::File(file) = &destination {
        tracing::warn!(
            file = %file.display(),
            "no webhook configured (forwarder.webhook_url / MOOG_WEBHOOK_URL): alerts are written to a file"
        );
    }
    let moog_key = cx.secrets.get("MOOG_API_KEY")?;
    let cfg = config.forwarder.to_forwarder_config(&config.worker, destination, cx.embedded, moog_key)?;
    let forwarder = Forwarder::start(
        cx.queue.clone(),
        cx.coordination.clone(),
        config.worker.consumer_config(WorkerRole::Forwarder, pod.clone(), &cx.queue_metrics),
        cfg,
        ForwarderMetrics::register(&cx.metrics),
    )
    .await?;
    let webhook_url = config.forwarder.webhook_url.clone().unwrap_or_default();
    let health = Arc::new(mutt_forwarder::health(cx.queue.clone(), webhook_url, pod.to_string()));
    let router = mutt_service::ops::routes(cx.metrics.clone(), health);
    let server = mutt_service::serve(listener, router, cx.shutdown.clone());
    let task = super::spawn_worker(server, cx.shutdown.clone(), |sd| async move {
        forwarder.run(sd).await;
        Ok(())
    });
    Ok(Started::task(task))
}

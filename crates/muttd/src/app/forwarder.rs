//! The forwarder role: delivers alerts to the webhook (or the alerts file) and serves its ops
//! endpoints.

use super::{Context, Slot, Started};
use anyhow::Result;
use mutt_forwarder::{Destination, Forwarder, ForwarderMetrics};
use mutt_queue::{Coordination, WorkerRole, settings};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let (config, pod) = (cx.config, slot.pod.clone());
    let destination = config.forwarder_destination();
    if let Destination::File(file) = &destination {
        tracing::warn!(
            file = %file.display(),
            "no webhook configured (forwarder.webhook_url / MOOG_WEBHOOK_URL): alerts are written to a file"
        );
    }
    let moog_key = cx.secrets.get("MOOG_API_KEY")?;
    let mut cfg = config.forwarder.to_forwarder_config(&config.worker, destination, cx.embedded, moog_key)?;
    // The alerts file is as durable as the embedded data file: `full` fsyncs each batch.
    cfg.alerts_file_sync = config.embedded.durability == crate::config::Durability::Full;
    if let Some(breaker) = cfg.breaker.as_mut() {
        *breaker = dynamic_breaker(cx.coordination.as_ref(), *breaker).await;
    }
    let forwarder = Forwarder::start(
        cx.queue.clone(),
        cx.coordination.clone(),
        config.worker.consumer_config(WorkerRole::Forwarder, pod.clone(), &cx.queue_metrics),
        cfg,
        ForwarderMetrics::register(&slot.metrics),
    )
    .await?;
    follow_moog_key(cx, &forwarder);
    let watchdog = config.worker.watchdog();
    let forwarder = forwarder.with_watchdog(watchdog.clone());
    let webhook_url = config.forwarder.webhook_url.clone().unwrap_or_default();
    let health = Arc::new(mutt_forwarder::health(cx.queue.clone(), webhook_url, pod.to_string()).watchdog(watchdog));
    let probe_port = config.forwarder.health_port.map(|p| ("forwarder.health_port (HEALTH_PORT_MOOG)", p));
    let (servers, probe) = super::ops_servers(cx, slot, health, probe_port).await?;
    let task = super::spawn_worker(servers, cx.shutdown.clone(), |sd| async move {
        forwarder.run(sd).await;
        Ok(())
    });
    Ok(Started { task, rules: None, probe })
}

/// A rotated MOOG_API_KEY (Vault, re-read periodically) is sent from the next request on, in
/// the configured scheme (bearer, REST LAM token or basic-auth password). An empty value keeps
/// the old key: a forwarder without credentials would only be refused.
fn follow_moog_key(cx: &Context<'_>, forwarder: &Forwarder) {
    let Some(key) = forwarder.moog_key() else { return };
    crate::secrets::vault::follow(cx.secrets, "MOOG_API_KEY", move |value| {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            tracing::warn!("MOOG_API_KEY is now empty or gone; the key in use stays");
            return;
        };
        if !key.set(v) {
            tracing::warn!("MOOG_API_KEY changed, but the webhook was configured to send no credentials");
        }
    });
}

/// The breaker's threshold and open time with `circuit_breaker_threshold` and
/// `circuit_breaker_timeout` (seconds) from dynamic configuration over the static ones, read at
/// start as the original did (spec §7.3); unreadable or invalid values leave the static ones.
async fn dynamic_breaker(coordination: &dyn Coordination, (threshold, open_for): (u64, Duration)) -> (u64, Duration) {
    use mutt_core::config_catalogue::{CIRCUIT_BREAKER_THRESHOLD as T, CIRCUIT_BREAKER_TIMEOUT as O};
    match coordination.config_values(&[T.key, O.key]).await {
        Ok(v) => (
            settings::int(&v, 0, &T).unwrap_or(threshold),
            settings::int(&v, 1, &O).map(Duration::from_secs).unwrap_or(open_for),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "dynamic configuration unreadable: the configured circuit breaker applies");
            (threshold, open_for)
        }
    }
}

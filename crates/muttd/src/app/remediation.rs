//! The remediation role: `muttd remediation` with its own ops port, or inside `muttd run`
//! without one (its metrics on the process-metrics role's `/metrics`, as retention runs in
//! the alerter's process).

use super::{Context, Slot, Started};
use anyhow::{Result, anyhow};
use mutt_remediation::{Remediation, RemediationMetrics};
use std::sync::Arc;
use tokio::task::JoinHandle;

fn worker(cx: &Context<'_>, metrics: &mutt_service::Metrics) -> Result<Remediation> {
    let store = cx.store.clone().ok_or_else(|| anyhow!("remediation needs a store"))?;
    let c = cx.config;
    let cfg = c.remediation.to_remediation_config(c.forwarder.webhook_url.clone(), c.retention.enabled);
    let metrics = RemediationMetrics::register(metrics);
    Ok(Remediation::new(cx.queue.clone(), cx.coordination.clone(), store, cfg, metrics))
}

/// `muttd remediation`: the worker and its ops servers.
pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let worker = worker(cx, &slot.metrics)?;
    let store = cx.store.clone().ok_or_else(|| anyhow!("remediation needs a store"))?;
    let health = Arc::new(mutt_remediation::health(cx.queue.clone(), store, slot.pod.to_string()));
    let probe_port =
        cx.config.remediation.health_port.map(|p| ("remediation.health_port (HEALTH_PORT_REMEDIATION)", p));
    let (servers, probe) = super::ops_servers(cx, slot, health, probe_port).await?;
    let task = super::spawn_worker(servers, cx.shutdown.clone(), |sd| async move {
        worker.run(sd).await;
        Ok(())
    });
    Ok(Started { task, rules: None, probe })
}

/// Inside `muttd run`: the worker alone, its metrics in `registry`.
pub(super) fn start_inside(cx: &Context<'_>, registry: &mutt_service::Metrics) -> Result<JoinHandle<Result<()>>> {
    let worker = worker(cx, registry)?;
    let shutdown = cx.shutdown.clone();
    Ok(tokio::spawn(async move {
        worker.run(shutdown).await;
        Ok(())
    }))
}

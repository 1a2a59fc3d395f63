//! The alerter role: the rule engine's consumer and its ops endpoints, the watcher that reloads
//! the rules when they change elsewhere, and the store's upkeep (partitions, retention).

use super::{Context, Slot, Started};
use anyhow::{Result, anyhow};
use mutt_alerter::{Alerter, AlerterMetrics};
use mutt_queue::WorkerRole;
use std::sync::Arc;

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let (config, pod) = (cx.config, slot.pod.clone());
    let store = cx.store.clone().ok_or_else(|| anyhow!("alerter needs a store"))?;
    let alerter = Alerter::start(
        cx.queue.clone(),
        cx.coordination.clone(),
        store.clone(),
        config.worker.consumer_config(WorkerRole::Alerter, pod.clone(), &cx.queue_metrics),
        config.alerter.to_alerter_config(&config.worker, cx.embedded),
        AlerterMetrics::register(&slot.metrics),
    )
    .await?;
    let watchdog = config.worker.watchdog();
    let alerter = alerter.with_watchdog(watchdog.clone());
    let rules = alerter.rules().clone();
    // Rule edits elsewhere (pub/sub, or the embedded file's rules version): reload.
    let (watcher, reload, sd) = (cx.coordination.clone(), rules.clone(), cx.shutdown.clone());
    tokio::spawn(async move {
        watcher.watch_rules_changed(Box::new(move || reload.request_reload()), sd).await;
    });
    // Audit partitions for the coming months, daily; retention.
    super::maintenance::spawn(cx, &slot, store.clone());
    let health = Arc::new(mutt_alerter::health(cx.queue.clone(), store, pod.to_string()).watchdog(watchdog));
    let probe_port = config.alerter.health_port.map(|p| ("alerter.health_port (HEALTH_PORT_ALERTER)", p));
    let (servers, probe) = super::ops_servers(cx, slot, health, probe_port).await?;
    let task = super::spawn_worker(servers, cx.shutdown.clone(), |sd| async move {
        alerter.run(sd).await?;
        Ok(())
    });
    Ok(Started { task, rules: Some(rules), probe })
}

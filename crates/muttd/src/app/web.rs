//! The web role: the management API.

use super::{Context, Slot, Started};
use anyhow::{Result, anyhow};

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let store = cx.store.clone().ok_or_else(|| anyhow!("web needs a store"))?;
    let generated = cx.embedded.then_some("webui-api-key");
    let web = mutt_web::WebConfig {
        api_keys: super::api_keys(cx, "WEBUI_API_KEY", generated)?,
        slo: Some(crate::commands::slo::source(cx.config)),
        timestamp_format: cx.config.web.timestamp_format,
        metrics_cache_ttl: std::time::Duration::from_secs(cx.config.web.metrics_cache_ttl_secs),
        heartbeat_ttl: std::time::Duration::from_secs(cx.config.worker.heartbeat_ttl_secs),
        dedup_ttl: std::time::Duration::from_secs(cx.config.forwarder.dedup_ttl_secs),
    };
    let (keys, router) = mutt_web::service(cx.queue.clone(), cx.coordination.clone(), store, web, slot.metrics)?;
    follow_api_keys(cx, keys);
    let tls = super::listener::load_tls("web", &cx.config.web.tls())?;
    // The console's cookies are `Secure` when it is served over TLS.
    let router = if tls.is_some() { mutt_web::served_over_tls(router) } else { router };
    Ok(Started::task(super::spawn_server(cx.serve_tls(slot.listener, router, tls))))
}

/// A rotated WEBUI_API_KEY (Vault, re-read periodically) replaces the accepted keys at once;
/// a key removed from the secret is refused from then on. An empty value keeps the old keys
/// (the management API has no default key), as the ingestor does with INGEST_API_KEY.
fn follow_api_keys(cx: &Context<'_>, keys: mutt_web::auth::ApiKeys) {
    crate::secrets::vault::follow(cx.secrets, "WEBUI_API_KEY", move |value| {
        let entries: Vec<mutt_core::Secret> = value
            .map(|v| {
                v.expose()
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(mutt_core::Secret::new)
                    .collect()
            })
            .unwrap_or_default();
        if !keys.set(super::listener::named_keys("WEBUI_API_KEY", entries)) {
            tracing::warn!("WEBUI_API_KEY is now empty or gone; the keys in use stay");
        }
    });
}

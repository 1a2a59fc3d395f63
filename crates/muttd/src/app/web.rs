//! The web role: the management API.

use super::{Context, Slot, Started};
use anyhow::{Result, anyhow};

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let store = cx.store.clone().ok_or_else(|| anyhow!("web needs a store"))?;
    let generated = cx.embedded.then_some("webui-api-key");
    let web = mutt_web::WebConfig {
        api_keys: super::api_keys(cx, "WEBUI_API_KEY", generated)?,
        slo: Some(crate::commands::slo::source(cx.config)),
    };
    let router = mutt_web::router(cx.queue.clone(), cx.coordination.clone(), store, web, slot.metrics)?;
    let tls = super::listener::load_tls("web", &cx.config.web.tls())?;
    Ok(Started::task(super::spawn_server(cx.serve_tls(slot.listener, router, tls))))
}
